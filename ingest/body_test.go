package ingest

import (
	"bytes"
	"compress/flate"
	"errors"
	"testing"
)

// FuzzInflate: whatever the body and the encoding named, inflate never
// returns more than the limit, and every refusal is a 400, 413 or 415 with
// a reason.
func FuzzInflate(f *testing.F) {
	var deflated bytes.Buffer
	zw, _ := flate.NewWriter(&deflated, flate.BestCompression)
	zw.Write(make([]byte, 5000))
	zw.Close()
	f.Add(gzipped([]byte(`{"site":"shop","events":[]}`)), "gzip", 64)
	f.Add(gzipped(make([]byte, 5000)), "x-gzip", 4096)
	f.Add(bomb(1<<20), "gzip, gzip", 1<<20)
	f.Add(deflated.Bytes(), "deflate", 4999)
	f.Add(append(gzipped([]byte("a")), gzipped([]byte("b"))...), "gzip", 16)
	f.Add([]byte("plain"), "br", 16)
	f.Fuzz(func(t *testing.T, raw []byte, enc string, limit int) {
		limit = min(max(limit, 0), 1<<20)
		out, err := inflate(raw, enc, limit)
		if err == nil {
			if len(out) > limit {
				t.Fatalf("inflate(%q) = %d bytes; want at most %d", enc, len(out), limit)
			}
			return
		}
		var eb *errBody
		if !errors.As(err, &eb) || (eb.Code != 400 && eb.Code != 413 && eb.Code != 415) || eb.Reason == "" {
			t.Fatalf("inflate(%q) error %v; want an errBody of 400, 413 or 415 with a reason", enc, err)
		}
	})
}
