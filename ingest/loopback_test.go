package ingest

import (
	"net"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// serveOnLoopback serves app on a free loopback port until the test ends
// and returns its address, for tests that need a real connection (body
// limits enforced by the server's reader, header buffers, streams).
func serveOnLoopback(t *testing.T, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() { app.Shutdown() })
	return ln.Addr().String()
}
