package capi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/capi/capitest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const (
	testPixel = "1234567890"
	testToken = "EAAtesttoken"
)

func ptr[T any](v T) *T { return &v }

// websiteEvent is a browser Lead mirrored by the server.
func websiteEvent(id string, t time.Time) capi.Event {
	ud := capi.HashedUserData(capi.Identity{
		Email: "John.Doe@Example.COM", Phone: "+1 (650) 555-1234", FirstName: "John",
		LastName: "Doe", City: "Menlo Park", State: "CA", Zip: "94025", Country: "US",
		ExternalID: "visitor-42",
	})
	ud.ClientIPAddress = "2001:db8::1"
	ud.ClientUserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
	ud.Fbp = "fb.1.1596403881668.1116446470"
	ud.Fbc = "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890"
	return capi.Event{
		EventName:      "Lead",
		EventTime:      t.Unix(),
		EventID:        id,
		ActionSource:   capi.ActionWebsite,
		EventSourceURL: "https://shop.example.com/contact?utm_source=fb",
		UserData:       ud,
		CustomData:     &capi.CustomData{Value: ptr(50.0), Currency: "EUR", ContentName: "contact"},
	}
}

// leadsEvent is a Conversion Leads (CRM) stage update.
func leadsEvent(id string, t time.Time) capi.Event {
	ud := capi.HashedUserData(capi.Identity{Email: "jane.doe@example.com", Phone: "+44 20 7946 0958"})
	ud.LeadID = 1234567890123456
	return capi.Event{
		EventName:    "Marketing Qualified Lead",
		EventTime:    t.Unix(),
		EventID:      id,
		ActionSource: capi.ActionSystemGenerated,
		UserData:     ud,
		CustomData:   &capi.CustomData{EventSource: "crm", LeadEventSource: "HubSpot"},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, got)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("body differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, pretty.Bytes(), want)
	}
}

func TestBodyGolden(t *testing.T) {
	at := time.Date(2026, 11, 20, 14, 30, 0, 0, time.UTC)
	tests := []struct {
		file  string
		cfg   capi.ClientConfig
		event capi.Event
	}{
		{"website.golden.json", capi.ClientConfig{PixelID: testPixel, AccessToken: testToken},
			websiteEvent("3f1c2b9e-8d4a-4c1e-9b7f-2a6d5e4c3b21", at)},
		{"conversion_leads.golden.json", capi.ClientConfig{PixelID: testPixel, AccessToken: testToken, TestEventCode: "TEST12345", PartnerAgent: "tally-crm"},
			leadsEvent("crm-deal-981-mql", at)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := capi.NewClient(tt.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := capi.Validate(&tt.event, at.Add(time.Minute)); err != nil {
				t.Fatalf("Validate = %v; want nil", err)
			}
			b, err := c.Body([]capi.Event{tt.event})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, b)
		})
	}
}

func TestClientSendAgainstStandIn(t *testing.T) {
	now := time.Now()
	srv := capitest.Start(capitest.Config{PixelID: testPixel, AccessToken: testToken})
	defer srv.Close()
	c, err := capi.NewClient(capi.ClientConfig{GraphURL: srv.URL(), PixelID: testPixel, AccessToken: testToken, TestEventCode: "TEST1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := []capi.Event{websiteEvent("a", now.Add(-time.Hour)), leadsEvent("b", now.Add(-time.Hour))}
	resp, err := c.Send(context.Background(), events)
	if err != nil {
		t.Fatalf("Send = %v; want nil", err)
	}
	if resp.EventsReceived != 2 || resp.FbtraceID == "" || resp.HTTPStatus != 200 {
		t.Errorf("Send = %+v; want 2 events received with a fbtrace_id", resp)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Auth != "header" || reqs[0].TestEventCode != "TEST1" || reqs[0].PartnerAgent != "" {
		t.Errorf("requests = %+v; want one with a Bearer token, test code TEST1 and no partner agent (none configured)", reqs)
	}
	got := srv.Received()
	if len(got) != 2 || got[0].EventID != "a" || got[1].UserData.LeadID != 1234567890123456 {
		t.Errorf("received = %+v; want events a and b", got)
	}

	// A wrong token is Meta's code 190: permanent.
	bad, _ := capi.NewClient(capi.ClientConfig{GraphURL: srv.URL(), PixelID: testPixel, AccessToken: "nope"}, nil)
	_, err = bad.Send(context.Background(), events[:1])
	var e *capi.Error
	if !errors.As(err, &e) || e.Code != capi.CodeAccessToken || e.Retryable() || e.HTTPStatus != 400 {
		t.Errorf("Send with a bad token = %v; want permanent code 190", err)
	}
	if strings.Contains(err.Error(), "nope") {
		t.Errorf("error %q contains the token", err)
	}

	// The stand-in refuses what Meta refuses, and the client reports it.
	stale := websiteEvent("old", now.Add(-8*24*time.Hour))
	_, err = c.Send(context.Background(), []capi.Event{events[0], stale})
	if !errors.As(err, &e) || e.Code != 100 || e.Subcode != capi.SubcodeEventTooOld || e.Retryable() || !e.EventSpecific() {
		t.Errorf("Send with a stale event = %v; want permanent event-specific 100/2804003", err)
	}
	if n := len(srv.Received()); n != 2 {
		t.Errorf("received %d events after a rejected batch; want still 2", n)
	}

	// Connection refused is retryable.
	dead, _ := capi.NewClient(capi.ClientConfig{GraphURL: "http://127.0.0.1:1", PixelID: testPixel, AccessToken: testToken}, nil)
	_, err = dead.Send(context.Background(), events[:1])
	if !errors.As(err, &e) || !e.Retryable() || e.HTTPStatus != 0 {
		t.Errorf("Send to a closed port = %v; want retryable network error", err)
	}
}

func TestStandInRejects(t *testing.T) {
	now := time.Now()
	srv := capitest.Start(capitest.Config{PixelID: testPixel, AccessToken: testToken})
	defer srv.Close()
	c, _ := capi.NewClient(capi.ClientConfig{GraphURL: srv.URL(), PixelID: testPixel, AccessToken: testToken}, nil)
	mutate := func(f func(*capi.Event)) capi.Event {
		ev := websiteEvent("x", now)
		f(&ev)
		return ev
	}
	tests := []struct {
		name string
		ev   capi.Event
	}{
		{"no url", mutate(func(e *capi.Event) { e.EventSourceURL = "" })},
		{"no user agent", mutate(func(e *capi.Event) { e.UserData.ClientUserAgent = "" })},
		{"raw email", mutate(func(e *capi.Event) { e.UserData.Email = []string{"john@example.com"} })},
		{"uppercase hash", mutate(func(e *capi.Event) { e.UserData.Email = []string{strings.ToUpper(capi.HashValue("a"))} })},
		{"hashed ip", mutate(func(e *capi.Event) { e.UserData.ClientIPAddress = capi.HashValue("1.2.3.4") })},
		{"future", mutate(func(e *capi.Event) { e.EventTime = now.Add(time.Hour).Unix() })},
		{"bad action source", mutate(func(e *capi.Event) { e.ActionSource = "web" })},
	}
	for _, tt := range tests {
		_, err := c.Send(context.Background(), []capi.Event{tt.ev})
		var e *capi.Error
		if !errors.As(err, &e) || e.Code != 100 || e.Retryable() {
			t.Errorf("%s: Send = %v; want permanent code 100", tt.name, err)
		}
		if lerr := capi.Validate(&tt.ev, now); lerr == nil {
			t.Errorf("%s: Validate = nil; want an error like the stand-in's", tt.name)
		}
	}
	tooMany := make([]capi.Event, 1001)
	for i := range tooMany {
		tooMany[i] = websiteEvent("x", now)
	}
	if _, err := c.Send(context.Background(), tooMany); err == nil {
		t.Error("Send(1001 events) = nil; want an error")
	}
	if len(srv.Requests()) != len(tests) {
		t.Errorf("stand-in saw %d requests; want %d (1,001 events must not be posted)", len(srv.Requests()), len(tests))
	}
}

func TestClassification(t *testing.T) {
	// Each row is an answer Meta gives, with what Send must make of it.
	tests := []struct {
		name          string
		status        int
		retryAfter    string
		body          string
		retryable     bool
		eventSpecific bool
		wantAfter     time.Duration
	}{
		{"unknown error", 500, "", `{"error":{"message":"An unknown error occurred","type":"OAuthException","code":1,"fbtrace_id":"A"}}`, true, false, 0},
		{"service", 503, "", `{"error":{"message":"Service temporarily unavailable","code":2,"is_transient":true}}`, true, false, 0},
		{"app throttled as 400", 400, "", `{"error":{"message":"(#4) Application request limit reached","code":4}}`, true, false, 0},
		{"user throttled", 400, "", `{"error":{"message":"(#17) User request limit reached","code":17}}`, true, false, 0},
		{"app limit", 400, "", `{"error":{"message":"(#341) Application limit reached","code":341}}`, true, false, 0},
		{"policy block", 400, "", `{"error":{"message":"temporarily blocked","code":368}}`, true, false, 0},
		{"rate limit 613", 400, "", `{"error":{"message":"Calls to this api have exceeded the rate limit.","code":613}}`, true, false, 0},
		{"ads management BUC", 400, "", `{"error":{"message":"User request limit reached","code":80004,"error_subcode":2446079}}`, true, false, 0},
		{"custom audience BUC", 400, "", `{"error":{"message":"There have been too many calls to this ad-account","code":80003}}`, true, false, 0},
		{"is_transient flag", 400, "", `{"error":{"message":"Temporary issue","code":999,"is_transient":true}}`, true, false, 0},
		{"429 with seconds", 429, "120", `{"error":{"message":"slow down","code":4}}`, true, false, 120 * time.Second},
		{"429 with date", 429, "Sun, 22 Nov 2026 21:02:00 GMT", `{}`, true, false, 2 * time.Minute},
		{"502 html", 502, "", `<html>Bad Gateway</html>`, true, false, 0},
		{"408", 408, "", ``, true, false, 0},
		{"invalid token", 400, "", `{"error":{"message":"Error validating access token","type":"OAuthException","code":190,"error_subcode":463}}`, false, false, 0},
		{"invalid parameter", 400, "", `{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2804003,"error_user_title":"Event Timestamp Too Old"}}`, false, true, 0},
		{"no such pixel", 400, "", `{"error":{"message":"Unsupported post request. Object with ID '1' does not exist","type":"GraphMethodException","code":100,"error_subcode":33}}`, false, false, 0},
		{"permission", 403, "", `{"error":{"message":"(#200) Permissions error","code":200}}`, false, false, 0},
		{"api method", 400, "", `{"error":{"message":"(#3) Application does not have the capability","code":3}}`, false, false, 0},
		{"404 html", 404, "", `<html>not found</html>`, false, false, 0},
	}
	now := time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		h := http.Header{}
		if tt.retryAfter != "" {
			h.Set("Retry-After", tt.retryAfter)
		}
		_, err := capi.ParseResponse(tt.status, h, []byte(tt.body), now)
		var e *capi.Error
		if !errors.As(err, &e) {
			t.Errorf("%s: err = %v; want *capi.Error", tt.name, err)
			continue
		}
		if e.Retryable() != tt.retryable || e.EventSpecific() != tt.eventSpecific || e.RetryAfter != tt.wantAfter {
			t.Errorf("%s: Retryable = %v, EventSpecific = %v, RetryAfter = %v; want %v, %v, %v",
				tt.name, e.Retryable(), e.EventSpecific(), e.RetryAfter, tt.retryable, tt.eventSpecific, tt.wantAfter)
		}
		if e.HTTPStatus != tt.status {
			t.Errorf("%s: HTTPStatus = %d; want %d", tt.name, e.HTTPStatus, tt.status)
		}
	}

	resp, err := capi.ParseResponse(200, nil, []byte(`{"events_received":3,"messages":[],"fbtrace_id":"AbC"}`), now)
	if err != nil || resp.EventsReceived != 3 || resp.FbtraceID != "AbC" {
		t.Errorf("ParseResponse(200) = %+v, %v; want 3 received, trace AbC", resp, err)
	}
	_, err = capi.ParseResponse(200, nil, []byte(`<html>`), now)
	var e *capi.Error
	if !errors.As(err, &e) || !e.Retryable() {
		t.Errorf("ParseResponse(200, html) = %v; want a retryable error", err)
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add(200, "", `{"events_received":1,"messages":[],"fbtrace_id":"A"}`)
	f.Add(400, "", `{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2804003,"is_transient":false}}`)
	f.Add(429, "30", `{"error":{"code":4}}`)
	f.Add(503, "Sun, 22 Nov 2026 21:02:00 GMT", `<html>`)
	f.Add(400, "-1", `{"error":"text"}`)
	now := time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		if status < 100 || status > 599 {
			return
		}
		h := http.Header{"Retry-After": {retryAfter}}
		resp, err := capi.ParseResponse(status, h, []byte(body), now)
		if status >= 300 {
			var e *capi.Error
			if !errors.As(err, &e) || e.HTTPStatus != status || e.Error() == "" {
				t.Fatalf("ParseResponse(%d, %q) = %+v, %v; want an *Error with the status", status, body, resp, err)
			}
			if e.RetryAfter < 0 {
				t.Fatalf("RetryAfter = %v; want >= 0", e.RetryAfter)
			}
			if status >= 500 && !e.Retryable() {
				t.Fatalf("HTTP %d not retryable", status)
			}
		}
	})
}
