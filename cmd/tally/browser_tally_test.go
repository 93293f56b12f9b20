package main

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/ingest/enrich"
	"github.com/tally-analytics/tally/snippet"
	"github.com/tally-analytics/tally/store"
	"github.com/tally-analytics/tally/store/chtest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// startBrowserTally runs the collector, the tracker builder, enrichment and
// the ClickHouse writer for yamlText against a fresh database on the test
// ClickHouse server, with the demo page at /demo, on a loopback port.
func startBrowserTally(t *testing.T, yamlText string) *tallyUnderTest {
	t.Helper()
	f, probs := config.Parse("browser_test.yaml", []byte(yamlText), func(string) (string, bool) { return "", false })
	if len(probs) > 0 {
		t.Fatalf("config: %v", probs)
	}
	dsn := chtest.DSN(t)
	db := chtest.Database(t, dsn)
	conn := chtest.Open(t, dsn)
	ctx := context.Background()
	if err := store.Migrate(ctx, conn, db); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	// FlushAge 50 ms: rows reach ClickHouse quickly, so the tests' polling
	// ends soon after the browser has sent.
	w := store.NewWriter(store.WriterConfig{FlushAge: 50 * time.Millisecond}, store.NewInserter(conn, db).InsertEvents, log, nil)
	t.Cleanup(func() { w.Close(context.Background()) })
	en, err := enrich.New(enrich.Config{GeoIP: f.GeoIP, Privacy: f.Privacy}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close() })
	b, err := snippet.NewBuilder(snippet.Config{Sites: f.Sites, Definitions: f.Events, EventPath: f.Collector.EventPath})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ingest.NewCollector(ingest.Config{
		CollectorConfig: f.Collector, Sites: f.Sites, Definitions: f.Events,
		Sink: w, Dedup: &seenSet{seen: map[[2]string]bool{}}, Enrich: en.Enrich, Scripts: b, Log: log,
		Extra: func(app *fiber.App) {
			page := snippet.DemoPage(f.Sites[0].ID)
			h := func(ctx *fiber.Ctx) error { ctx.Type("html"); return ctx.Send(page) }
			app.Get("/demo", h)
			app.Get("/demo/*", h)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go c.App().Listener(ln)
	t.Cleanup(func() { c.Shutdown(context.Background()) })

	query := "SELECT event_id, event_name, url, visitor_id, session_id, email, " +
		"toUInt64(toUnixTimestamp(occurred_at)) * 1000 + occurred_at_ms, prop_keys, prop_values, truncated " +
		"FROM `" + db + "`.events"
	return &tallyUnderTest{url: "http://" + ln.Addr().String(), read: func(t *testing.T) []eventRow {
		t.Helper()
		rows, err := conn.Query(context.Background(), query)
		if err != nil {
			t.Fatalf("read events: %v", err)
		}
		defer rows.Close()
		var out []eventRow
		for rows.Next() {
			var r eventRow
			var ms uint64
			var keys, values []string
			if err := rows.Scan(&r.EventID, &r.EventName, &r.URL, &r.VisitorID, &r.SessionID, &r.Email, &ms, &keys, &values, &r.Truncated); err != nil {
				t.Fatalf("scan events: %v", err)
			}
			r.OccurredMs = int64(ms)
			r.Props = make(map[string]string, len(keys))
			for i := range keys {
				if i < len(values) {
					r.Props[keys[i]] = values[i]
				}
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read events: %v", err)
		}
		return out
	}}
}

// seenSet is the collector's first-wins dedup over a map.
type seenSet struct {
	mu   sync.Mutex
	seen map[[2]string]bool
}

func (d *seenSet) FirstSeen(n, id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[[2]string{n, id}] {
		return false
	}
	d.seen[[2]string{n, id}] = true
	return true
}

func (d *seenSet) Forget(n, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.seen, [2]string{n, id})
}
