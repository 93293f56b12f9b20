package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/rules/capi/capitest"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/store/chtest"
)

// testServer is a whole tally, as serve builds it, on a loopback port with a
// fresh database on the test ClickHouse server.
type testServer struct {
	*server
	url  string
	conn driver.Conn
	db   string
}

const testAPIToken = "serve-test-token-0123456789"

// startTestServer runs tally for yamlText. The config's clickhouse, listen
// and data_dir are replaced by the test's own.
func startTestServer(t testing.TB, yamlText string, opt serverOptions) *testServer {
	t.Helper()
	f, probs := config.Parse("test.yaml", []byte(yamlText), func(string) (string, bool) { return "", false })
	if len(probs) > 0 {
		t.Fatalf("config: %v", probs)
	}
	dsn := chtest.DSN(t)
	f.ClickHouse.DSN = dsn
	f.ClickHouse.Database = chtest.Database(t, dsn)
	f.DataDir = t.TempDir()
	opt.Listen, opt.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	if opt.FlushAge == 0 {
		opt.FlushAge = 20 * time.Millisecond
	}
	srv, err := startServer(context.Background(), f, opt)
	if err != nil {
		t.Fatalf("start tally: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testServer{server: srv, url: "http://" + srv.Addr(), conn: chtest.Open(t, dsn), db: f.ClickHouse.Database}
}

func (ts *testServer) post(t testing.TB, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", ts.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls f until it reports true or 10 s pass.
func eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, state := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after 10s; last state: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (ts *testServer) count(t *testing.T, query string) uint64 {
	t.Helper()
	var n uint64
	if err := ts.conn.QueryRow(context.Background(), strings.ReplaceAll(query, "DB.", "`"+ts.db+"`.")).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

const serveYAML = `
sites:
  - id: shop
    domains: [shop.example.com]
api_tokens:
  - {name: crm, token: ` + testAPIToken + `}
events:
  - name: viewed_car
    label: Viewed car
    properties:
      - {name: make, type: string}
      - {name: year, type: number}
      - {name: condition, type: enumeration, options: [new, used]}
      - {name: delivered_at, type: datetime}
      - {name: first_registered, type: date}
      - {name: certified, type: bool}
`

// TestAPIToClickHouse sends completions over the HubSpot-compatible API and
// reads them back from ClickHouse, typed view included.
func TestAPIToClickHouse(t *testing.T) {
	ts := startTestServer(t, serveYAML, serverOptions{})
	code, body := ts.post(t, "/events/v3/send/batch", `{"inputs":[
		{"eventName":"viewed_car","email":"ada@example.com","uuid":"e-1","occurredAt":"2026-11-01T10:00:00.250Z",
		 "properties":{"make":"volvo","year":"2020.5","condition":"new;used","delivered_at":"2026-10-30T08:15:00Z",
		 "first_registered":"2021-03-01","certified":"true","hs_page_url":"https://shop.example.com/cars/1?utm_source=news&utm_medium=email"}},
		{"eventName":"viewed_car","utk":"visitor-1","uuid":"e-2","properties":{"make":"saab"}}]}`)
	if code != 204 {
		t.Fatalf("send batch: %d %s", code, body)
	}
	// A resend of e-1 is acknowledged and not stored again.
	if code, body := ts.post(t, "/events/v3/send", `{"eventName":"viewed_car","email":"ada@example.com","uuid":"e-1","properties":{"make":"other"}}`); code != 204 {
		t.Fatalf("resend: %d %s", code, body)
	}
	if code, _ := ts.post(t, "/events/v3/send", `{"eventName":"viewed_car","email":"ada@example.com","properties":{"year":"old"}}`); code != 400 {
		t.Fatalf("bad year: %d; want 400", code)
	}
	eventually(t, "rows in events", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.events")
		return n == 2, fmt.Sprint(n, " rows")
	})
	eventually(t, "rejection row", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.rejections WHERE reason = 'INVALID_VALUE' AND field = 'properties.year'")
		return n == 1, fmt.Sprint(n, " rows")
	})

	var (
		make_, email, utmSource, touch string
		ms                             uint16
		year                           *float64
		condition                      []string
		delivered                      *time.Time
		registered                     *time.Time
		certified                      *uint8
	)
	row := ts.conn.QueryRow(context.Background(), "SELECT make, email, utm_source, touchpoint_source, occurred_at_ms, year, condition, delivered_at, first_registered, certified FROM `"+ts.db+"`.event_viewed_car WHERE event_id = 'e-1'")
	if err := row.Scan(&make_, &email, &utmSource, &touch, &ms, &year, &condition, &delivered, &registered, &certified); err != nil {
		t.Fatal(err)
	}
	if make_ != "volvo" || email != "ada@example.com" || ms != 250 || year == nil || *year != 2020.5 ||
		strings.Join(condition, ",") != "new,used" || delivered == nil || !delivered.Equal(time.Date(2026, 10, 30, 8, 15, 0, 0, time.UTC)) ||
		registered == nil || registered.Format("2006-01-02") != "2021-03-01" || certified == nil || *certified != 1 {
		t.Errorf("typed row: make %q email %q ms %d year %v condition %v delivered %v registered %v certified %v",
			make_, email, ms, deref(year), condition, deref(delivered), deref(registered), deref(certified))
	}
	if utmSource != "news" || touch != "EMAIL_MARKETING" {
		t.Errorf("attribution: utm_source %q touchpoint %q; want news, EMAIL_MARKETING", utmSource, touch)
	}

	admin := "http://" + ts.AdminAddr()
	for url, want := range map[string]string{
		ts.url + "/healthz": "ok",
		ts.url + "/readyz":  "ready",
		admin + "/readyz":   "ready",
		admin + "/metrics":  `tally_completions_accepted_total{source="api"} 2`,
	} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s = %d, body without %q:\n%.500s", url, resp.StatusCode, want, b)
		}
	}
	// Operators' endpoints and the demo page (off in this config) are not
	// on the public listener.
	for _, path := range []string{"/metrics", "/demo"} {
		resp, err := http.Get(ts.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("public GET %s = %d; want 404", path, resp.StatusCode)
		}
	}

	types := map[string]string{}
	rows, err := ts.conn.Query(context.Background(), "SELECT name, type FROM system.columns WHERE database = ? AND table = 'event_viewed_car'", ts.db)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, ty string
		rows.Scan(&n, &ty)
		types[n] = ty
	}
	rows.Close()
	for col, want := range map[string]string{"make": "String", "year": "Nullable(Float64)", "condition": "Array(String)",
		"delivered_at": "Nullable(DateTime", "first_registered": "Nullable(Date)", "certified": "Nullable(UInt8)"} {
		if !strings.HasPrefix(types[col], want) {
			t.Errorf("event_viewed_car.%s is %q; want %s", col, types[col], want)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestForwardToMeta runs a rule end to end: a completion accepted over the
// API reaches a local Graph API stand-in with the completion's event id, and
// its outcome lands in deliveries.
func TestForwardToMeta(t *testing.T) {
	graph := capitestServer(t)
	raw := &rawBodies{}
	front := httptest.NewServer(raw.wrap(graph))
	t.Cleanup(front.Close)
	yaml := serveYAML + `  - name: form_submitted
    label: Form submitted
    properties:
      - {name: form_id, type: string}
      - {name: deal_amount, type: number}
destinations:
  - name: meta_shop
    type: meta_capi
    pixel_id: "1234567890"
    access_token: ` + graphToken + `
    graph_url: ` + front.URL + `
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
      share: [email, client_ip, user_agent]
`
	ts := startTestServer(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	ua := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	code, body := ts.post(t, "/events/v3/send/batch", `{"inputs":[
		{"eventName":"form_submitted","email":"Ada@Example.com","uuid":"lead-1","properties":{"form_id":"contact","deal_amount":"120",
		 "hs_page_url":"https://shop.example.com/contact","hs_user_agent":"`+ua+`"}},
		{"eventName":"form_submitted","email":"bob@example.com","uuid":"other-1","properties":{"form_id":"newsletter",
		 "hs_page_url":"https://shop.example.com/news","hs_user_agent":"`+ua+`"}}]}`)
	if code != 204 {
		t.Fatalf("send: %d %s", code, body)
	}
	eventually(t, "event at the Graph stand-in", func() (bool, string) {
		got := graph.Received()
		return len(got) == 1, fmt.Sprintf("%d events", len(got))
	})
	ev := graph.Received()[0]
	if ev.EventID != "lead-1" || ev.EventName != "Lead" || ev.ActionSource != "website" || ev.EventSourceURL != "https://shop.example.com/contact" {
		t.Errorf("forwarded %+v", ev)
	}
	if ev.CustomData == nil || ev.CustomData.Value == nil || *ev.CustomData.Value != 120 || ev.CustomData.Currency != "EUR" {
		t.Errorf("custom_data = %+v; want value 120 EUR", ev.CustomData)
	}
	// SHA-256 of "ada@example.com", normalised by Meta's rules.
	if len(ev.UserData.Email) != 1 || ev.UserData.Email[0] != hashOf("ada@example.com") {
		t.Errorf("em = %v; want the hash of the normalised email", ev.UserData.Email)
	}
	eventually(t, "sent row in deliveries", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.deliveries WHERE event_id = 'lead-1' AND status = 'sent' AND rule = 'contact_form_lead' AND event_name = 'form_submitted' AND forwarded_name = 'Lead' AND attempts = 1 AND http_status = 200 AND trace_id != ''")
		return n == 1, fmt.Sprint(n, " rows")
	})
	var pretty bytes.Buffer
	json.Indent(&pretty, raw.first(), "", "  ")
	t.Logf("body sent to Meta:\n%s", pretty.String())
}

const graphToken = "graph-test-token"

func capitestServer(t testing.TB) *capitest.Server {
	t.Helper()
	s := capitest.Start(capitest.Config{PixelID: "1234567890", AccessToken: graphToken})
	t.Cleanup(s.Close)
	return s
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TALLY_CONFIG", "")
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(serveYAML), 0o644)
	local := filepath.Join(dir, "local.yaml")
	os.WriteFile(local, []byte("listen: \"127.0.0.1:8181\"\nsites:\n  - {id: dev, domains: [127.0.0.1, localhost]}\n"), 0o644)
	os.WriteFile(bad, []byte("listen: \":8080\"\nevents:\n  - name: Bad-Name\n    propertys: []\n"), 0o644)
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"check", "-config", good}, 0, "ok (1 sites, 1 events", ""},
		{[]string{"check", "-config", bad}, 1, "", bad + ":3:11: event name \"Bad-Name\""},
		{[]string{"check", "-config", bad}, 1, "", bad + ":4:5: unknown key \"propertys\""},
		{[]string{"check", "-config", filepath.Join(dir, "missing.yaml")}, 1, "", "no such file"},
		{[]string{"snippet", "-config", good, "-site", "shop"}, 0, `src="https://shop.example.com/t.js?site=shop"`, ""},
		{[]string{"snippet", "-config", good, "-site", "nope"}, 1, "", `-site "nope" is not in`},
		// The config's only site, and a local domain reaches tally's own
		// http listener on its port.
		{[]string{"snippet", "-config", local}, 0, `src="http://127.0.0.1:8181/t.js?site=dev"`, ""},
		{[]string{"snippet", "-config", local, "-origin", "https://tally.example"}, 0, `src="https://tally.example/t.js?site=dev"`, ""},
		{[]string{"snippet"}, 1, "", "give the config with -config FILE or TALLY_CONFIG"},
		{[]string{"version"}, 0, "tally ", ""},
		{[]string{"frobnicate"}, 2, "", "unknown command"},
		{nil, 2, "", "usage: tally"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("tally %v = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.out, tc.err)
		}
	}
}

// TestStoredIPIsAnonymisedForwardedIPIsNot checks privacy.anonymize_ip: the
// row in ClickHouse holds the truncated address, while a forward that shares
// client_ip still carries the full one.
func TestStoredIPIsAnonymisedForwardedIPIsNot(t *testing.T) {
	graph := capitestServer(t)
	yaml := serveYAML + `  - name: form_submitted
    label: Form submitted
    properties:
      - {name: form_id, type: string}
privacy:
  anonymize_ip: true
destinations:
  - {name: meta, type: meta_capi, pixel_id: "1234567890", access_token: ` + graphToken + `, graph_url: ` + graph.URL() + `}
rules:
  - name: leads
    when: {event: form_submitted}
    forward: {to: meta, event_name: Lead, share: [client_ip, user_agent]}
`
	ts := startTestServer(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	req, _ := http.NewRequest("POST", ts.url+"/e", strings.NewReader(
		`{"site":"shop","events":[{"id":"0b6f4f0e-1c1a-4c55-9d43-5b3f8f7c9a01","name":"form_submitted","url":"https://shop.example.com/contact","props":{"form_id":"contact"}}]}`))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", "https://shop.example.com")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("POST /e: %d; want 204", resp.StatusCode)
	}
	eventually(t, "forward at the stand-in", func() (bool, string) {
		n := len(graph.Received())
		return n == 1, fmt.Sprint(n, " events")
	})
	if ip := graph.Received()[0].UserData.ClientIPAddress; ip != "127.0.0.1" {
		t.Errorf("forwarded client_ip_address = %q; want the full 127.0.0.1", ip)
	}
	eventually(t, "stored row", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.events WHERE event_name = 'form_submitted'")
		return n == 1, fmt.Sprint(n, " rows")
	})
	var ip string
	if err := ts.conn.QueryRow(context.Background(), "SELECT ip FROM `"+ts.db+"`.events WHERE event_name = 'form_submitted'").Scan(&ip); err != nil {
		t.Fatal(err)
	}
	if ip != "127.0.0.0" {
		t.Errorf("stored ip = %q; want 127.0.0.0 (the /24)", ip)
	}
}

// rawBodies wraps the Graph API stand-in and keeps each request body as
// sent, with when it arrived, so a test can show the exact JSON that left
// tally and when.
type rawBodies struct {
	mu     sync.Mutex
	bodies [][]byte
	at     []time.Time
}

func (rb *rawBodies) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		b, _ := io.ReadAll(r.Body)
		rb.mu.Lock()
		rb.bodies = append(rb.bodies, b)
		rb.at = append(rb.at, now)
		rb.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		next.ServeHTTP(w, r)
	})
}

func (rb *rawBodies) first() []byte {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if len(rb.bodies) == 0 {
		return nil
	}
	return rb.bodies[0]
}

// arrivals maps each event_id to when its first request arrived.
func (rb *rawBodies) arrivals() map[string]time.Time {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	out := map[string]time.Time{}
	for i, b := range rb.bodies {
		var req struct {
			Data []struct {
				EventID string `json:"event_id"`
			} `json:"data"`
		}
		json.Unmarshal(b, &req)
		for _, d := range req.Data {
			if _, seen := out[d.EventID]; !seen {
				out[d.EventID] = rb.at[i]
			}
		}
	}
	return out
}

// TestForwardConversionLeads runs a CRM lifecycle completion through a
// conversion_leads destination: action_source system_generated, the Lead
// Ads id in user_data.lead_id, custom_data.event_source "crm" and the
// configured lead_event_source. Run with -v to see the exact body sent.
func TestForwardConversionLeads(t *testing.T) {
	graph := capitestServer(t)
	raw := &rawBodies{}
	front := httptest.NewServer(raw.wrap(graph))
	t.Cleanup(front.Close)
	yaml := serveYAML + `  - name: lifecycle_stage_changed
    label: Lifecycle stage changed
    properties:
      - {name: stage, type: enumeration, options: [lead, mql, sql, customer]}
      - {name: lead_id, type: string}
destinations:
  - name: meta_crm
    type: meta_capi
    pixel_id: "1234567890"
    access_token: ` + graphToken + `
    graph_url: ` + front.URL + `
    mode: conversion_leads
    lead_event_source: HubSpot
    test_event_code: TEST4242
    partner_agent: acme-crm-sync
rules:
  - name: mql
    when:
      event: lifecycle_stage_changed
      where:
        - {property: stage, op: is_equal_to, value: mql}
    forward:
      to: meta_crm
      event_name: Marketing Qualified Lead
      share: [email, phone]
      lead_id: {property: lead_id}
`
	ts := startTestServer(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	code, body := ts.post(t, "/events/v3/send/batch", `{"inputs":[
		{"eventName":"lifecycle_stage_changed","email":"ada@example.com","uuid":"crm-981-mql","properties":{"stage":"mql","lead_id":"1234567890123456"}},
		{"eventName":"lifecycle_stage_changed","email":"ada@example.com","uuid":"crm-981-sql","properties":{"stage":"sql","lead_id":"1234567890123456"}}]}`)
	if code != 204 {
		t.Fatalf("send: %d %s", code, body)
	}
	eventually(t, "event at the Graph stand-in", func() (bool, string) {
		n := len(graph.Received())
		return n == 1, fmt.Sprint(n, " events")
	})
	ev := graph.Received()[0]
	if ev.EventID != "crm-981-mql" || ev.EventName != "Marketing Qualified Lead" || ev.ActionSource != "system_generated" ||
		ev.UserData.LeadID != 1234567890123456 || ev.CustomData == nil || ev.CustomData.EventSource != "crm" ||
		ev.CustomData.LeadEventSource != "HubSpot" || len(ev.UserData.Email) != 1 {
		t.Errorf("forwarded %+v user_data %+v custom_data %+v", ev, ev.UserData, ev.CustomData)
	}
	if reqs := graph.Requests(); len(reqs) != 1 || reqs[0].TestEventCode != "TEST4242" || reqs[0].PartnerAgent != "acme-crm-sync" {
		t.Errorf("requests = %+v; want one carrying the configured test_event_code and partner_agent", reqs)
	}
	var pretty bytes.Buffer
	json.Indent(&pretty, raw.first(), "", "  ")
	t.Logf("body sent to Meta:\n%s", pretty.String())
}

// leadsYAML is serveYAML with a form_submitted event, a Meta destination at
// the Graph stand-in graphURL, a rule "leads" forwarding every form as a
// Lead, and, when name is not empty, one more API token with the given
// scope.
func leadsYAML(graphURL, name, token, scope string) string {
	y := serveYAML + `  - name: form_submitted
    label: Form submitted
    properties:
      - {name: form_id, type: string}
destinations:
  - {name: meta, type: meta_capi, pixel_id: "1234567890", access_token: ` + graphToken + `, graph_url: ` + graphURL + `}
rules:
  - name: leads
    when: {event: form_submitted}
    forward: {to: meta, event_name: Lead, share: [email, user_agent]}
`
	if name == "" {
		return y
	}
	return strings.Replace(y, "  - {name: crm, token: "+testAPIToken+"}",
		"  - {name: crm, token: "+testAPIToken+"}\n  - {name: "+name+", token: "+token+", scopes: ["+scope+"]}", 1)
}
