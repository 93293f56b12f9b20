package snippet_test

// The browser half of the rules conformance table: every case of
// rules/testdata/conformance.json, with its rules as the snippet receives
// them (rules/testdata/conformance.golden.json, kept current by the rules
// package's own test), run through src/mirror.js in a real headless
// Chromium. The rules package runs the same table through the server's
// path, so the pixel and the Conversions API cannot disagree on whether a
// completion matches, or on its event name, value and currency.

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
	"github.com/tally-analytics/tally/snippet/chromiumtest"
)

type mirrorCase struct {
	Name  string          `json:"name"`
	Rules json.RawMessage `json:"rules"`
	Event struct {
		ID string `json:"id"`
	} `json:"event"`
	Fbq json.RawMessage `json:"fbq"`
}

// mirrorBundle builds src/mirror.js alone, with the production build's
// target and minification, exposing its exports as window.tallyMirror.
func mirrorBundle(t *testing.T) string {
	t.Helper()
	res := api.Build(api.BuildOptions{
		EntryPoints:       []string{"src/mirror.js"},
		Bundle:            true,
		Write:             false,
		Format:            api.FormatIIFE,
		GlobalName:        "tallyMirror",
		Target:            api.ES2017,
		Platform:          api.PlatformBrowser,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		Define:            map[string]string{"__FIELDS__": "true", "__DEDUPE__": "true"},
		LogLevel:          api.LogLevelSilent,
	})
	if len(res.Errors) > 0 || len(res.OutputFiles) != 1 {
		t.Fatalf("build src/mirror.js: %v", res.Errors)
	}
	return string(res.OutputFiles[0].Contents)
}

func TestMirrorConformance(t *testing.T) {
	raw, err := os.ReadFile("../rules/testdata/conformance.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []mirrorCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("parse conformance.golden.json: %v", err)
	}
	if len(cases) < 50 {
		t.Fatalf("conformance table holds %d cases; want the full table", len(cases))
	}
	ctx := chromiumtest.New(t)
	chromiumtest.Eval[any](t, ctx, mirrorBundle(t)+";0")

	// Each case: a fresh recording fbq, then the snippet's own entry point
	// (mirror), which also applies the ads-consent check.
	out := chromiumtest.Eval[string](t, ctx, `(function (cases) {
  return JSON.stringify(cases.map(function (c) {
    var calls = [];
    window.fbq = function () { calls.push([].slice.call(arguments)); };
    try { tallyMirror.mirror(c.rules || [], c.event, null); } catch (e) { return 'threw: ' + e; }
    return calls;
  }));
})(`+string(raw)+`)`)
	var got []json.RawMessage
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != len(cases) {
		t.Fatalf("results %s: %v", out, err)
	}
	for i, c := range cases {
		var want []any // the table's [method, name, params] (or a list of them), each plus {eventID}
		if string(c.Fbq) != "null" {
			var call []any
			if err := json.Unmarshal(c.Fbq, &call); err != nil {
				t.Fatal(err)
			}
			list := []any{call}
			if _, several := call[0].([]any); several {
				list = call
			}
			for _, one := range list {
				want = append(want, append(one.([]any), map[string]any{"eventID": c.Event.ID}))
			}
		}
		var calls []any
		if err := json.Unmarshal(got[i], &calls); err != nil {
			t.Errorf("case %q: %s", c.Name, got[i])
			continue
		}
		if len(calls) == 0 && want == nil {
			continue
		}
		if !reflect.DeepEqual(calls, want) {
			t.Errorf("case %q: the pixel got %s; the table (and the server) say %s", c.Name, got[i], mustJSON(want))
		}
	}
}

// TestMirrorRespectsGPC: with Global Privacy Control on, nothing reaches the
// pixel even when the completion claims ads consent.
func TestMirrorRespectsGPC(t *testing.T) {
	ctx := chromiumtest.New(t)
	chromiumtest.Eval[any](t, ctx, mirrorBundle(t)+";0")
	rules := `[{"r":"lead","e":["form_submitted"],"n":"Lead"}]`
	ev := `{"id":"x","name":"form_submitted","props":{},"consent":{"analytics":true,"ads":true}}`
	run := func() string {
		return chromiumtest.Eval[string](t, ctx, fmt.Sprintf(`(function () {
  var calls = [];
  window.fbq = function () { calls.push([].slice.call(arguments)); };
  tallyMirror.mirror(%s, %s, null);
  return JSON.stringify(calls);
})()`, rules, ev))
	}
	if got := run(); got != `[["track","Lead",{},{"eventID":"x"}]]` {
		t.Fatalf("without GPC the pixel got %s; want one Lead", got)
	}
	chromiumtest.Eval[any](t, ctx, `Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: function () { return true; }, configurable: true}); 0`)
	if got := run(); got != `[]` {
		t.Errorf("with GPC the pixel got %s; want nothing", got)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return strings.TrimSpace(string(b))
}
