package ingest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
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
		r = flate.NewReader(bytes.NewReader(raw))
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
