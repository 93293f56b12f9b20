package ingest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Request bodies are read here, not with fiber's Ctx.Body: that one inflates
// any chain of encodings without a bound, so a few hundred bytes of nested
// gzip become hundreds of megabytes before any check. A body may carry at
// most one encoding, gzip or deflate (what browsers' CompressionStream and
// HTTP client libraries send); it is inflated through a reader that stops
// one byte past the path's limit. As nginx and Envoy do, an encoding that is
// not understood is 415 and a body past the limit 413, each with a reason.

// errBody is an answer to a body that cannot be read; Code is its status.
type errBody struct {
	Code   int
	Reason string
}

func (e *errBody) Error() string { return e.Reason }

// readBody returns the request body, decoded, at most limit bytes, or an
// *errBody. The result may alias fiber's buffer (identity encoding): copy
// what must outlive the handler.
func readBody(ctx *fiber.Ctx, limit int) ([]byte, error) {
	raw := ctx.Request().Body()
	enc := strings.ToLower(strings.TrimSpace(ctx.Get(fiber.HeaderContentEncoding)))
	if enc == "" || enc == "identity" {
		if len(raw) > limit {
			return nil, &errBody{fiber.StatusRequestEntityTooLarge, fmt.Sprintf("body is %d bytes; the limit is %d", len(raw), limit)}
		}
		if raw == nil {
			raw = []byte{} // an empty body is still a body: nil means refused
		}
		return raw, nil
	}
	return inflate(raw, enc, limit)
}

// inflate decodes raw in the one encoding enc, reading at most limit+1
// bytes of output.
func inflate(raw []byte, enc string, limit int) ([]byte, error) {
	var r io.Reader
	switch enc {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, &errBody{fiber.StatusBadRequest, "body is not valid gzip: " + err.Error()}
		}
		zr.Multistream(false)
		r = zr
	case "deflate":
		// "deflate" is zlib-wrapped (RFC 9110 §8.4.1.2), but some clients
		// send raw deflate under that name; like browsers reading answers,
		// take the zlib form when the first two bytes are a zlib header.
		if isZlibHeader(raw) {
			zr, err := zlib.NewReader(bytes.NewReader(raw))
			if err != nil {
				return nil, &errBody{fiber.StatusBadRequest, "body is not valid deflate: " + err.Error()}
			}
			r = zr
		} else {
			r = flate.NewReader(bytes.NewReader(raw))
		}
	default:
		if strings.Contains(enc, ",") {
			return nil, &errBody{fiber.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q: one encoding at most (gzip or deflate)", clip(enc, 64))}
		}
		return nil, &errBody{fiber.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not supported; send identity, gzip or deflate", clip(enc, 64))}
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if len(out) > limit {
		return nil, &errBody{fiber.StatusRequestEntityTooLarge, fmt.Sprintf("body inflates past the limit of %d bytes", limit)}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &errBody{fiber.StatusBadRequest, fmt.Sprintf("body is not valid %s: %v", enc, err)}
	}
	return out, nil
}

// isZlibHeader reports whether b starts with a zlib header (RFC 1950):
// compression method 8 and a check value making the pair a multiple of 31.
func isZlibHeader(b []byte) bool {
	return len(b) >= 2 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}
