package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-analytics/tally/rules/deliver"
)

// TestBrowserMirrorMatchesServer runs the whole loop in Chromium: the page
// tracks a completion, the built tracker mirrors it to a stub fbq, the
// collector stores it and the rules engine forwards it to the Graph API
// stand-in. The pixel call and the server event must carry the same name,
// event id, value and currency, so Meta counts the pair once.
func TestBrowserMirrorMatchesServer(t *testing.T) {
	graph := capitestServer(t)
	tu := startBrowserTallyWith(t, mirroredLeadYAML(graph.URL()), serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	ts := tu.ts
	f := newFront(t, ts.url)
	stub := `<script>window.fbqCalls = []; window.fbq = function () { fbqCalls.push(Array.prototype.slice.call(arguments)); };</script>`

	t.Run("pixel and server event agree", func(t *testing.T) {
		ctx := newBrowser(t)
		// fbclid in the landing URL: the tracker builds _fbc from it, case kept.
		do(t, ctx, chromedp.Navigate(f.page("/p/mirror", stub, "")+"?fbclid=AbCdEf123"))
		loaded(t, ctx)
		eval[chromedp.Void](t, ctx, `tally('identify', {email: 'Ada@Example.com'});
tally('track', 'form_submitted', {form_id: 'contact', deal_amount: 120});
tally('track', 'form_submitted', {form_id: 'newsletter'});`)
		eventually(t, "server event at the stand-in", func() (bool, string) {
			n := len(graph.Received())
			return n >= 1, fmt.Sprint(n, " events")
		})
		type call struct {
			Method, Name string
			Params       struct {
				Value    float64 `json:"value"`
				Currency string  `json:"currency"`
			}
			Options struct {
				EventID string `json:"eventID"`
			}
		}
		calls := eval[[]call](t, ctx, `fbqCalls.map(c => ({Method: c[0], Name: c[1], Params: c[2], Options: c[3]}))`)
		if len(calls) != 1 {
			t.Fatalf("fbq calls = %+v; want exactly one (the newsletter form matches no rule)", calls)
		}
		got := graph.Received()
		if len(got) != 1 {
			t.Fatalf("stand-in received %d events; want 1", len(got))
		}
		ev, px := got[0], calls[0]
		if px.Method != "track" || px.Name != ev.EventName || px.Options.EventID != ev.EventID || ev.EventName != "Lead" {
			t.Errorf("pixel %s %q eventID %q; server %q event_id %q: want the same name and id", px.Method, px.Name, px.Options.EventID, ev.EventName, ev.EventID)
		}
		if ev.CustomData == nil || ev.CustomData.Value == nil || *ev.CustomData.Value != px.Params.Value || px.Params.Value != 120 ||
			ev.CustomData.Currency != px.Params.Currency || px.Params.Currency != "EUR" {
			t.Errorf("pixel value %v %s; server custom_data %+v: want 120 EUR on both", px.Params.Value, px.Params.Currency, ev.CustomData)
		}
		if len(ev.UserData.Email) != 1 || ev.UserData.Email[0] != hashOf("ada@example.com") {
			t.Errorf("server em = %v; want the hash of the identified email", ev.UserData.Email)
		}
		if want := "fb.1."; len(ev.UserData.Fbc) < len(want) || ev.UserData.Fbc[:len(want)] != want || ev.UserData.Fbc[len(ev.UserData.Fbc)-9:] != "AbCdEf123" {
			t.Errorf("server fbc = %q; want fb.1.<ms>.AbCdEf123 built from fbclid", ev.UserData.Fbc)
		}
		if ev.UserData.ClientUserAgent != normalUA || ev.UserData.ClientIPAddress != "127.0.0.1" {
			t.Errorf("server user agent %q ip %q; want the browser's", ev.UserData.ClientUserAgent, ev.UserData.ClientIPAddress)
		}
		eventually(t, "sent row in deliveries", func() (bool, string) {
			n := ts.count(t, "SELECT count() FROM DB.deliveries WHERE status = 'sent' AND event_id = '"+ev.EventID+"'")
			return n == 1, fmt.Sprint(n, " rows")
		})
	})

	t.Run("identity and _fbp from an earlier page reach the server event", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/identify-first", stub, "")))
		loaded(t, ctx)
		eval[chromedp.Void](t, ctx, `document.cookie = '_fbp=fb.1.1700000000000.424242; path=/';
tally('identify', {email: 'grace@example.com', external_id: 'crm-77'});`)
		do(t, ctx, chromedp.Navigate(f.page("/p/identify-later", stub, "")))
		loaded(t, ctx)
		// The identify leaves with the first page (a beacon as it is left),
		// and may reach tally after the later page's completion: wait for it.
		eventually(t, "the identify at tally", func() (bool, string) {
			n := f.passedWith("grace@example.com")
			return n >= 1, fmt.Sprint(n, " requests")
		})
		before := len(graph.Received())
		eval[chromedp.Void](t, ctx, `tally('track', 'form_submitted', {form_id: 'contact', deal_amount: 10});`)
		eventually(t, "server event for the later page", func() (bool, string) {
			n := len(graph.Received()) - before
			return n >= 1, fmt.Sprint(n, " new events")
		})
		ev := graph.Received()[before]
		if ev.EventSourceURL != f.srv.URL+"/p/identify-later" {
			t.Errorf("event_source_url = %q; want the later page", ev.EventSourceURL)
		}
		if len(ev.UserData.Email) != 1 || ev.UserData.Email[0] != hashOf("grace@example.com") {
			t.Errorf("em = %v; want the email identified on the earlier page", ev.UserData.Email)
		}
		if ev.UserData.Fbp != "fb.1.1700000000000.424242" {
			t.Errorf("fbp = %q; want the _fbp cookie as-is", ev.UserData.Fbp)
		}
	})

	t.Run("without ads consent neither pixel nor server", func(t *testing.T) {
		ctx := newBrowser(t)
		do(t, ctx, chromedp.Navigate(f.page("/p/mirror-no-ads", stub, "")))
		loaded(t, ctx)
		before := len(graph.Received())
		eval[chromedp.Void](t, ctx, `tally('consent', {analytics: true, ads: false});
tally('track', 'form_submitted', {form_id: 'contact', deal_amount: 80});`)
		rows := waitRows(t, tu, "/p/mirror-no-ads", atLeast("form_submitted", 1))
		eventID := named(rows, "form_submitted")[0].EventID
		eventually(t, "skipped_consent row in deliveries", func() (bool, string) {
			n := ts.count(t, "SELECT count() FROM DB.deliveries WHERE status = 'skipped_consent' AND event_name = 'form_submitted' AND forwarded_name = 'Lead' AND event_id = '"+eventID+"'")
			return n == 1, fmt.Sprint(n, " rows")
		})
		if n := eval[int](t, ctx, `fbqCalls.length`); n != 0 {
			t.Errorf("fbq called %d times without ads consent; want 0", n)
		}
		if n := len(graph.Received()); n != before {
			t.Errorf("stand-in received %d new events without ads consent; want 0", n-before)
		}
	})
}
