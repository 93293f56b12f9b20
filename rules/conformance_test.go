package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/ingest/enrich"
)

var update = flag.Bool("update", false, "rewrite testdata/conformance.golden.json from testdata/conformance.json")

// The conformance table (testdata/conformance.json) is the one statement of
// what a mirrored rule does with a browser completion. This test runs it
// through the server's real path (ingest.ParseBrowserBatch, then the
// Engine); snippet/mirror_conformance_test.go runs the same cases through
// snippet/src/mirror.js in Chromium, reading the rules as the snippet gets
// them from testdata/conformance.golden.json, which this test keeps current
// (go test ./rules -run Conformance -update).

type confFile struct {
	Definitions json.RawMessage `json:"definitions"`
	Cases       []confCase      `json:"cases"`
}

type confCase struct {
	Name    string          `json:"name"`
	When    json.RawMessage `json:"when"`
	Forward json.RawMessage `json:"forward"`
	Ads     *bool           `json:"ads"`
	Props   json.RawMessage `json:"props"`
	Page    confPage        `json:"page"`
	Fbq     json.RawMessage `json:"fbq"` // [method, name, params] or null
}

// confPage is what the snippet sends about the page and Meta's cookies;
// the standard fields (path, utm_*, click id, fbc…) are derived from it.
type confPage struct {
	URL   string `json:"url,omitempty"`
	Ref   string `json:"ref,omitempty"`
	Title string `json:"title,omitempty"`
	Fbp   string `json:"fbp,omitempty"`
	Fbc   string `json:"fbc,omitempty"`
}

// goldenCase is one case as the browser test consumes it.
type goldenCase struct {
	Name  string          `json:"name"`
	Rules any             `json:"rules"` // Engine.BrowserRules("shop")
	Event goldenEvent     `json:"event"`
	Fbq   json.RawMessage `json:"fbq"`
}

type goldenEvent struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Props   json.RawMessage `json:"props"`
	Consent map[string]bool `json:"consent"`
	confPage
}

const conformanceEvent = "form_submitted"

func loadConformance(t *testing.T) (confFile, []ingest.Definition) {
	t.Helper()
	b, err := os.ReadFile("testdata/conformance.json")
	if err != nil {
		t.Fatal(err)
	}
	var f confFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("parse conformance.json: %v", err)
	}
	var defs []ingest.Definition
	// JSON is YAML: decode with the config's own (yaml) field names.
	if err := yaml.Unmarshal(f.Definitions, &defs); err != nil {
		t.Fatalf("parse definitions: %v", err)
	}
	return f, defs
}

// conformanceRule builds the case's rule: its when and forward over
// defaults (event form_submitted, forward Lead to meta_shop, mirrored).
func conformanceRule(t *testing.T, i int, c confCase) Rule {
	t.Helper()
	r := Rule{Name: fmt.Sprintf("case_%d", i)}
	if len(c.When) > 0 {
		if err := yaml.Unmarshal(c.When, &r.When); err != nil {
			t.Fatalf("case %q: when: %v", c.Name, err)
		}
	}
	if len(c.Forward) > 0 {
		if err := yaml.Unmarshal(c.Forward, &r.Forward); err != nil {
			t.Fatalf("case %q: forward: %v", c.Name, err)
		}
	}
	if r.When.Event == "" && len(r.When.Events) == 0 {
		r.When.Event = conformanceEvent
	}
	if r.Forward.EventName == "" && r.Forward.EventNameFrom == nil {
		r.Forward.EventName = "Lead"
	}
	r.Forward.To = "meta_shop"
	r.Forward.Share = []string{ShareUserAgent}
	r.Forward.MirrorInBrowser = true
	return r
}

func TestConformance(t *testing.T) {
	f, defs := loadConformance(t)
	cat := ingest.NewCatalog(defs)
	en, err := enrich.New(enrich.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var golden []goldenCase
	for i, c := range f.Cases {
		rule := conformanceRule(t, i, c)
		ads := c.Ads == nil || *c.Ads
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		if c.Page.URL == "" {
			c.Page.URL = "https://shop.example.com/form"
		}
		ev := goldenEvent{ID: id, Name: conformanceEvent, Props: c.Props, Consent: map[string]bool{"analytics": true, "ads": ads}, confPage: c.Page}

		fwd, skips := &fakeForwarder{}, &fakeSkips{}
		e, err := NewEngine(Config{Rules: []Rule{rule}, Destinations: testDests(), Definitions: defs, DataDir: t.TempDir()},
			fwd, skips, nil, nil)
		if err != nil {
			t.Fatalf("case %q: %v", c.Name, err)
		}
		golden = append(golden, goldenCase{Name: c.Name, Rules: e.BrowserRules("shop"), Event: ev, Fbq: c.Fbq})

		// The server's path: the snippet's batch, parsed by the collector's
		// own parser, then the engine.
		now := time.Now()
		body, err := json.Marshal(map[string]any{"site": "shop", "sent": now.UnixMilli(), "events": []any{map[string]any{
			"id": id, "name": ev.Name, "ts": now.UnixMilli(), "props": ev.Props, "url": c.Page.URL, "ref": c.Page.Ref, "title": c.Page.Title,
			"fbp": c.Page.Fbp, "fbc": c.Page.Fbc, "consent": ev.Consent,
		}}})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := ingest.ParseBrowserBatch(cat, body, ingest.BrowserContext{Now: now, UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", IP: "203.0.113.9"})
		if err != nil || len(batch.Completions) != 1 {
			t.Fatalf("case %q: ParseBrowserBatch = %d completions, %v", c.Name, len(batch.Completions), err)
		}
		batch.Completions[0].Site = "shop" // as the collector does for the allowed origin
		en.Enrich(&batch.Completions[0])   // the pipeline enriches before the log
		if err := e.Write(context.Background(), batch.Completions); err != nil {
			t.Fatalf("case %q: Write: %v", c.Name, err)
		}

		// [method, name, params] as fbq would get them, a list of them
		// when one completion forwards several events, or nil.
		var calls []any
		for _, f := range fwd.sent {
			sent := f.ev
			if sent.EventID != id {
				t.Errorf("case %q: event_id %q; want the browser's %q", c.Name, sent.EventID, id)
			}
			method := "track"
			if !IsStandardEvent(sent.EventName) {
				method = "trackCustom"
			}
			params := map[string]any{}
			if cd := sent.CustomData; cd != nil && cd.Value != nil {
				params["value"] = *cd.Value
				if cd.Currency != "" {
					params["currency"] = cd.Currency
				}
			}
			calls = append(calls, []any{method, sent.EventName, params})
		}
		var got any
		switch len(calls) {
		case 0:
		case 1:
			got = calls[0]
		default:
			got = calls
		}
		if !sameJSON(t, got, c.Fbq) {
			g, _ := json.Marshal(got)
			t.Errorf("case %q: server forwards %s; the table says the pixel gets %s", c.Name, g, c.Fbq)
		}
		if got == nil && !ads && len(skips.got) != 1 {
			t.Errorf("case %q: no ads consent recorded %d skips; want 1", c.Name, len(skips.got))
		}
	}

	out, err := json.MarshalIndent(golden, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	const path = "testdata/conformance.golden.json"
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(want, out) {
		t.Errorf("%s is stale (or unreadable: %v): run go test ./rules -run Conformance -update", path, err)
	}
}

// sameJSON compares a value with a JSON text as JSON values.
func sameJSON(t *testing.T, v any, want json.RawMessage) bool {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a, w any
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("table value %s: %v", want, err)
	}
	return reflect.DeepEqual(a, w)
}
