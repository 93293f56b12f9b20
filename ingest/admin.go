package ingest

import (
	"context"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
)

// AdminConfig is what the operator listener serves.
type AdminConfig struct {
	// Ready reports why tally cannot take traffic, in detail (internal
	// addresses included); nil means always ready.
	Ready func(ctx context.Context) error
	// Metrics is served at /metrics; nil serves none.
	Metrics http.Handler
}

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
			return ctx.Status(fiber.StatusServiceUnavailable).SendString("not ready: " + err.Error())
		}
		return ctx.SendString("ready")
	})
	if cfg.Metrics != nil {
		app.Get("/metrics", adaptor.HTTPHandler(cfg.Metrics))
	}
	return &Admin{app: app}
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
