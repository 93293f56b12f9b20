package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func (f *apiFields) describe() string {
	var props strings.Builder
	for _, m := range lastPerName(f.Properties) {
		fmt.Fprintf(&props, "%q=%q/%v ", m.Name, m.Value, m.OK)
	}
	return fmt.Sprintf("eventName=%q properties=[%s] occurredAt=%q uuid=%q email=%q utk=%q objectId=%q",
		f.EventName, props.String(), f.OccurredAt, f.UUID, f.Email, f.UTK, f.ObjectID)
}

// FuzzAPIInputDecode holds apiFields.decode to encoding/json decoding an
// APIInput: both refuse an input or both read the same fields.
func FuzzAPIInputDecode(f *testing.F) {
	for _, s := range []string{
		`{"eventName":"pe1234567_viewed_car","email":"ada@example.com","occurredAt":"2026-11-20T10:00:00Z","uuid":"u","utk":"t","objectId":12,"properties":{"make":"volvo","year":2020,"x":{}}}`,
		` null `, `[]`, `{"eventName":5}`, `{"properties":"x"}`, `{"properties":[]}`, `{"eventName":"a"} x`,
		`{"EVENTNAME":"a","eventname":null,"\u212aey":1,"properties":{"a":1},"Properties":{"b":"\u00e9","a":null},"objectid":null}`,
		`{"properties":{"a":1},"properties":null,"uuid":"\ud800","email":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got apiFields
		var want APIInput
		gerr, werr := got.decode(raw), json.Unmarshal(raw, &want)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("decode(%s): error %v; encoding/json: %v", raw, gerr, werr)
		}
		if gerr != nil {
			return
		}
		wf := want.fields()
		if g, w := got.describe(), wf.describe(); g != w {
			t.Fatalf("decode(%s) =\n%s\nencoding/json:\n%s", raw, g, w)
		}
	})
}
