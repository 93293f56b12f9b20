package snippet_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules"
	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/capi/capitest"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/snippet"
	"github.com/tally-analytics/tally/snippet/chromiumtest"
)

// The pixel and the Conversions API, end to end: a page in Chromium runs
// the built tracker (mirror rules from rules.Engine.BrowserRules), its
// completion goes through the collector's browser parser, the rules engine
// and the capi Forwarder to a Graph API stand-in. The eventID the page's
// fbq got must be the event_id Meta receives, with the same event name,
// value and currency, or Meta cannot deduplicate the pair. (cmd/tally's
// browser tests cover the same path through the real HTTP collector and
// storage.)

const e2eDefs = `[{"name": "form_submitted", "properties": [
  {"name": "form_id", "type": "string"}, {"name": "deal_amount", "type": "number"}]}]`

type deliveries struct {
	mu sync.Mutex
	ds []deliver.Delivery
}

func (d *deliveries) Record(ds []deliver.Delivery) {
	d.mu.Lock()
	d.ds = append(d.ds, ds...)
	d.mu.Unlock()
}

func TestMirrorMatchesConversionsAPI(t *testing.T) {
	ctx := chromiumtest.New(t) // first: skips (or fails under CI) without Chromium

	graph := capitest.Start(capitest.Config{PixelID: "1234567890", AccessToken: "token"})
	t.Cleanup(graph.Close)
	client, err := capi.NewClient(capi.ClientConfig{GraphURL: graph.URL(), PixelID: "1234567890", AccessToken: "token"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dlog := &deliveries{}
	log := slog.New(slog.DiscardHandler)
	fwd, err := deliver.NewForwarder(deliver.Config{Dir: t.TempDir(), Linger: 10 * time.Millisecond},
		[]deliver.Destination{capi.Destination("meta_shop", client)}, dlog, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close(context.Background()) })

	var defs []ingest.Definition
	if err := json.Unmarshal([]byte(e2eDefs), &defs); err != nil {
		t.Fatal(err)
	}
	contact := "contact"
	engine, err := rules.NewEngine(rules.Config{
		Definitions:  defs,
		Destinations: []rules.Destination{{Name: "meta_shop", Type: rules.TypeMetaCAPI, PixelID: "1234567890", AccessToken: "token", GraphURL: graph.URL()}},
		Rules: []rules.Rule{{Name: "contact_form_lead",
			When: rules.When{Event: "form_submitted", Where: []rules.Filter{{Property: "form_id", Op: rules.OpEqual, Value: &contact}}},
			Forward: rules.Forward{To: "meta_shop", EventName: "Lead", Currency: "EUR", MirrorInBrowser: true,
				Value: &rules.Value{Property: "deal_amount", Default: new(float64)},
				Share: []string{rules.ShareUserAgent, rules.ShareClientIP, rules.ShareFbp, rules.ShareFbc}},
		}},
		DataDir: t.TempDir(),
	}, fwd, dlog, log, nil)
	if err != nil {
		t.Fatal(err)
	}

	b, err := snippet.NewBuilder(snippet.Config{
		Sites:       []ingest.Site{{ID: "shop", Domains: []string{"127.0.0.1"}}},
		Definitions: defs,
		Mirrors:     engine.BrowserRules,
	})
	if err != nil {
		t.Fatal(err)
	}
	script, _ := b.Script("shop")
	cat := ingest.NewCatalog(defs)
	collected := make(chan error, 4)
	var (
		mu      sync.Mutex
		reports [][]string // each form_submitted completion's mirror report
	)
	mux := trackerPage(script.JS)
	mux.HandleFunc("/e", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		batch, err := ingest.ParseBrowserBatch(cat, body, ingest.BrowserContext{Now: time.Now(), UserAgent: r.UserAgent(), IP: "203.0.113.9"})
		if err == nil {
			mu.Lock()
			for _, c := range batch.Completions {
				if c.EventName == "form_submitted" {
					reports = append(reports, c.Mirror)
				}
			}
			mu.Unlock()
			err = engine.Write(r.Context(), batch.Completions)
		}
		collected <- err
		w.WriteHeader(http.StatusNoContent)
	})
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)

	openTracker(t, ctx, site.URL+"/?fbclid=IwAR-Click")
	calls := chromiumtest.Eval[string](t, ctx, `tally('track', 'form_submitted', {form_id: 'Contact', deal_amount: '249.90'});
JSON.stringify(calls)`)
	var got [][]any
	if err := json.Unmarshal([]byte(calls), &got); err != nil || len(got) != 1 || len(got[0]) != 4 {
		t.Fatalf("fbq calls %s; want one 4-argument call", calls)
	}
	eventID, _ := got[0][3].(map[string]any)["eventID"].(string)

	// Wait for the Graph stand-in to receive the server event.
	var sent []capi.Event
	deadline := time.Now().Add(20 * time.Second)
	for len(sent) == 0 && time.Now().Before(deadline) {
		select {
		case err := <-collected:
			if err != nil {
				t.Fatalf("collect: %v", err)
			}
		case <-time.After(50 * time.Millisecond):
		}
		sent = graph.Received()
	}
	if len(sent) != 1 {
		t.Fatalf("Graph stand-in received %d events; want 1 (deliveries: %+v)", len(sent), dlog.ds)
	}
	ev := sent[0]
	if ev.EventID != eventID || eventID == "" {
		t.Errorf("Meta got event_id %q; fbq got eventID %q: they must be equal", ev.EventID, eventID)
	}
	params, _ := got[0][2].(map[string]any)
	if ev.EventName != got[0][1] || ev.CustomData == nil || ev.CustomData.Value == nil ||
		*ev.CustomData.Value != params["value"] || ev.CustomData.Currency != params["currency"] {
		t.Errorf("Meta got %s %+v; fbq got %v %v", ev.EventName, ev.CustomData, got[0][1], params)
	}
	if got[0][0] != "track" || ev.EventName != "Lead" || params["value"] != 249.9 || params["currency"] != "EUR" {
		t.Errorf("fbq call %s; want track Lead 249.9 EUR", calls)
	}
	if ev.ActionSource != capi.ActionWebsite || ev.UserData.ClientUserAgent == "" || ev.UserData.ClientIPAddress != "203.0.113.9" ||
		ev.UserData.Fbc == "" || ev.EventSourceURL != site.URL+"/?fbclid=IwAR-Click" {
		t.Errorf("server event %+v; want website, the browser's user agent, IP, fbc and page URL", ev)
	}
	// Each completion tells the collector what became of its pixel call:
	// made to a loaded pixel; queued in Meta's stub before its library
	// loaded; no pixel on the page; or no call for want of ads consent.
	chromiumtest.Eval[chromedp.Void](t, ctx, `
window.fbq = function () { fbq.callMethod ? fbq.callMethod.apply(fbq, arguments) : fbq.queue.push(arguments); };
fbq.queue = [];
tally('track', 'form_submitted', {form_id: 'Contact'});
setTimeout(function () {
  delete window.fbq;
  tally('track', 'form_submitted', {form_id: 'Contact'});
  tally('consent', {ads: false});
  tally('track', 'form_submitted', {form_id: 'Contact'});
}, 0);`)
	want := [][]string{{"contact_form_lead=sent"}, {"contact_form_lead=queued"}, {"contact_form_lead=no_pixel"}, {"*=no_consent"}}
	deadline = time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(reports)
		mu.Unlock()
		if len(got) >= len(want) {
			// Two batches: they may arrive in either order.
			byReport := func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) }
			slices.SortFunc(got, byReport)
			slices.SortFunc(want, byReport)
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("mirror reports %q; want %q", got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror reports %q; want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond) // polling what the page sent, not waiting for time to pass
	}
}
