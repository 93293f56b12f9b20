package ingest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/semaphore"
)

// Config is what the collector needs from main.
type Config struct {
	CollectorConfig
	Sites       []Site
	Tokens      []Token
	Definitions []Definition

	// Pipeline accepts the completions of every path (dedup, enrichment,
	// the durable Sink).
	Pipeline   *Pipeline
	Rejections RejectionSink
	// Reader answers GET /events/v3/events; nil answers 501.
	Reader EventReader
	// Import accepts POST /imports; a nil Pipeline answers 501.
	Import ImportConfig
	// OnIdentify receives the tracker's identify calls: the visitor id and
	// the user data given for it (kept in server memory for forwarding,
	// since the tracker keeps traits for the page only). May be nil.
	OnIdentify func(visitorID string, id Identity)
	// Scripts builds the per-site tracker served at /t.js; nil serves none.
	Scripts ScriptSource
	// Ready reports whether the collector's dependencies can take traffic;
	// the public /readyz says only ready or not ready (the detail is on
	// the admin listener). nil means always ready.
	Ready func(ctx context.Context) error
	// Pages are static HTML pages by path (the demo page); each is also
	// served for every path below its own, so a page can navigate within
	// itself. May be nil.
	Pages map[string][]byte

	Log        *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time // nil means time.Now
}

// ScriptSource yields the built tracker script of a site.
type ScriptSource interface {
	Script(site string) (Script, bool)
}

// Script is a built, minified tracker with its gzip form and entity tag.
type Script struct {
	JS   []byte
	Gzip []byte
	ETag string
}

// Collector serves every ingest path over HTTP.
type Collector struct {
	cfg     Config
	catalog *Catalog
	sites   map[string]*Site
	proxies *ProxyTrust
	app     *fiber.App
	log     *slog.Logger
	now     func() time.Time
	metrics *collectorMetrics
	// inflight bounds the bytes of request bodies being handled (admit).
	inflight *semaphore.Weighted
}

type collectorMetrics struct {
	rejected *prometheus.CounterVec
}

// Default sizes, with their reasons.
const (
	// defaultBrowserBody: a snippet batch holds at most a few dozen
	// completions of at most 50 × 1,024 characters; 1 MiB is ample.
	defaultBrowserBody = 1 << 20
	// apiBody: 500 completions × 50 properties × 256 characters ≈ 6.4 MB
	// plus keys and JSON quoting, so 16 MiB.
	apiBody = 16 << 20
)

// readTimeout bounds the reading of one request, headers and body.
const readTimeout = 30 * time.Second

// maxHeaderBytes bounds a request's line and headers (ReadBufferSize).
const maxHeaderBytes = 32 << 10

// NewCollector builds the collector and its routes.
func NewCollector(cfg Config) (*Collector, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EventPath == "" {
		cfg.EventPath = "/e"
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = defaultBrowserBody
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 30 * time.Minute
	}
	proxies, err := NewProxyTrust(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	c := &Collector{
		proxies:  proxies,
		cfg:      cfg,
		catalog:  NewCatalog(cfg.Definitions),
		sites:    make(map[string]*Site, len(cfg.Sites)),
		log:      cfg.Log,
		now:      cfg.Now,
		metrics:  newCollectorMetrics(cfg.Registerer),
		inflight: newAdmission(),
	}
	for i := range cfg.Sites {
		c.sites[cfg.Sites[i].ID] = &cfg.Sites[i]
	}
	c.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		// The request line and headers must fit in the read buffer. The
		// collector is served from the site's own domain, so it receives
		// every first-party cookie: analytics, consent and A/B-test
		// cookies make jars of 8–12 KB on busy sites. nginx allows 4 lines
		// of 8 KB; 32 KiB takes any header set nginx would pass (fasthttp's
		// 4 KiB default answered 431 or reset the connection). With
		// ReduceMemoryUsage it costs 32 KiB per connection only while a
		// request is being read: an idle keep-alive connection (a browser
		// between two events) gives its buffers back.
		ReadBufferSize:    maxHeaderBytes,
		ReduceMemoryUsage: true,
		BodyLimit:         max(apiBody, cfg.MaxBodyBytes),
		// Bodies are read by the handlers, not before them: a request
		// waiting for admission (admit) holds its headers and at most the
		// first 8 KiB of its body, so hundreds of connections sending
		// batches at once do not hold hundreds of bodies. readBody applies
		// each path's limit, refusing a body longer than it by its
		// Content-Length without reading it.
		StreamRequestBody: true,
		ErrorHandler:      c.errorHandler,
		ReadTimeout:       readTimeout,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	})
	// Like nginx's client_max_body_size per location, each path has its
	// own limit on the body as sent: the API's 16 MiB on its send and
	// import paths, the snippet path's own (plus the allowance for a
	// compressed body's framing) everywhere else. A body the path could
	// never take is refused from its Content-Length, before it is read
	// (closeUnreadBody); readBody then applies the exact limit.
	c.app.Server().HeaderReceived = c.requestConfig
	c.routes()
	return c, nil
}

// bodyTooLong reports whether a request announces a body longer than its
// path allows.
func (c *Collector) bodyTooLong(h *fasthttp.RequestHeader) bool {
	return h.ContentLength() > c.wireLimit(h.RequestURI())
}

// wireLimit is the most a request to uri may send as its body.
func (c *Collector) wireLimit(uri []byte) int {
	path := uri
	if i := bytes.Index(path, []byte("://")); i >= 0 { // absolute form
		path = path[i+3:]
		path = path[max(bytes.IndexByte(path, '/'), 0):]
	}
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if string(path) != c.cfg.EventPath && (bytes.HasPrefix(path, []byte("/events/")) || string(path) == "/imports") {
		return max(apiBody, c.cfg.MaxBodyBytes)
	}
	return maxWireBody(c.cfg.MaxBodyBytes)
}

// requestConfig makes fasthttp read no more than one byte of a body longer
// than its path allows (it reads up to 8 KiB of a body with the headers,
// and would wait for them), so the handlers answer 413 at once.
func (c *Collector) requestConfig(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if c.bodyTooLong(h) {
		return fasthttp.RequestConfig{MaxRequestBodySize: 1}
	}
	return fasthttp.RequestConfig{}
}

// prefetchedBody is how much of a streamed body fasthttp reads with the
// headers: a body this long or shorter is on hand whatever the handler does.
const prefetchedBody = 8 << 10

// closeUnreadBody refuses a body longer than its path allows from its
// Content-Length, and closes the connection after an answer given without
// reading a longer body (that one, an auth failure, a full log, an unknown
// path): the rest of that body is still on the connection, where the next
// request would be read from.
func (c *Collector) closeUnreadBody(ctx *fiber.Ctx) error {
	var err error
	if c.bodyTooLong(&ctx.Request().Header) {
		err = fiber.ErrRequestEntityTooLarge
	} else {
		err = ctx.Next()
	}
	if req := ctx.Request(); req.IsBodyStream() {
		if cl := req.Header.ContentLength(); cl < 0 || cl > prefetchedBody {
			ctx.Context().SetConnectionClose()
		}
	}
	return err
}

func newCollectorMetrics(reg prometheus.Registerer) *collectorMetrics {
	m := &collectorMetrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_completions_rejected_total", Help: "Rejected completions and dropped properties, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.rejected)
	}
	return m
}

func (c *Collector) routes() {
	app := c.app
	app.Use(c.closeUnreadBody)
	app.Get("/healthz", func(ctx *fiber.Ctx) error { return ctx.SendString("ok") })
	app.Get("/readyz", c.readyz)
	api := app.Group("/events/v3", c.requireToken)
	api.Post("/send", c.requireScope(ScopeSend), c.admit, c.sendOne)
	api.Post("/send/batch", c.requireScope(ScopeSend), c.admit, c.sendBatch)
	api.Get("/event-definitions", c.listDefinitions)
	api.Get("/event-definitions/:name", c.getDefinition)
	api.Get("/events", c.requireScope(ScopeRead), c.listEvents)
	api.Get("/events/event-types", c.requireScope(ScopeRead), c.listEventTypes)
	app.Post("/imports", c.requireToken, c.requireScope(ScopeSend), c.admit, c.importCSV)
	if c.cfg.RateLimitPerMinute >= 0 {
		app.Post(c.cfg.EventPath, c.rateLimit())
	}
	app.Post(c.cfg.EventPath, c.admit)
	c.browserRoutes(app)
	for path, html := range c.cfg.Pages {
		h := func(ctx *fiber.Ctx) error {
			ctx.Type("html")
			return ctx.Send(html)
		}
		app.Get(path, h)
		app.Get(strings.TrimSuffix(path, "/")+"/*", h)
	}
}

// rateLimit answers 429 with Retry-After to a client IP past its
// requests per minute (a fixed window, kept in memory).
func (c *Collector) rateLimit() fiber.Handler {
	perMinute := c.cfg.RateLimitPerMinute
	if perMinute == 0 {
		perMinute = 1200
	}
	return limiter.New(limiter.Config{
		Max:          perMinute,
		Expiration:   time.Minute,
		KeyGenerator: c.clientIP,
		LimitReached: func(ctx *fiber.Ctx) error {
			c.metrics.rejected.WithLabelValues("RATE_LIMITED").Inc()
			return ctx.SendStatus(fiber.StatusTooManyRequests)
		},
	})
}

// App returns the fiber app (for Listen and for tests' app.Test).
func (c *Collector) App() *fiber.App { return c.app }

// Catalog returns the event definitions the collector validates against.
func (c *Collector) Catalog() *Catalog { return c.catalog }

// Shutdown stops accepting connections and waits for handlers in flight.
func (c *Collector) Shutdown(ctx context.Context) error {
	return c.app.ShutdownWithContext(ctx)
}

func (c *Collector) readyz(ctx *fiber.Ctx) error {
	if checkReady(ctx, c.cfg.Ready) != nil {
		return ctx.Status(fiber.StatusServiceUnavailable).SendString("not ready")
	}
	return ctx.SendString("ready")
}

// requireToken checks the API bearer token in constant time, and that it
// may send.
func (c *Collector) requireToken(ctx *fiber.Ctx) error {
	if i, ok := tokenIndex(ctx, c.cfg.Tokens, ""); ok {
		ctx.Locals("token", &c.cfg.Tokens[i])
		return ctx.Next()
	}
	return writeEnvelope(ctx, fiber.StatusUnauthorized, envelope{
		Category: "INVALID_AUTHENTICATION",
		Message:  "Authentication credentials not found or invalid: send Authorization: Bearer <token> with a token from api_tokens.",
	})
}

// tokenIndex finds the request's bearer token among tokens, comparing in
// constant time, and when scope is not empty requires it. The scheme is
// case-insensitive (RFC 9110 §11.1): "bearer x" is as good as "Bearer x".
func tokenIndex(ctx *fiber.Ctx, tokens []Token, scope string) (int, bool) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(ctx.Get(fiber.HeaderAuthorization)), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return 0, false
	}
	return findToken(tokens, tok, scope)
}

// validToken reports whether tok is a configured token with scope.
func validToken(tokens []Token, tok, scope string) bool {
	_, ok := findToken(tokens, tok, scope)
	return ok
}

// findToken finds tok among tokens, compared in constant time, and says
// whether it has scope ("" for any).
func findToken(tokens []Token, tok, scope string) (int, bool) {
	for i := range tokens {
		t := &tokens[i]
		if t.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(t.Token)) == 1 {
			if scope != "" && !t.Allows(scope) {
				return 0, false
			}
			return i, true
		}
	}
	return 0, false
}

// accept hands a request's completions to the pipeline.
func (c *Collector) accept(ctx context.Context, cs []Completion) error {
	return c.cfg.Pipeline.Accept(ctx, cs)
}

// reject records rejected input; it never blocks.
func (c *Collector) reject(rs []Rejection) {
	for _, r := range rs {
		c.metrics.rejected.WithLabelValues(r.Reason).Inc()
	}
	if c.cfg.Rejections != nil && len(rs) > 0 {
		c.cfg.Rejections.Reject(rs)
	}
}

// categoryOf is HubSpot's error category for a status fiber answered by
// itself: a path or method that does not exist is not a validation error.
func categoryOf(code int) string {
	switch code {
	case fiber.StatusNotFound:
		return "OBJECT_NOT_FOUND"
	case fiber.StatusMethodNotAllowed:
		return "METHOD_NOT_ALLOWED"
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return "REQUEST_TOO_LARGE"
	}
	return "VALIDATION_ERROR"
}

// errorHandler is the one place errors become HTTP answers: ErrFull is 503
// with Retry-After, fiber errors keep their status, anything else is a 500
// whose detail stays in the log.
func (c *Collector) errorHandler(ctx *fiber.Ctx, err error) error {
	var fe *fiber.Error
	switch {
	case errors.Is(err, ErrFull):
		ctx.Set(fiber.HeaderRetryAfter, "5")
		return writeEnvelope(ctx, fiber.StatusServiceUnavailable, envelope{
			Category: "RATE_LIMITS", Message: "tally is not taking completions right now; retry after 5 seconds",
		})
	case errors.As(err, &fe):
		if fe.Code == fiber.StatusRequestEntityTooLarge {
			return writeEnvelope(ctx, fe.Code, envelope{Category: "VALIDATION_ERROR", Message: "request body is larger than the limit"})
		}
		return writeEnvelope(ctx, fe.Code, envelope{Category: categoryOf(fe.Code), Message: fe.Message})
	default:
		c.log.Error("request failed", "path", ctx.Path(), "err", err)
		return writeEnvelope(ctx, fiber.StatusInternalServerError, envelope{Category: "INTERNAL_ERROR", Message: "internal error"})
	}
}
