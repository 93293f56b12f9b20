package ingest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Every 400 and 403 from /e says why in a short plain-text body, so a
// developer looking at the request in the browser's network panel sees the
// reason the tracker does not read.
func TestEventPathRefusalsSayWhy(t *testing.T) {
	h := newBrowserHarness(t)
	for _, tt := range []struct {
		name, origin, body string
		headers            []string
		want               int
		reason             string
	}{
		{"not JSON", "https://shop.example.com", `{"site":`, nil, 400, "not a snippet batch"},
		{"unknown site", "https://shop.example.com", `{"site":"nope","events":[]}`, nil, 403, `unknown site "nope"`},
		{"site does not list the origin", "https://blog.example.org", `{"site":"shop","events":[]}`, nil, 403, "does not list origin blog.example.org"},
		{"foreign origin", "https://evil.example.net", `{"site":"shop","events":[]}`, nil, 403, "origin not allowed"},
		{"no origin, no referer", "", `{"site":"shop","events":[]}`, nil, 403, "origin not allowed"},
		{"corrupt gzip", "https://shop.example.com", "plain", []string{"Content-Encoding", "gzip"}, 400, "not valid gzip"},
	} {
		resp := h.post(t, tt.origin, tt.body, tt.headers...)
		body := readAll(t, resp.Body)
		if resp.StatusCode != tt.want || !strings.Contains(body, tt.reason) || len(body) > 512 ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d %q (%s); want %d with a short text/plain reason containing %q",
				tt.name, resp.StatusCode, clip(body, 300), resp.Header.Get("Content-Type"), tt.want, tt.reason)
		}
	}
}

// The public listener answers /readyz with ready or not ready and nothing
// else, and serves neither /metrics nor a demo page unless given one; the
// admin listener has the metrics and the reason.
func TestOperatorEndpointsOffThePublicListener(t *testing.T) {
	down := errors.New("clickhouse: dial tcp 10.1.2.3:9000: connect: connection refused")
	h := newBrowserHarnessConfig(t, func(cfg *Config) {
		cfg.Ready = func(context.Context) error { return down }
	})
	get := func(do func(*http.Request) (*http.Response, error), path string) (int, string) {
		t.Helper()
		resp, err := do(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	public := func(r *http.Request) (*http.Response, error) { return h.c.App().Test(r, -1) }
	if code, body := get(public, "/readyz"); code != 503 || body != "not ready" {
		t.Errorf("public GET /readyz = %d %q; want 503 \"not ready\" and no detail", code, body)
	}
	for _, path := range []string{"/metrics", "/demo", "/debug/pprof/", "/console", "/console/stream"} {
		if code, _ := get(public, path); code != 404 {
			t.Errorf("public GET %s = %d; want 404", path, code)
		}
	}

	reg := prometheus.NewRegistry()
	accepted := prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_test_accepted_total", Help: "test"})
	reg.MustRegister(accepted)
	accepted.Add(3)
	a := NewAdmin(AdminConfig{Ready: func(context.Context) error { return down }, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})})
	admin := func(r *http.Request) (*http.Response, error) { return a.App().Test(r, -1) }
	if code, body := get(admin, "/readyz"); code != 503 || !strings.Contains(body, "10.1.2.3:9000") {
		t.Errorf("admin GET /readyz = %d %q; want 503 with the reason", code, body)
	}
	// app.Test's client is not on loopback: the profiles want a console
	// token from it (TestProfilesNeedATokenOffLoopback).
	if code, body := get(func(r *http.Request) (*http.Response, error) { return consoleAdmin(nil).App().Test(r, -1) }, "/debug/pprof/"); code != 401 {
		t.Errorf("admin GET /debug/pprof/ from another host without a token = %d %q; want 401", code, clip(body, 200))
	}
	req := httptest.NewRequest("GET", "/debug/pprof/", nil)
	req.Header.Set("Authorization", "Bearer console-secret")
	if resp, err := consoleAdmin(nil).App().Test(req, -1); err != nil {
		t.Fatal(err)
	} else if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("admin GET /debug/pprof/ with a console token = %d; want 200 with the profile index", resp.StatusCode)
	}
	if code, body := get(admin, "/metrics"); code != 200 || !strings.Contains(body, "tally_test_accepted_total 3") {
		t.Errorf("admin GET /metrics = %d %q; want 200 with the counters", code, clip(body, 300))
	}

	demo := newBrowserHarnessConfig(t, func(cfg *Config) { cfg.Pages = map[string][]byte{"/demo": []byte("<h1>demo</h1>")} })
	if code, body := get(func(r *http.Request) (*http.Response, error) { return demo.c.App().Test(r, -1) }, "/demo"); code != 200 || body != "<h1>demo</h1>" {
		t.Errorf("GET /demo with the page enabled = %d %q; want 200 and the page", code, body)
	}
}

// The operators' POST endpoints read their bodies as the public ones do:
// after the token, one encoding at most, never inflated past 64 KiB.
func TestAdminBodiesBounded(t *testing.T) {
	var got []EraseRequest
	a := NewAdmin(AdminConfig{
		Tokens: []Token{{Name: "ops", Token: "ops-secret", Scopes: []string{ScopeErase}}},
		Erase: func(_ context.Context, r EraseRequest) (any, error) {
			got = append(got, r)
			return map[string]int{"events": 1}, nil
		},
	})
	twice := bomb(200 << 20)
	for _, tt := range []struct {
		name, token, encoding string
		body                  []byte
		want                  int
		reason                string
	}{
		{"no token, before inflating", "", "gzip, gzip", twice, 401, "Bearer"},
		{"chained gzip", "ops-secret", "gzip, gzip", twice, 415, "one encoding at most"},
		{"gzip past 64 KiB", "ops-secret", "gzip", gzipped(make([]byte, 1<<20)), 413, "inflates past the limit"},
		{"one gzip", "ops-secret", "gzip", gzipped([]byte(`{"email":"ada@example.com"}`)), 200, `"events":1`},
	} {
		req := httptest.NewRequest("POST", "/privacy/erase", strings.NewReader(string(tt.body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", tt.encoding)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := a.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		if resp.StatusCode != tt.want || !strings.Contains(body, tt.reason) {
			t.Errorf("%s: %d %q; want %d with %q", tt.name, resp.StatusCode, clip(body, 300), tt.want, tt.reason)
		}
	}
	if len(got) != 1 || got[0].Email != "ada@example.com" {
		t.Errorf("erasures = %+v; want the one of the gzipped request", got)
	}
}
