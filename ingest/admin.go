package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
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
	// Console serves the console's pages under /console; nil serves none.
	// ConsoleStream is its live stream, served at /console/stream as
	// server-sent events. Both answer loopback clients, and others with a
	// token whose scopes include console (sent once as ?token=, then kept
	// in a cookie for /console, or as Authorization: Bearer).
	Console       http.Handler
	ConsoleStream EventStream
	Tokens        []Token
}

// EventStream is a source of server-sent events. Subscribe returns the
// frames to write, each complete ("event: …\ndata: …\n\n"), and stop,
// which ends the subscription and must be called once.
type EventStream interface {
	Subscribe() (frames <-chan []byte, stop func())
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
	app       *fiber.App
	closing   chan struct{} // closed by Shutdown: live streams end
	closeOnce sync.Once
}

// NewAdmin builds the operator endpoints.
func NewAdmin(cfg AdminConfig) *Admin {
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ReadTimeout: 30 * time.Second, WriteTimeout: adminWriteTimeout})
	a := &Admin{app: app, closing: make(chan struct{})}
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
	// CPU and memory go under load. They show the process's internals (and
	// a profile costs CPU while it runs), so, like the console, they answer
	// loopback clients, or others with a console token as Authorization:
	// Bearer.
	app.Use("/debug/pprof", func(ctx *fiber.Ctx) error {
		if loopbackOrBearer(ctx, cfg.Tokens, ScopeConsole) {
			return ctx.Next()
		}
		return ctx.Status(fiber.StatusUnauthorized).SendString("profiles answer loopback clients, or send Authorization: Bearer <a token whose scopes include console>")
	})
	app.Use(pprof.New())
	if cfg.Erase != nil {
		app.Post("/privacy/erase", adminAction(cfg.Tokens, ScopeErase, `{"email"|"visitor_id"|"external_id": ...}`, ErrEraseInput, cfg.Erase))
	}
	if cfg.Replay != nil {
		app.Post("/rules/replay", adminAction(cfg.Tokens, ScopeReplay, `{"rule": ..., "since": RFC 3339 time}`, ErrReplayInput, cfg.Replay))
	}
	if cfg.Console != nil {
		app.Use("/console", consoleAccess(cfg.Tokens))
		if cfg.ConsoleStream != nil {
			app.Get("/console/stream", a.stream(cfg.ConsoleStream))
		}
		h := adaptor.HTTPHandler(cfg.Console)
		app.All("/console", h)
		app.All("/console/*", h)
	}
	return a
}

// adminWriteTimeout bounds writing one answer; a live stream pushes its
// deadline on by this much before each write, so it lasts while the
// client reads.
const adminWriteTimeout = 30 * time.Second

// streamHeartbeat is how often an idle live stream writes a comment line:
// a client gone away is noticed within it, and proxies keep the
// connection open.
const streamHeartbeat = 15 * time.Second

// consoleCookie keeps a console token given as ?token= for /console.
const consoleCookie = "tally_console"

// loopbackOrBearer reports whether the request comes from loopback or
// carries, as Authorization: Bearer, a token with scope.
func loopbackOrBearer(ctx *fiber.Ctx, tokens []Token, scope string) bool {
	if ctx.Context().RemoteIP().IsLoopback() {
		return true
	}
	_, ok := tokenIndex(ctx, tokens, scope)
	return ok
}

// consoleAccess lets loopback clients through, and others with a console
// token: as Authorization: Bearer, in the console cookie, or as ?token=,
// which is then set as the cookie and removed from the address by a
// redirect (so it does not stay in the browser's history).
func consoleAccess(tokens []Token) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		if loopbackOrBearer(ctx, tokens, ScopeConsole) {
			return ctx.Next()
		}
		if q := ctx.Query("token"); q != "" && validToken(tokens, q, ScopeConsole) {
			ctx.Cookie(&fiber.Cookie{Name: consoleCookie, Value: q, Path: "/console", HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode})
			args := ctx.Context().QueryArgs()
			args.Del("token")
			to := ctx.Path()
			if rest := string(args.QueryString()); rest != "" {
				to += "?" + rest
			}
			return ctx.Redirect(to, fiber.StatusSeeOther)
		}
		if c := ctx.Cookies(consoleCookie); c != "" && validToken(tokens, c, ScopeConsole) {
			return ctx.Next()
		}
		return ctx.Status(fiber.StatusUnauthorized).SendString("the console answers loopback clients, or open /console?token=<a token whose scopes include console>")
	}
}

// stream serves an EventStream as server-sent events until the client
// goes away or the listener shuts down.
func (a *Admin) stream(es EventStream) fiber.Handler {
	return func(ctx *fiber.Ctx) error {
		ctx.Set(fiber.HeaderContentType, "text/event-stream")
		ctx.Set(fiber.HeaderCacheControl, "no-store")
		conn := ctx.Context().Conn()
		frames, stop := es.Subscribe()
		ctx.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			defer stop()
			tick := time.NewTicker(streamHeartbeat)
			defer tick.Stop()
			w.WriteString("retry: 1000\n\n")
			for {
				conn.SetWriteDeadline(time.Now().Add(adminWriteTimeout))
				if err := w.Flush(); err != nil {
					return
				}
				select {
				case <-a.closing:
					return
				case f, ok := <-frames:
					if !ok {
						return
					}
					w.Write(f)
				case <-tick.C:
					w.WriteString(": keep-alive\n\n")
				}
			}
		})
		return nil
	}
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
func (a *Admin) Shutdown(ctx context.Context) error {
	a.closeOnce.Do(func() { close(a.closing) })
	return a.app.ShutdownWithContext(ctx)
}

func checkReady(ctx *fiber.Ctx, ready func(context.Context) error) error {
	if ready == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx.UserContext(), 2*time.Second)
	defer cancel()
	return ready(rctx)
}
