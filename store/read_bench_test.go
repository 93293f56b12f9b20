package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tally-analytics/tally/ingest"
)

// BenchmarkReadByEmail measures a contact's timeline (100 newest
// completions, identities followed) on a table of TALLY_BENCH_READ_ROWS
// completions (default 1,000,000) over 24 months: one email per 10
// completions, half of them anonymous completions of the contact's
// visitor. It compares the events API's read (person_events, then events
// by its order key) with the scan the events order key leaves otherwise
// (email or visitor_id over the whole table), and reports the rows
// ClickHouse read per lookup (rows-read) besides the time.
//
// TALLY_BENCH_STEPS=1 also logs the rows each of the read's three queries
// read for one contact.
//
// Run: go test ./store -run '^$' -bench ReadByEmail -benchtime 20x
func BenchmarkReadByEmail(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("TALLY_BENCH_READ_ROWS")); err == nil && v > 0 {
		rows = v
	}
	conn, db := migrated(b)
	in := NewInserter(conn, db)
	ctx := context.Background()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	span := 2 * 365 * 24 * time.Hour
	people := max(rows/10, 1)
	const batchRows = 50_000
	cs := make([]ingest.Completion, 0, batchRows)
	var batch EventBatch
	flush := func() {
		if err := in.InsertPersons(ctx, cs); err != nil {
			b.Fatal(err)
		}
		batch.Reset()
		batch.Encode(cs)
		if err := in.InsertEvents(ctx, &batch); err != nil {
			b.Fatal(err)
		}
		cs = cs[:0]
	}
	start := time.Now()
	for i := range rows {
		p := i % people
		c := ingest.Completion{EventID: fmt.Sprint("e", i), EventName: []string{"page_view", "viewed_car", "form_submitted"}[i%3], Site: "shop",
			Source: ingest.SourceBrowser, OccurredAt: t0.Add(time.Duration(int64(span) / int64(rows) * int64(i))), VisitorID: fmt.Sprint("v", p),
			Page: ingest.Page{URL: "https://shop.example.com/cars/" + strconv.Itoa(i)}, Props: []ingest.Prop{{Name: "make", Value: "volvo"}}}
		if (i/people)%2 == 1 { // every other round of the people carries the email (identified)
			c.Identity.Email = fmt.Sprintf("person%d@example.com", p)
		}
		cs = append(cs, c)
		if len(cs) == batchRows {
			flush()
		}
	}
	if len(cs) > 0 {
		flush()
	}
	b.Logf("loaded %d completions (%d people) in %s", rows, people, time.Since(start).Round(time.Millisecond))
	// Merged, as background merges leave a table at rest: a lookup reads
	// at least a granule in every part its key range touches, so a just
	// loaded table of many small parts reads more than a live one.
	start = time.Now()
	for _, table := range []string{"events", "person_events", "identities"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+"."+table+" FINAL"); err != nil {
			b.Fatalf("optimize %s: %v", table, err)
		}
	}
	b.Logf("merged in %s", time.Since(start).Round(time.Millisecond))
	r := NewReader(conn, db)
	var read atomic.Uint64
	counted := clickhouse.Context(ctx, clickhouse.WithProgress(func(p *clickhouse.Progress) { read.Add(p.Rows) }))

	if os.Getenv("TALLY_BENCH_STEPS") != "" {
		email := "person77@example.com"
		read.Store(0)
		vs, _ := r.visitors(counted, "email", email)
		b.Logf("identities: %d rows read", read.Swap(0))
		keys := []string{emailKey(email)}
		for _, v := range vs {
			keys = append(keys, visitorKey(v))
		}
		page, err := r.scan(counted, r.db+".person_events", "person IN ("+quoteList(keys)+")", ingest.EventQuery{Descending: true, Limit: 101}, []string{"site", "event_name", "event_id", "occurred_at", "occurred_at_ms"})
		b.Logf("person_events: %d rows read, %d keys, err %v", read.Swap(0), len(page), err)
		_, err = r.rows(counted, page)
		b.Logf("events: %d rows read, err %v", read.Swap(0), err)
	}
	b.Run("person_events", func(b *testing.B) {
		read.Store(0)
		n := 0
		for b.Loop() {
			email := fmt.Sprintf("person%d@example.com", (n*7919)%people)
			n++
			got, err := r.ReadEvents(counted, ingest.EventQuery{Email: email, Descending: true, Limit: 100})
			if err != nil {
				b.Fatal(err)
			}
			if want := min(10, rows/people); len(got) < want {
				b.Fatalf("%s: %d completions; want at least %d", email, len(got), want)
			}
		}
		b.ReportMetric(float64(read.Load())/float64(n), "rows-read")
	})
	b.Run("scan", func(b *testing.B) {
		read.Store(0)
		n := 0
		for b.Loop() {
			p := (n * 7919) % people
			n++
			q := fmt.Sprintf("SELECT %s FROM %s.events WHERE email = 'person%d@example.com' OR visitor_id IN (SELECT visitor_id FROM %s.identities WHERE kind = 'email' AND value = 'person%d@example.com') ORDER BY occurred_at DESC, occurred_at_ms DESC LIMIT 100",
				"event_id, event_name, occurred_at, url, prop_keys, prop_values", db, p, db, p)
			rows, err := conn.Query(counted, q)
			if err != nil {
				b.Fatal(err)
			}
			k := 0
			for rows.Next() {
				k++
			}
			rows.Close()
			if k == 0 {
				b.Fatalf("scan found nothing for person %d", p)
			}
		}
		b.ReportMetric(float64(read.Load())/float64(n), "rows-read")
	})
}
