package ingest

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"errors"
	"strings"
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
	var zl bytes.Buffer
	zw2 := zlib.NewWriter(&zl)
	zw2.Write([]byte(`{"inputs":[]}`))
	zw2.Close()
	f.Add(zl.Bytes(), "deflate", 64)
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

// "deflate" is zlib-wrapped (RFC 9110 §8.4.1.2; what CompressionStream
// ("deflate") and most HTTP clients send); raw deflate, which some clients
// send under the same name, is taken too, as browsers take it in answers.
func TestInflateDeflate(t *testing.T) {
	want := `{"site":"shop","events":[]}`
	var zl, raw bytes.Buffer
	zw := zlib.NewWriter(&zl)
	zw.Write([]byte(want))
	zw.Close()
	fw, _ := flate.NewWriter(&raw, flate.DefaultCompression)
	fw.Write([]byte(want))
	fw.Close()
	for name, body := range map[string][]byte{"zlib": zl.Bytes(), "raw deflate": raw.Bytes()} {
		got, err := inflate(body, "deflate", 1<<10)
		if err != nil || string(got) != want {
			t.Errorf("inflate(%s, deflate) = %q, %v; want %q", name, got, err, want)
		}
	}
	var big bytes.Buffer
	zw = zlib.NewWriter(&big)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	if _, err := inflate(big.Bytes(), "deflate", 1<<10); err == nil || !strings.Contains(err.Error(), "inflates past the limit") {
		t.Errorf("inflate(1 MiB of zlib, deflate, 1 KiB) error %v; want past the limit", err)
	}
}
