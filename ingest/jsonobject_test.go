package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// membersOf lists an object's members as key=value lines, in order.
func membersOf(data []byte) (string, error) {
	var b strings.Builder
	err := objectMembers(data, func(key, value []byte) error {
		k, err := unquote(key)
		fmt.Fprintf(&b, "%s=%s\n", k, value)
		return err
	})
	return b.String(), err
}

func TestObjectMembers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, ""},
		{` { } `, ""},
		{`{"a":1,"b":"x","a":null}`, "a=1\nb=\"x\"\na=null\n"},
		{"{ \"a\" :\t[1, {\"]\":\"}\"}] ,\n\"b\":{\"c\":[]} }", "a=[1, {\"]\":\"}\"}]\nb={\"c\":[]}\n"},
		{`{"m\u0061ke":"\"q\"","\\":true,"k\"":false}`, "make=\"\\\"q\\\"\"\n\\=true\nk\"=false\n"},
		{`{"é":-1.5e3}`, "é=-1.5e3\n"},
		{`{"\ud800":0}`, "\uFFFD=0\n"},
	} {
		got, err := membersOf([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("objectMembers(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{``, `null`, `[]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":1`, `{"a":1,}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":"x}`, `{"a":[1}`} {
		if got, err := membersOf([]byte(in)); err == nil {
			t.Errorf("objectMembers(%s) = %q, nil error; want an error", in, got)
		}
	}
}

// FuzzObjectMembers holds objectMembers to encoding/json: for every object
// that decodes into a map[string]json.RawMessage, the last member of each
// name carries the map's key and exactly the map's value bytes; and no
// input makes it panic.
func FuzzObjectMembers(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":"x","a":null}`,
		`{"m\u0061ke":"\"q\"","\\":true,"x":{"y":[1,"]"]}}`,
		"{\"\xff\":\"\xfe\", \"\\ud83d\\ude00\" : [ ] }",
		`{"K":1,"k":2,"\u212a":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := map[string][]byte{}
		err := objectMembers(data, func(key, value []byte) error {
			k, err := unquote(key)
			got[k] = value
			return err
		})
		var want map[string]json.RawMessage
		if json.Unmarshal(data, &want) != nil || want == nil {
			return
		}
		if err != nil {
			t.Fatalf("objectMembers(%q): %v; encoding/json reads it", data, err)
		}
		if len(got) != len(want) {
			t.Fatalf("objectMembers(%q): %d names; encoding/json has %d", data, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Errorf("objectMembers(%q)[%q] = %q; want %q", data, k, got[k], v)
			}
		}
	})
}

func TestLastPerName(t *testing.T) {
	list := []scalarMember{{Name: "b", Value: "1"}, {Name: "a", Value: "2"}, {Name: "b", Value: "3", OK: true}, {Name: "c"}, {Name: "a", Value: "4"}}
	got := fmt.Sprint(lastPerName(list))
	if want := "[{a 4 false} {b 3 true} {c  false}]"; got != want {
		t.Errorf("lastPerName = %s; want %s", got, want)
	}
}
