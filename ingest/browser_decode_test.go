package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// jsonBrowserEvent is browserEvent as encoding/json decodes it, the
// reference its hand-written decode is held to.
type jsonBrowserEvent struct {
	ID      string                     `json:"id"`
	Name    string                     `json:"name"`
	TS      json.RawMessage            `json:"ts"`
	Props   map[string]json.RawMessage `json:"props"`
	URL     string                     `json:"url"`
	Ref     string                     `json:"ref"`
	Title   string                     `json:"title"`
	Consent *struct {
		Analytics *bool `json:"analytics"`
		Ads       *bool `json:"ads"`
	} `json:"consent"`
	Traits map[string]json.RawMessage `json:"traits"`
	Fbp    string                     `json:"fbp"`
	Fbc    string                     `json:"fbc"`
}

// describe renders a decoded event so that two decodings can be compared:
// members as the map encoding/json would hold, read with the same reader.
func (e *browserEvent) describe() string {
	members := func(list []scalarMember) string {
		var b strings.Builder
		for _, m := range lastPerName(slices.Clone(list)) {
			fmt.Fprintf(&b, "%q=%q/%v ", m.Name, m.Value, m.OK)
		}
		return b.String()
	}
	opt := func(b optBool) string {
		if !b.set {
			return "unset"
		}
		return fmt.Sprint(b.v)
	}
	return fmt.Sprintf("id=%q name=%q ts=%q props=[%s] url=%q ref=%q title=%q consent=%s/%s traits=[%s] fbp=%q fbc=%q",
		e.ID, e.Name, e.TS, members(e.Props), e.URL, e.Ref, e.Title, opt(e.Consent.Analytics), opt(e.Consent.Ads),
		members(e.Traits), e.Fbp, e.Fbc)
}

func (j *jsonBrowserEvent) asBrowserEvent() *browserEvent {
	members := func(m map[string]json.RawMessage, read func(json.RawMessage) (string, bool)) []scalarMember {
		var list []scalarMember
		for k, v := range m {
			s, ok := read(v)
			list = append(list, scalarMember{Name: k, Value: s, OK: ok})
		}
		return list
	}
	opt := func(p *bool) optBool {
		if p == nil {
			return optBool{}
		}
		return optBool{set: true, v: *p}
	}
	e := &browserEvent{ID: j.ID, Name: j.Name, TS: j.TS, Props: members(j.Props, browserScalar), URL: j.URL, Ref: j.Ref,
		Title: j.Title, Traits: members(j.Traits, propScalar), Fbp: j.Fbp, Fbc: j.Fbc}
	if j.Consent != nil {
		e.Consent.Analytics, e.Consent.Ads = opt(j.Consent.Analytics), opt(j.Consent.Ads)
	}
	return e
}

var browserEventSeeds = []string{
	`{"id":"e1","name":"viewed_car","ts":1700000000000,"props":{"make":"volvo","year":2020,"tags":["a",1]},"url":"https://x/?fbclid=A","ref":"","title":"T","consent":{"analytics":true,"ads":false},"traits":{"email":"a@b.co"},"fbp":"fb.1.2.3","fbc":null}`,
	`null`,
	`{"NAME":"page_view","\u017fD":"x","Ts":"2026-01-01","con\u017fent":{"AdS":true},"ſite":1}`,
	`{"props":{"a":1},"props":{"b":2,"a":"x"},"PROPS":{"c":{}},"traits":{"zip":1},"traits":null}`,
	`{"consent":{"analytics":false},"consent":{"ads":true},"consent":null,"consent":{"ads":null}}`,
	`{"n\u0061me":"x\u00e9\n","id":"\ud800","url":null,"url":"u","title":"\"q\""}`,
	`{"name":5}`, `{"props":[]}`, `{"traits":"x"}`, `{"consent":"x"}`, `{"consent":{"ads":1}}`, `{"id":{}}`, `[]`, `"x"`, `42`,
}

// FuzzBrowserEventDecode holds browserEvent.decode to encoding/json: for
// every valid JSON value, both refuse it or both decode the same event.
func FuzzBrowserEventDecode(f *testing.F) {
	for _, s := range browserEventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data) // as items of a batch come
		if !json.Valid(data) {
			return
		}
		var want jsonBrowserEvent
		werr := json.Unmarshal(data, &want)
		var got browserEvent
		gerr := got.decode(data)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("decode(%s): error %v; encoding/json: %v", data, gerr, werr)
		}
		if gerr != nil {
			return
		}
		if g, w := got.describe(), want.asBrowserEvent().describe(); g != w {
			t.Fatalf("decode(%s) =\n%s\nencoding/json:\n%s", data, g, w)
		}
	})
}

// FuzzBrowserBodyDecode holds browserBody.decode to encoding/json: both
// refuse a body or both read the same site, send time, language and items.
func FuzzBrowserBodyDecode(f *testing.F) {
	for _, s := range []string{
		`{"site":"shop","sent":1700000000123,"lang":"en-GB","events":[{"name":"page_view"}, 7 ,null,"x",[]]}`,
		` null `, `[]`, `{"site":5}`, `{"events":{}}`, `{"events":[1]} x`, `{"site":"a"`,
		`{"\u017fite":"a","SITE":null,"Events":[1,2],"events":[3],"sent":null,"LANG":"\u00e9"}`,
		`{"events":[1,2],"events":null}`, `{"events":[],"x":{"events":[1]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got, want browserBody
		gerr, werr := got.decode(body), json.Unmarshal(body, &want)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("decode(%s): error %v; encoding/json: %v", body, gerr, werr)
		}
		if gerr != nil {
			return
		}
		if got.Site != want.Site || got.Lang != want.Lang || !bytes.Equal(got.Sent, want.Sent) ||
			!slices.EqualFunc(got.Events, want.Events, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("decode(%s) = %+v; encoding/json: %+v", body, got, want)
		}
	})
}
