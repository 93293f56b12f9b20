package ingest

import "github.com/gofiber/fiber/v2"

// browserRoutes mounts the snippet's paths: the tracker script and the
// collection endpoint.
func (c *Collector) browserRoutes(app *fiber.App) {}
