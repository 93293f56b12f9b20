package ingest

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/semaphore"
)

// maxBodiesInFlight bounds the request bodies being parsed, validated and
// appended at once, in bytes. A request body becomes about seven times its
// size in memory while it is handled (completions, the log record, the
// log's copy), so 2 MiB keeps that near 15 MB whatever the number of
// connections: about 20 API batches of 500 at once, or thousands of
// single-completion requests, which keeps every fsync of the log shared by
// as many requests as are waiting. Requests past the bound wait their turn;
// on 2 cores more parallel parsing would not go faster anyway.
const maxBodiesInFlight = 2 << 20

func newAdmission() *semaphore.Weighted { return semaphore.NewWeighted(maxBodiesInFlight) }

// admit holds a request until its body fits within maxBodiesInFlight, so
// the memory of requests in progress is bounded in bytes, not in requests.
func (c *Collector) admit(ctx *fiber.Ctx) error {
	// The body is not read yet (the collector streams bodies): its size is
	// its Content-Length, and a chunked body, whose size is unknown until
	// read, takes the whole allowance.
	n := int64(maxBodiesInFlight)
	if cl := ctx.Request().Header.ContentLength(); cl >= 0 {
		n = min(int64(cl)+512, maxBodiesInFlight) // headers and bookkeeping
	}
	a := &admission{sem: c.inflight, n: n}
	if err := a.acquire(ctx.UserContext()); err != nil {
		return err
	}
	defer a.release()
	ctx.Locals(admissionKey{}, a) // readBody gives it back while a slow body arrives
	return ctx.Next()
}

// admissionKey is the ctx.Locals key of a request's *admission.
type admissionKey struct{}

// admission is one request's share of maxBodiesInFlight. It is used by the
// request's goroutine only.
type admission struct {
	sem  *semaphore.Weighted
	n    int64
	held bool
}

func (a *admission) acquire(ctx context.Context) error {
	if err := a.sem.Acquire(ctx, a.n); err != nil {
		return err
	}
	a.held = true
	return nil
}

func (a *admission) release() {
	if a.held {
		a.sem.Release(a.n)
		a.held = false
	}
}
