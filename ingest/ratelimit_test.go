package ingest

import (
	"testing"
)

func TestSnippetRateLimitPerClientIP(t *testing.T) {
	h := newBrowserHarnessConfig(t, func(cfg *Config) {
		cfg.RateLimitPerMinute = 3
		cfg.TrustedProxies = []string{"0.0.0.0/32"} // app.Test's peer: the test stands in for a proxy
	})
	post := func(ip string) (int, string) {
		resp := h.post(t, "https://shop.example.com", shopBatch, "X-Forwarded-For", ip)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := 0; i < 3; i++ {
		if code, _ := post("203.0.113.7"); code != 204 {
			t.Fatalf("request %d from 203.0.113.7: %d; want 204", i+1, code)
		}
	}
	code, retry := post("203.0.113.7")
	if code != 429 || retry == "" {
		t.Errorf("fourth request: %d, Retry-After %q; want 429 with Retry-After", code, retry)
	}
	if code, _ := post("198.51.100.9"); code != 204 {
		t.Errorf("another client IP: %d; want 204 (the limit is per IP)", code)
	}
}

func TestSnippetRateLimitOff(t *testing.T) {
	h := newBrowserHarnessConfig(t, func(cfg *Config) { cfg.RateLimitPerMinute = -1 })
	for i := 0; i < 1300; i++ {
		if resp := h.post(t, "https://shop.example.com", shopBatch); resp.StatusCode != 204 {
			t.Fatalf("request %d with the limit off: %d; want 204", i+1, resp.StatusCode)
		}
	}
}
