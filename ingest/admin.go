package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/pprof"
)

// AdminConfig is what the operator listener serves.
type AdminConfig struct {
	// Ready reports why tally cannot take traffic, in detail (internal
	// addresses included); nil means always ready.
	Ready func(ctx context.Context) error
	// Warnings are what an operator should act on although tally takes
	// traffic (a paused destination); /readyz lists them after "ready".
	Warnings func() []string
	// Metrics is served at /metrics; nil serves none.
	Metrics http.Handler
	// Erase serves POST /privacy/erase, for tokens with the erase scope;
	// nil serves none.
	Erase EraseFunc
	// Replay serves POST /rules/replay, for tokens with the replay scope;
	// nil serves none.
	Replay ReplayFunc
	Tokens []Token
}

// ReplayRequest asks a rule to forward stored history from Since on.
type ReplayRequest struct {
	Rule  string    `json:"rule"`
	Since time.Time `json:"since"`
}

// ReplayFunc runs a replay and returns what it did, to be answered as
// JSON. An error wrapping ErrReplayInput is the caller's (400).
type ReplayFunc func(ctx context.Context, r ReplayRequest) (any, error)

// ErrReplayInput marks a replay request that names no enabled rule.
var ErrReplayInput = errors.New("bad replay request")

// EraseRequest names the person to erase: any of the three.
type EraseRequest struct {
	Email      string `json:"email"`
	VisitorID  string `json:"visitor_id"`
	ExternalID string `json:"external_id"`
}

// EraseFunc erases a person and returns what it removed, by place, to be
// answered as JSON. An error wrapping ErrEraseInput is the caller's (400).
type EraseFunc func(ctx context.Context, r EraseRequest) (any, error)

// ErrEraseInput marks an erasure request that names no one.
var ErrEraseInput = errors.New("erase request names no one")

// adminBody bounds an operator request's body after decoding: an erasure
// or replay request is a few short JSON fields, so 64 KiB is ample. Like the
// public paths, it is read with readBody, never fiber's Ctx.Body, which
// inflates chained encodings without a bound.
const adminBody = 64 << 10

// Admin serves operators on their own listener (admin_listen, loopback by
// default): /metrics and the detailed readiness, which say how tally is
// built and where its ClickHouse is, so they are not on the public port
// the sites' visitors reach.
type Admin struct {
	app *fiber.App
}

// NewAdmin builds the operator endpoints.
func NewAdmin(cfg AdminConfig) *Admin {
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	app.Get("/healthz", func(ctx *fiber.Ctx) error { return ctx.SendString("ok") })
	app.Get("/readyz", func(ctx *fiber.Ctx) error {
		if err := checkReady(ctx, cfg.Ready); err != nil {
			return ctx.Status(fiber.StatusServiceUnavailable).SendString("not ready: " + err.Error() + warnings(cfg.Warnings))
		}
		return ctx.SendString("ready" + warnings(cfg.Warnings))
	})
	if cfg.Metrics != nil {
		app.Get("/metrics", adaptor.HTTPHandler(cfg.Metrics))
	}
	// Go's profiles (/debug/pprof/), for an operator measuring where the
	// CPU and memory go under load.
	app.Use(pprof.New())
	if cfg.Erase != nil {
		app.Post("/privacy/erase", adminAction(cfg.Tokens, ScopeErase, `{"email"|"visitor_id"|"external_id": ...}`, ErrEraseInput, cfg.Erase))
	}
	if cfg.Replay != nil {
		app.Post("/rules/replay", adminAction(cfg.Tokens, ScopeReplay, `{"rule": ..., "since": RFC 3339 time}`, ErrReplayInput, cfg.Replay))
	}
	return &Admin{app: app}
}

// adminAction serves one POST of the admin listener: a token whose scopes
// include scope, a bounded JSON body of the given shape decoded into a Req,
// then do, whose result is answered as JSON. An error wrapping badInput is
// the caller's (400); any other is 503.
func adminAction[Req any](tokens []Token, scope, shape string, badInput error, do func(context.Context, Req) (any, error)) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		if _, ok := tokenIndex(ctx, tokens, scope); !ok {
			return ctx.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"error": "send Authorization: Bearer <token> with a token whose scopes include " + scope})
		}
		body, err := readBody(ctx, adminBody)
		if eb := (*errBody)(nil); errors.As(err, &eb) {
			return ctx.Status(eb.Code).JSON(fiber.Map{"error": eb.Reason})
		}
		var req Req
		if err := json.Unmarshal(body, &req); err != nil {
			return ctx.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": "body is not " + shape + ": " + err.Error()})
		}
		res, err := do(ctx.UserContext(), req)
		switch {
		case errors.Is(err, badInput):
			return ctx.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": err.Error()})
		case err != nil:
			return ctx.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": err.Error()})
		}
		return ctx.JSON(res)
	}
}

// warnings renders the warnings as lines after the readiness line.
func warnings(f func() []string) string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	for _, w := range f() {
		b.WriteString("\nwarning: " + w)
	}
	return b.String()
}

// App returns the fiber app (for Listener and tests).
func (a *Admin) App() *fiber.App { return a.app }

// Shutdown stops the listener and waits for requests in flight.
func (a *Admin) Shutdown(ctx context.Context) error { return a.app.ShutdownWithContext(ctx) }

func checkReady(ctx *fiber.Ctx, ready func(context.Context) error) error {
	if ready == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx.UserContext(), 2*time.Second)
	defer cancel()
	return ready(rctx)
}
