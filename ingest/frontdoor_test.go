package ingest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// bomb is a small body that inflates to n zero bytes, gzipped twice.
func bomb(n int) []byte {
	return gzipped(gzipped(make([]byte, n)))
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, _ := io.ReadAll(r)
	return string(b)
}

// A body is inflated at most once and never past the path's limit; origin
// and token are checked before the body is read.
func TestCompressedBodies(t *testing.T) {
	h := newBrowserHarness(t)
	twice := bomb(200 << 20)
	if len(twice) > 4096 {
		t.Fatalf("bomb is %d bytes; want a small one", len(twice))
	}
	tests := []struct {
		name, origin, encoding string
		body                   []byte
		want                   int
		reason                 string
	}{
		{"chained gzip", "https://shop.example.com", "gzip, gzip", twice, 415, "one encoding at most"},
		{"gzip past the limit", "https://shop.example.com", "gzip", gzipped(make([]byte, 2<<20)), 413, "inflates past the limit"},
		{"unknown encoding", "https://shop.example.com", "zstd", []byte("x"), 415, "not supported"},
		{"not gzip", "https://shop.example.com", "gzip", []byte("plain"), 400, "not valid gzip"},
		{"foreign origin, before inflating", "https://evil.example.net", "gzip, gzip", twice, 403, "origin not allowed"},
		{"one gzip", "https://shop.example.com", "gzip", gzipped([]byte(shopBatch)), 204, ""},
	}
	for _, tt := range tests {
		resp := h.post(t, tt.origin, string(tt.body), "Content-Encoding", tt.encoding)
		body := readAll(t, resp.Body)
		if resp.StatusCode != tt.want || !strings.Contains(body, tt.reason) {
			t.Errorf("%s: %d %q; want %d with a reason containing %q", tt.name, resp.StatusCode, body, tt.want, tt.reason)
		}
	}
	if n := len(h.sink.got); n != 1 {
		t.Errorf("stored %d completions; want the one of the gzipped batch", n)
	}

	api := newAPIHarness(t)
	for _, tt := range []struct {
		name, token, encoding string
		body                  []byte
		want                  int
		reason                string
	}{
		{"no token, before inflating", "", "gzip, gzip", twice, 401, "Authentication"},
		{"chained gzip", testToken, "gzip, gzip", twice, 415, "one encoding at most"},
		{"gzip past 16 MiB", testToken, "gzip", gzipped(make([]byte, 17<<20)), 413, "inflates past the limit"},
	} {
		req, _ := http.NewRequest("POST", "/events/v3/send/batch", bytes.NewReader(tt.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", tt.encoding)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := api.c.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		if resp.StatusCode != tt.want || !strings.Contains(body, tt.reason) {
			t.Errorf("API %s: %d %q; want %d with %q", tt.name, resp.StatusCode, clip(body, 300), tt.want, tt.reason)
		}
	}
}

// The collector sits on the site's own domain and receives every
// first-party cookie: a 12 KB jar, over a real connection, is served.
func TestLargeCookieJar(t *testing.T) {
	h := newBrowserHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.c.App().Listener(ln)
	defer h.c.App().Shutdown()
	var jar strings.Builder
	for i := 0; jar.Len() < 12<<10; i++ {
		fmt.Fprintf(&jar, "_ga_%d=GA1.1.%d.%d; ", i, 1234567890+i, 1700000000+i)
	}
	for _, n := range []int{3990, 4000, 8 << 10, 12 << 10} {
		req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/e", strings.NewReader(shopBatch))
		req.Header.Set("Origin", "https://shop.example.com")
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Cookie", jar.String()[:n])
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%d-byte Cookie header: %v; want 204", n, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Errorf("%d-byte Cookie header: status %d; want 204", n, resp.StatusCode)
		}
	}
}
