package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/chtest"
)

func TestEncodeEvents(t *testing.T) {
	withProps := ingest.Completion{EventID: "a", Props: []ingest.Prop{{Name: "k1", Value: "v1"}, {Name: "k2", Value: "v2"}}, Truncated: []string{"k3: dropped"}}
	bare := ingest.Completion{EventID: "b"}
	var b EventBatch
	b.Encode([]ingest.Completion{withProps, bare})
	b.Encode([]ingest.Completion{{EventID: "c", Props: []ingest.Prop{{Name: "k9", Value: "v9"}}}})
	if b.Len() != 3 {
		t.Fatalf("Len = %d; want 3", b.Len())
	}
	check := func(what string, got [][]string, want ...[]string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s has %d rows; want %d", what, len(got), len(want))
		}
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Errorf("%s[%d] = %q; want %q", what, i, got[i], want[i])
			}
		}
	}
	check("prop_keys", b.column("prop_keys").([][]string), []string{"k1", "k2"}, nil, []string{"k9"})
	check("prop_values", b.column("prop_values").([][]string), []string{"v1", "v2"}, nil, []string{"v9"})
	check("truncated", b.column("truncated").([][]string), []string{"k3: dropped"}, nil, nil)
	// A row's slices are capped: appending to one must not overwrite the next.
	if c := cap(b.column("prop_keys").([][]string)[0]); c != 2 {
		t.Errorf("cap(prop_keys[0]) = %d; want 2", c)
	}
	if got := len(b.columns()); got != len(eventColumns) {
		t.Errorf("columns() has %d columns; eventColumns %d", got, len(eventColumns))
	}

	b.Reset()
	if keys := b.column("prop_keys").([][]string); b.Len() != 0 || len(keys) != 0 || len(b.arena) != 0 {
		t.Errorf("after Reset: Len %d, prop_keys %d, arena %d; want all 0", b.Len(), len(keys), len(b.arena))
	}
}

func TestEncodeTimes(t *testing.T) {
	tests := []struct {
		in     time.Time
		want   time.Time
		wantMs uint16
	}{
		{time.Date(2026, 3, 4, 5, 6, 7, 123_456_789, time.UTC), time.Date(2026, 3, 4, 5, 6, 7, 123_456_789, time.UTC), 123},
		{time.Date(2026, 3, 4, 6, 6, 7, 5_000_000, time.FixedZone("CET", 3600)), time.Date(2026, 3, 4, 5, 6, 7, 5_000_000, time.UTC), 5},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0).UTC(), 0},                      // ISO "0001-01-01" parses
		{time.Date(1969, 12, 31, 23, 59, 59, 999_000_000, time.UTC), time.Unix(0, 0).UTC(), 0},    // before DateTime
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(1<<32-1, 999_999_999).UTC(), 999}, // after DateTime
		{time.Unix(1<<32-1, 500_000_000).UTC(), time.Unix(1<<32-1, 500_000_000).UTC(), 500},       // last second
	}
	for _, tt := range tests {
		var b EventBatch
		b.Encode([]ingest.Completion{{OccurredAt: tt.in, ReceivedAt: tt.in}})
		occ, ms, rec := b.column("occurred_at").([]time.Time)[0], b.column("occurred_at_ms").([]uint16)[0], b.column("received_at").([]time.Time)[0]
		if !occ.Equal(tt.want) || ms != tt.wantMs || !rec.Equal(tt.want) {
			t.Errorf("Encode(occurred %v) = %v +%d ms; want %v +%d ms", tt.in, occ, ms, tt.want, tt.wantMs)
		}
	}
}

func TestEncodeRejections(t *testing.T) {
	var b RejectionBatch
	b.Encode([]ingest.Rejection{{Reason: "R", Source: ingest.SourceAPI, Payload: strings.Repeat("x", ingest.MaxRejectionPayload+10)}})
	if got := len(b.payload[0]); got != ingest.MaxRejectionPayload {
		t.Errorf("payload kept %d bytes; want %d", got, ingest.MaxRejectionPayload)
	}
	if b.source[0] != "api" || b.reason[0] != "R" {
		t.Errorf("source, reason = %q, %q; want api, R", b.source[0], b.reason[0])
	}
	if got := len(b.columns()); got != len(rejectionColumns) {
		t.Errorf("columns() has %d columns; rejectionColumns %d", got, len(rejectionColumns))
	}
}

func TestCutUTF8(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 2, "ab"},
		{"aé", 2, "a"}, // é is 2 bytes: not split
		{"aé", 3, "aé"},
		{"€€", 4, "€"}, // 3 bytes each
		{"€", 0, ""},
	}
	for _, tt := range tests {
		if got := cutUTF8(tt.in, tt.n); got != tt.want {
			t.Errorf("cutUTF8(%q, %d) = %q; want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// benchCompletions are browser completions of a typical size: ten
// properties, a URL, a user agent, every enrichment set.
func benchCompletions(n int) []ingest.Completion {
	cs := make([]ingest.Completion, n)
	for i := range cs {
		c := fullCompletion(i, time.Now())
		c.Props = nil
		for p := range 10 {
			c.Props = append(c.Props, ingest.Prop{Name: fmt.Sprintf("prop_%d", p), Value: fmt.Sprintf("value %d of %d", p, i)})
		}
		cs[i] = c
	}
	return cs
}

// BenchmarkEncode encodes a default-sized batch (10,000 rows) into a reused
// EventBatch, as the writer does on every flush.
func BenchmarkEncode(b *testing.B) {
	cs := benchCompletions(10_000)
	var batch EventBatch
	batch.Encode(cs) // grow once, as the first flush does
	b.ReportAllocs()
	for b.Loop() {
		batch.Reset()
		batch.Encode(cs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(cs)), "ns/row")
}

// BenchmarkInsertEvents sends 10,000-row batches of typical completions to
// the real test server: the ceiling of the events path on this machine.
func BenchmarkInsertEvents(b *testing.B) {
	dsn := chtest.DSN(b)
	db := chtest.Database(b, dsn)
	conn, err := Open(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := Migrate(b.Context(), conn, db); err != nil {
		b.Fatal(err)
	}
	var batch EventBatch
	batch.Encode(benchCompletions(10_000))
	in := NewInserter(conn, db)
	b.ReportAllocs()
	for b.Loop() {
		if err := in.InsertEvents(b.Context(), &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch.Len())/b.Elapsed().Seconds(), "rows/s")
}

// An INSERT larger than insertBlockRows is sent in blocks; the server
// gathers them into one part, as it would one block.
func TestInsertBlocksMakeOnePart(t *testing.T) {
	conn, db := migrated(t)
	var b EventBatch
	b.Encode(benchCompletions(5*insertBlockRows + 7))
	if err := NewInserter(conn, db).InsertEvents(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, conn, "SELECT count() FROM "+db+".events"); n != 5*insertBlockRows+7 {
		t.Errorf("rows = %d; want %d", n, 5*insertBlockRows+7)
	}
	if n := countRows(t, conn, "SELECT count() FROM system.parts WHERE database = '"+db+"' AND table = 'events' AND active"); n != 1 {
		t.Errorf("active parts = %d; want 1", n)
	}
}

// InsertCompletions, which encodes one block at a time, stores every
// column of every row as InsertEvents of the whole batch does; two calls
// at once each use their own block.
func TestInsertCompletionsMatchesWholeBatch(t *testing.T) {
	connA, dbA := migrated(t)
	connB, dbB := migrated(t)
	cs := benchCompletions(3*insertBlockRows + 5)
	for i := range cs {
		cs[i].Props = cs[i].Props[:i%7] // rows of different widths, so a misplaced block shows
	}
	var b EventBatch
	b.Encode(cs)
	if err := NewInserter(connA, dbA).InsertEvents(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	in := NewInserter(connB, dbB)
	half := len(cs) / 2
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = in.InsertCompletions(t.Context(), cs[:half]) })
	wg.Go(func() { errs[1] = in.InsertCompletions(t.Context(), cs[half:]) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	rows := func(conn driver.Conn, db string) []string {
		r, err := conn.Query(t.Context(), "SELECT event_id, toString(cityHash64("+strings.Join(eventColumns, ", ")+")) FROM "+db+".events ORDER BY event_id")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []string
		for r.Next() {
			var id, h string
			if err := r.Scan(&id, &h); err != nil {
				t.Fatal(err)
			}
			out = append(out, id+" "+h)
		}
		return out
	}
	a, bb := rows(connA, dbA), rows(connB, dbB)
	if len(a) != len(cs) || len(bb) != len(cs) {
		t.Fatalf("rows: %d whole, %d by block; want %d", len(a), len(bb), len(cs))
	}
	for i := range a {
		if a[i] != bb[i] {
			t.Fatalf("row %d differs: whole batch %s, by block %s", i, a[i], bb[i])
		}
	}
}
