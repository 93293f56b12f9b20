package snippet_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tally-analytics/tally/snippet/chromiumtest"
)

// dedupeRule is what rules.Engine.BrowserRules gives for a Lead rule with
// dedupe: {by: [email, form_id], within: 10m} (rules/browser_test.go holds
// the Go side to this shape).
const dedupeRule = `[{"r":"lead","e":["form_submitted"],"n":"Lead",
 "d":{"b":[{"k":"email","i":true},{"k":"form_id"}],"w":600000}}]`

// The mirror follows the rule's dedupe window: a repeated submission
// within it fires the pixel once, a retry of the same event and a later
// one fire again, and what the page keeps holds no email.
func TestMirrorDedupe(t *testing.T) {
	ctx := chromiumtest.New(t)
	// A real origin: about:blank has no localStorage.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html><title>form</title>"))
	}))
	defer srv.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	chromiumtest.Eval[any](t, ctx, mirrorBundle(t)+";0")
	got := chromiumtest.Eval[string](t, ctx, `(function (rules) {
  var calls = [];
  window.fbq = function (m, n, p, o) { calls.push(o.eventID); };
  var ev = function (id, ts, email, form) {
    return {id: id, name: 'form_submitted', ts: ts, props: {form_id: form}, traits: {email: email}, consent: {ads: true}};
  };
  var t0 = 1767225600000;
  var evs = [ev('e1', t0, 'Jane@Example.com', 'contact'), ev('e2', t0 + 1000, 'jane@example.com ', 'Contact'),
   ev('e3', t0 + 2000, 'john@example.com', 'contact'), ev('e1', t0, 'Jane@Example.com', 'contact'),
   ev('e4', t0 + 600000, 'jane@example.com', 'contact')];
  evs.forEach(function (e) { tallyMirror.mirror(rules, e, null); });
  return calls.join(' ') + '|' + localStorage.getItem('tally_md') + '|' +
    evs.map(function (e) { return e.id + ':' + e.mirror.lead; }).join(' ');
})(`+dedupeRule+`)`)
	parts := strings.SplitN(got, "|", 3)
	calls, memo, reports := parts[0], parts[1], parts[2]
	// Each completion reports what the mirror did for the rule.
	if want := "e1:sent e2:duplicate e3:sent e1:sent e4:sent"; reports != want {
		t.Errorf("mirror reports %q; want %q", reports, want)
	}
	if calls != "e1 e3 e1 e4" {
		t.Errorf("pixel fired for %q; want e1 e3 e1 e4 (e2 repeats e1 within 10 minutes)", calls)
	}
	if strings.Contains(strings.ToLower(memo), "example.com") || strings.Contains(memo, "contact") {
		t.Errorf("the page keeps %s; want hashes only", memo)
	}
}
