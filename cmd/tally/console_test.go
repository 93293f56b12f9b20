package main

// The console in a real headless Chromium against a whole running tally:
// its live page shows a completion sent during the test, highlighted for a
// browser in debug mode with the rule it matched; the rules page shows the
// delivery with the Graph API stand-in's answer; the deduplication page
// counts the conversion as reaching Meta from both sides. Every page is
// screenshotted for a reviewer (TALLY_SCREENSHOTS=dir keeps them).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/rules/salesforce"
	"github.com/tally-analytics/tally/rules/salesforce/sftest"
)

// mirroredLeadYAML is browserYAML with a Meta destination at the Graph
// stand-in graphURL, the rule contact_form_lead forwarding contact forms
// as Lead and mirroring them in the browser, and an API token.
func mirroredLeadYAML(graphURL string) string {
	return browserYAML + `destinations:
  - name: meta_shop
    type: meta_capi
    pixel_id: "1234567890"
    access_token: ` + graphToken + `
    graph_url: ` + graphURL + `
rules:
  - name: contact_form_lead
    when:
      event: form_submitted
      where:
        - {property: form_id, op: is_equal_to, value: contact}
    forward:
      to: meta_shop
      event_name: Lead
      value: {property: deal_amount, default: 50}
      currency: EUR
      share: [email, client_ip, user_agent, fbp, fbc]
      mirror_in_browser: true
api_tokens:
  - {name: test, token: ` + testAPIToken + `}
`
}

func TestConsoleInBrowser(t *testing.T) {
	graph := capitestServer(t)
	// A second destination whose token Meta refuses: it pauses. And a
	// Salesforce org, where each form becomes a task on the contact.
	sf := sftest.Start(sftest.Config{ClientID: sfClientID, ClientSecret: sfSecret, APIVersion: salesforce.DefaultAPIVersion, ExternalIDField: sfExtField})
	t.Cleanup(sf.Close)
	sf.AddContact("lead@example.com", time.Now().Add(-time.Hour))
	yaml := strings.Replace(mirroredLeadYAML(graph.URL()), "rules:\n", `  - {name: meta_refused, type: meta_capi, pixel_id: "1234567890", access_token: wrong-token, graph_url: `+graph.URL()+`}
  - name: crm
    type: salesforce
    salesforce: {instance_url: `+sf.URL()+`, client_id: `+sfClientID+`, client_secret: `+sfSecret+`, external_id_field: `+sfExtField+`}
rules:
  - name: refused_lead
    when: {event: form_submitted}
    forward: {to: meta_refused, event_name: Lead, share: [email, client_ip, user_agent]}
  - name: form_tasks
    when: {event: form_submitted}
    forward: {to: crm, task: {subject: "{{label}}: {{form_id}}", type: Other}}
`, 1)
	tu := startBrowserTallyWith(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	ts := tu.ts
	admin := "http://" + ts.AdminAddr()
	f := newFront(t, ts.url)
	shots := screenshotDir(t)

	// A rejected API completion and a truncated snippet one, for the
	// rejections page (rejections are written every 5 s: sent first).
	if code, body := ts.post(t, "/events/v3/send", `{"eventName":"viewed_car","email":"r@example.com","properties":{"colour":"red"}}`); code != 400 {
		t.Fatalf("API send with an unknown property = %d %s; want 400", code, body)
	}

	console := newBrowser(t)
	do(t, console, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(admin+"/console"))
	waitFor(t, console, "the live stream to connect", `document.getElementById('status').textContent == 'live'`)

	// A visitor in debug mode sends a lead; an API completion arrives too.
	site := newBrowser(t)
	stub := `<script>window.fbq = function () { (window.fbqCalls = window.fbqCalls || []).push(arguments); };</script>`
	do(t, site, chromedp.Navigate(f.page("/p/console", stub, "")+"?tally_debug=1"))
	loaded(t, site)
	eval[chromedp.Void](t, site, `tally('identify', {email: 'lead@example.com'});
tally('track', 'form_submitted', {form_id: 'contact', deal_amount: 120});
tally('track', 'viewed_car', {make: 'x'.repeat(300)});`)
	if code, body := ts.post(t, "/events/v3/send", `{"eventName":"viewed_car","email":"api@example.com","properties":{"make":"saab"}}`); code != 204 {
		t.Fatalf("API send = %d %s; want 204", code, body)
	}

	t.Run("live stream", func(t *testing.T) {
		waitFor(t, console, "the debug visitor's lead in the live stream",
			`[...document.querySelectorAll('#live tr.completion.debug')].some(r => r.cells[2].textContent.startsWith('form_submitted') && r.cells[5].textContent.split(', ').some(x => x.startsWith('contact_form_lead')))`)
		waitFor(t, console, "the API completion in the live stream",
			`[...document.querySelectorAll('#live tr.completion')].some(r => r.cells[3].textContent == 'api' && r.cells[4].textContent.includes('api@example.com'))`)
		shoot(t, console, shots, "live")
		// Expanding a row shows every stored field.
		detail := eval[string](t, console, `(() => { const r = [...document.querySelectorAll('#live tr.completion.debug')].find(r => r.cells[2].textContent.startsWith('form_submitted'));
r.click(); return r.nextElementSibling.hidden ? '' : r.nextElementSibling.textContent; })()`)
		for _, want := range []string{`"email": "lead@example.com"`, `"deal_amount": "120"`, `"mirror": [`, `"contact_form_lead=sent"`, `"debug": true`, `"device_type"`} {
			if !strings.Contains(detail, want) {
				t.Errorf("expanded completion lacks %s:\n%s", want, detail)
			}
		}
		// The source filter leaves only the API's completions.
		visible := eval[string](t, console, `(() => { const s = document.querySelector('#filters [name=source]'); s.value = 'api'; s.dispatchEvent(new Event('change', {bubbles: true}));
return [...document.querySelectorAll('#live tr.completion')].filter(r => !r.hidden).map(r => r.cells[3].textContent).join(','); })()`)
		if visible != "api" {
			t.Errorf("rows shown with source api: %q; want the one API completion", visible)
		}
		// The filter is in the address: the page opened at it filters the same.
		if u := eval[string](t, console, `location.pathname + location.search`); u != "/console?source=api" {
			t.Errorf("address with the source filter %q; want /console?source=api", u)
		}
		do(t, console, chromedp.Navigate(admin+"/console?debug=1&event=form_submitted"))
		waitFor(t, console, "the debug-only, form_submitted view", `(() => { const rows = [...document.querySelectorAll('#live tr.completion')];
return rows.length >= 2 && rows.filter(r => !r.hidden).map(r => r.cells[2].textContent).join() == 'form_submitted debug'; })()`)
	})

	// The lead reaches the stand-in and its outcome the deliveries table.
	var traceID, eventID string
	eventually(t, "the lead's delivery stored", func() (bool, string) {
		rows, err := ts.conn.Query(context.Background(), "SELECT trace_id, event_id FROM `"+ts.db+"`.deliveries WHERE rule = 'contact_form_lead' AND status = 'sent'")
		if err != nil {
			return false, err.Error()
		}
		defer rows.Close()
		for rows.Next() {
			if err := rows.Scan(&traceID, &eventID); err != nil {
				return false, err.Error()
			}
		}
		return traceID != "", fmt.Sprint(len(graph.Received()), " events at the stand-in")
	})

	eventually(t, "the lead's task delivery stored", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.deliveries WHERE rule = 'form_tasks' AND status = 'sent'")
		return n == 1, fmt.Sprint(n, " rows")
	})

	t.Run("rules and deliveries", func(t *testing.T) {
		do(t, console, chromedp.Navigate(admin+"/console/rules"))
		text := pageText(t, console)
		for _, want := range []string{"contact_form_lead", "enabled", "sent 1", eventID, traceID} {
			if !strings.Contains(text, want) {
				t.Errorf("rules page lacks %q:\n%s", want, text)
			}
		}
		// The delivery expands to the payload sent and the stand-in's answer.
		detail := eval[string](t, console, `(() => { const r = document.querySelector('#rule-contact_form_lead .deliveries tr.expand'); r.click(); return r.nextElementSibling.textContent; })()`)
		for _, want := range []string{`"event_id": "` + eventID + `"`, `"event_name": "Lead"`, `"fbtrace_id": "` + traceID + `"`, `"events_received": 1`} {
			if !strings.Contains(detail, want) {
				t.Errorf("expanded delivery lacks %s:\n%s", want, detail)
			}
		}
		// The Salesforce rule's delivery carries the task's id.
		var task sftest.Task
		for _, tk := range sf.Tasks() {
			task = tk
		}
		sfRow := eval[string](t, console, `(() => { const r = document.querySelector('#rule-form_tasks .deliveries tr.expand'); return r ? r.cells[3].textContent + ' ' + r.cells[6].textContent : ''; })()`)
		if task.ID == "" || sfRow != "sent "+task.ID {
			t.Errorf("form_tasks delivery status and trace id %q; want sent with the Salesforce task id %q", sfRow, task.ID)
		}
		shoot(t, console, shots, "rules")
	})

	// A lead from a browser with Global Privacy Control: neither the
	// pixel nor the server event, and the snippet says why.
	gpc := newBrowser(t)
	do(t, gpc, chromedp.Navigate(f.page("/p/gpc", `<script>Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});</script>`, "")))
	loaded(t, gpc)
	eval[chromedp.Void](t, gpc, `tally('track', 'form_submitted', {form_id: 'contact', deal_amount: 30});`)
	eventually(t, "the GPC lead skipped", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.deliveries WHERE rule = 'contact_form_lead' AND status = 'skipped_consent'")
		return n == 1, fmt.Sprint(n, " rows")
	})

	t.Run("deduplication", func(t *testing.T) {
		do(t, console, chromedp.Navigate(admin+"/console/dedup"))
		share := eval[string](t, console, `document.querySelector('#dedup-contact_form_lead .share strong').textContent`)
		counts := eval[string](t, console, `[...document.querySelectorAll('#dedup-contact_form_lead .counts td')].map(c => c.textContent).join(' ')`)
		if share != "100.0%" || counts != "1 0 0 1" {
			t.Errorf("dedup share %s, counts (both, server only, browser only, neither) %s; want 100.0%%, 1 0 0 1", share, counts)
		}
		why := eval[string](t, console, `[...document.querySelectorAll('#dedup-contact_form_lead .reasons td')].map(c => c.textContent).join(' ')`)
		if why != "neither Global Privacy Control 1" {
			t.Errorf("reasons %q; want the GPC lead as neither, for Global Privacy Control", why)
		}
		shoot(t, console, shots, "dedup")
	})

	t.Run("events", func(t *testing.T) {
		do(t, console, chromedp.Navigate(admin+"/console/events"))
		got := eval[string](t, console, `[...document.querySelectorAll('#events tbody tr')].filter(r => r.cells[0].textContent == 'form_submitted').map(r => r.cells[4].textContent + ' ' + r.cells[5].textContent).join()`)
		if got != "2 2" {
			t.Errorf("form_submitted counts (hour, day) %q; want 2 2 (the lead and the GPC lead)", got)
		}
		shoot(t, console, shots, "events")
	})

	t.Run("destinations and log", func(t *testing.T) {
		do(t, console, chromedp.Navigate(admin+"/console/destinations"))
		text := pageText(t, console)
		for _, want := range []string{"meta_shop", "meta_capi", "ok", "clickhouse", "rules"} {
			if !strings.Contains(text, want) {
				t.Errorf("destinations page lacks %q:\n%s", want, text)
			}
		}
		state := eval[string](t, console, `[...document.querySelectorAll('#destinations tbody tr')].filter(r => r.cells[0].textContent == 'meta_refused').map(r => r.cells[2].textContent + ' ' + r.cells[5].textContent).join()`)
		if !strings.HasPrefix(state, "paused 1 ") {
			t.Errorf("meta_refused state and backlog %q; want paused with the lead waiting", state)
		}
		shoot(t, console, shots, "destinations")
	})

	t.Run("live delivery outcome", func(t *testing.T) {
		do(t, console, chromedp.Navigate(admin+"/console"))
		waitFor(t, console, "the live stream to connect", `document.getElementById('status').textContent == 'live'`)
		// A new lead from the same debug browser: the live page shows what
		// each rule did with it as the outcomes arrive (the paused
		// destination's lead waits in its outbox: no outcome yet).
		eval[chromedp.Void](t, site, `tally('track', 'form_submitted', {form_id: 'contact', deal_amount: 80});`)
		waitFor(t, console, "the lead's outcomes beside it",
			`[...document.querySelectorAll('#live tr.completion.debug')].some(r => /contact_form_lead: pixel sent · server sent \(\w+\)/.test(r.cells[5].textContent))`)
		shoot(t, console, shots, "live-outcomes")
	})

	// Debug mode stays on for the browser across pages until turned off.
	t.Run("debug mode persists until turned off", func(t *testing.T) {
		do(t, site, chromedp.Navigate(f.page("/p/debug-later", "", "")))
		loaded(t, site)
		eval[chromedp.Void](t, site, `tally('track', 'viewed_car', {make: 'still'}); tally('debug', false); tally('track', 'viewed_car', {make: 'off'});`)
		query := "SELECT arrayStringConcat(groupArray(concat(prop_values[indexOf(prop_keys, 'make')], '=', toString(debug))), ' ') FROM (SELECT prop_keys, prop_values, debug FROM `" +
			ts.db + "`.events WHERE path = '/p/debug-later' AND event_name = 'viewed_car' ORDER BY occurred_at, occurred_at_ms)"
		eventually(t, "the two completions stored", func() (bool, string) {
			var got string
			if err := ts.conn.QueryRow(context.Background(), query).Scan(&got); err != nil {
				return false, err.Error()
			}
			return got == "still=1 off=0", got
		})
	})

	t.Run("rejections and truncations", func(t *testing.T) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			do(t, console, chromedp.Navigate(admin+"/console/rejections"))
			text := pageText(t, console)
			if strings.Contains(text, "UNKNOWN_PROPERTY") && strings.Contains(text, "make: ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rejections page never showed the API's UNKNOWN_PROPERTY and the snippet's cut make:\n%s", text)
			}
			time.Sleep(500 * time.Millisecond) // polling storage, not waiting for time to pass
		}
		shoot(t, console, shots, "rejections")
	})
}

// waitFor polls a JavaScript condition in the page until it holds (15 s).
func waitFor(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(pctx, chromedp.Poll[bool](js)); err != nil {
		t.Fatalf("waiting for %s: %v\npage:\n%s", what, err, pageText(t, ctx))
	}
}

func pageText(t *testing.T, ctx context.Context) string {
	t.Helper()
	return eval[string](t, ctx, `document.body.innerText`)
}

// screenshotDir is where the console's screenshots go: $TALLY_SCREENSHOTS,
// or the test's temporary directory.
func screenshotDir(t *testing.T) string {
	if dir := os.Getenv("TALLY_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// shoot saves a full-page screenshot of the console as dir/console-NAME.png.
func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
