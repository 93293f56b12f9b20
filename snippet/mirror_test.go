package snippet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/snippet"
	"github.com/tally-analytics/tally/snippet/chromiumtest"
)

// mirrorRules is what rules.Engine.BrowserRules gives the builder for the
// sketch's contact_form_lead rule (value from deal_amount, default 50, EUR).
const mirrorRules = `[{"r":"contact_form_lead","e":["form_submitted"],
 "w":[{"p":"form_id","t":"s","o":"eq","v":["contact"]}],
 "n":"Lead","v":{"p":"deal_amount","d":50},"$":"EUR"}]`

// mirrorSite serves a page that embeds the built tracker with a recording
// fbq, and records every collection request's body.
func mirrorSite(t *testing.T) (*httptest.Server, <-chan []byte) {
	t.Helper()
	b, err := snippet.NewBuilder(snippet.Config{
		Sites: []ingest.Site{{ID: "shop", Domains: []string{"127.0.0.1"}}},
		Definitions: []ingest.Definition{{Name: "form_submitted", Properties: []ingest.Property{
			{Name: "form_id", Type: ingest.TypeString}, {Name: "deal_amount", Type: ingest.TypeNumber},
		}}},
		Mirrors: func(site string) any { return json.RawMessage(mirrorRules) },
	})
	if err != nil {
		t.Fatal(err)
	}
	script, ok := b.Script("shop")
	if !ok {
		t.Fatal("no script for site shop")
	}
	bodies := make(chan []byte, 16)
	mux := trackerPage(script.JS)
	mux.HandleFunc("/e", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case bodies <- body:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, bodies
}

// trackerPage serves a page at / that embeds the tracker script (served at
// /t.js) for site shop, with an fbq that records its calls in window.calls.
// The caller adds the collection path.
func trackerPage(script []byte) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><title>form</title>
<script>window.calls=[];window.fbq=function(){calls.push([].slice.call(arguments))};
window.tally=window.tally||function(){(tally.q=tally.q||[]).push(arguments)}</script>
<script async src="/t.js" data-site="shop"></script>`)
	})
	mux.HandleFunc("/t.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/javascript")
		w.Write(script)
	})
	return mux
}

// openTracker navigates to url and waits until the tracker has loaded.
func openTracker(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	// Navigate can return before the page's execution context exists; a
	// poll that starts in that moment fails with "Cannot find context with
	// specified id" and is simply tried again.
	for try := 0; ; try++ {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!(window.tally && window.tally.l)`))
		if err == nil {
			return
		}
		if try == 3 || !strings.Contains(err.Error(), "Cannot find context") {
			t.Fatalf("tracker did not load: %v", err)
		}
	}
}

// sentEvent waits for the collection request that carries the named event.
func sentEvent(t *testing.T, bodies <-chan []byte, name string) map[string]any {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case b := <-bodies:
			var batch struct {
				Events []map[string]any `json:"events"`
			}
			if err := json.Unmarshal(b, &batch); err != nil {
				t.Fatalf("collection body %s: %v", b, err)
			}
			for _, e := range batch.Events {
				if e["name"] == name {
					return e
				}
			}
		case <-deadline:
			t.Fatalf("no %s completion reached the collector", name)
		}
	}
}

// TestMirrorThroughTracker: tally('track') in the built tracker calls fbq
// with the mapped name, value and currency, and an eventID equal to the
// event id the collector receives (which the server forwards as event_id).
func TestMirrorThroughTracker(t *testing.T) {
	srv, bodies := mirrorSite(t)
	ctx := chromiumtest.New(t)
	openTracker(t, ctx, srv.URL+"/")
	calls := chromiumtest.Eval[string](t, ctx, `tally('track', 'form_submitted', {form_id: 'Contact', deal_amount: 120});
tally('track', 'form_submitted', {form_id: 'newsletter', deal_amount: 5});
JSON.stringify(calls)`)
	var got [][]any
	if err := json.Unmarshal([]byte(calls), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0]) != 4 {
		t.Fatalf("fbq calls %s; want one 4-argument call (the newsletter form does not match)", calls)
	}
	eventID, _ := got[0][3].(map[string]any)["eventID"].(string)
	wantCall := fmt.Sprintf(`["track","Lead",{"currency":"EUR","value":120},{"eventID":%q}]`, eventID)
	if g := mustJSON(got[0]); g != wantCall || eventID == "" {
		t.Errorf("fbq call %s; want %s", g, wantCall)
	}
	ev := sentEvent(t, bodies, "form_submitted")
	if ev["id"] != eventID {
		t.Errorf("collector got event id %v; fbq got eventID %q: they must be equal for Meta to deduplicate", ev["id"], eventID)
	}
}

// TestMirrorNeedsAdsConsent: after tally('consent', {ads: false}) the
// completion is still sent, but nothing reaches the pixel.
func TestMirrorNeedsAdsConsent(t *testing.T) {
	srv, bodies := mirrorSite(t)
	ctx := chromiumtest.New(t)
	openTracker(t, ctx, srv.URL+"/")
	calls := chromiumtest.Eval[string](t, ctx, `tally('consent', {ads: false});
tally('track', 'form_submitted', {form_id: 'contact'});
JSON.stringify(calls)`)
	if calls != "[]" {
		t.Errorf("fbq calls without ads consent: %s; want none", calls)
	}
	if ev := sentEvent(t, bodies, "form_submitted"); ev["consent"].(map[string]any)["ads"] != false {
		t.Errorf("completion consent %v; want ads false", ev["consent"])
	}
}
