package ingest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

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
	enc := strings.ToLower(strings.TrimSpace(ctx.Get(fiber.HeaderContentEncoding)))
	identity := enc == "" || enc == "identity"
	wire := limit // what the body may be on the wire
	if !identity {
		wire = maxWireBody(limit)
	}
	raw, err := wireBody(ctx, wire)
	if err != nil {
		return nil, err
	}
	if identity {
		if raw == nil {
			raw = []byte{} // an empty body is still a body: nil means refused
		}
		return raw, nil
	}
	return inflate(raw, enc, limit)
}

// maxWireBody is how long a compressed body of at most limit bytes may be
// on the wire: 1% and 1 KiB more, for the framing a gzip of incompressible
// data adds.
func maxWireBody(limit int) int { return limit + limit/100 + 1024 }

// wireBody reads the body as sent, at most limit bytes. The collector
// streams request bodies (see NewCollector): a body longer than the limit
// by its Content-Length is refused unread, and a chunked one as soon as it
// passes the limit; either way the connection is closed after the answer,
// since the rest of the body is still on it.
func wireBody(ctx *fiber.Ctx, limit int) ([]byte, error) {
	req := ctx.Request()
	tooLarge := func(n string) error {
		ctx.Context().SetConnectionClose()
		return &errBody{fiber.StatusRequestEntityTooLarge, fmt.Sprintf("body is %s bytes; the limit is %d", n, limit)}
	}
	cl := req.Header.ContentLength()
	if cl > limit {
		return nil, tooLarge(fmt.Sprint(cl))
	}
	if !req.IsBodyStream() {
		raw := req.Body()
		if len(raw) > limit {
			return nil, tooLarge(fmt.Sprint(len(raw)))
		}
		return raw, nil
	}
	if cl >= 0 && cl <= prefetchedBody {
		return req.Body(), nil // read with the headers
	}
	body := newPatientBody(ctx)
	var raw []byte
	var err error
	if cl >= 0 {
		raw = make([]byte, cl)
		var n int
		if n, err = io.ReadFull(body, raw); err != nil {
			err = fmt.Errorf("body ended after %d of its %d bytes: %w", n, cl, err)
		}
	} else { // chunked: read through a bound
		raw, err = io.ReadAll(io.LimitReader(body, int64(limit)+1))
	}
	if err == nil {
		err = body.admitAgain()
	}
	if err != nil {
		ctx.Context().SetConnectionClose()
		return nil, &errBody{fiber.StatusBadRequest, "body could not be read: " + err.Error()}
	}
	if len(raw) > limit {
		return nil, tooLarge("more than " + fmt.Sprint(limit))
	}
	req.SetBodyRaw(raw) // the stream is read: the connection can serve the next request
	return raw, nil
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

// admittedBodyWait is how long a request that holds its admission (admit)
// may take to send the rest of its body before it gives its place back; it
// then has slowBodyTimeout to send it, and waits its turn again. A client
// that announces a large body and sends it slowly would otherwise hold the
// allowance every other request waits for.
const (
	admittedBodyWait = time.Second
	slowBodyTimeout  = readTimeout
)

// patientBody reads a streamed request body, giving the request's
// admission back when the body does not arrive within admittedBodyWait.
type patientBody struct {
	ctx  *fiber.Ctx
	r    io.Reader
	a    *admission // nil: the path is not admitted (admin bodies)
	lost bool       // a was given back while the body arrived
}

func newPatientBody(ctx *fiber.Ctx) *patientBody {
	p := &patientBody{ctx: ctx, r: ctx.Request().BodyStream()}
	if a, ok := ctx.Locals(admissionKey{}).(*admission); ok && a.held {
		p.a = a
		_ = ctx.Context().Conn().SetReadDeadline(time.Now().Add(admittedBodyWait))
	}
	return p
}

func (p *patientBody) Read(b []byte) (int, error) {
	for {
		n, err := p.r.Read(b)
		var ne net.Error
		if err == nil || p.a == nil || p.lost || !errors.As(err, &ne) || !ne.Timeout() {
			return n, err
		}
		p.a.release()
		p.lost = true
		if err := p.ctx.Context().Conn().SetReadDeadline(time.Now().Add(slowBodyTimeout)); err != nil {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// admitAgain waits for the admission a slow body gave back.
func (p *patientBody) admitAgain() error {
	if !p.lost {
		return nil
	}
	return p.a.acquire(p.ctx.UserContext())
}

// isZlibHeader reports whether b starts with a zlib header (RFC 1950):
// compression method 8 and a check value making the pair a multiple of 31.
func isZlibHeader(b []byte) bool {
	return len(b) >= 2 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}
