package main

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/snippet"
)

type memSink struct {
	mu  sync.Mutex
	got []ingest.Completion
}

func (s *memSink) Write(_ context.Context, cs []ingest.Completion) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, cs...)
	return nil
}

type memDedup struct {
	mu   sync.Mutex
	seen map[[2]string]bool
}

func (d *memDedup) FirstSeen(n, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[[2]string{n, id}] {
		return false
	}
	d.seen[[2]string{n, id}] = true
	return true
}
func (d *memDedup) Forget(n, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.seen, [2]string{n, id})
}

func startBrowserTally(t *testing.T, yamlText string) *tallyUnderTest {
	f, probs := config.Parse("test.yaml", []byte(yamlText), func(string) (string, bool) { return "", false })
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	b, err := snippet.NewBuilder(snippet.Config{Sites: f.Sites, Definitions: f.Events})
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	c, err := ingest.NewCollector(ingest.Config{Sites: f.Sites, Definitions: f.Events, Sink: sink, Dedup: &memDedup{seen: map[[2]string]bool{}}, Scripts: b,
		Extra: func(app *fiber.App) {
			page := snippet.DemoPage(f.Sites[0].ID)
			h := func(ctx *fiber.Ctx) error { ctx.Type("html"); return ctx.Send(page) }
			app.Get("/demo", h)
			app.Get("/demo/*", h)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go c.App().Listener(ln)
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	return &tallyUnderTest{url: "http://" + ln.Addr().String(), read: func(t *testing.T) []eventRow {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		var out []eventRow
		for _, c := range sink.got {
			r := eventRow{EventID: c.EventID, EventName: c.EventName, URL: c.Page.URL, VisitorID: c.VisitorID, SessionID: c.SessionID,
				Email: c.Identity.Email, OccurredMs: c.OccurredAt.UnixMilli(), Props: map[string]string{}, Truncated: c.Truncated}
			for _, p := range c.Props {
				r.Props[p.Name] = p.Value
			}
			out = append(out, r)
		}
		return out
	}}
}
