package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/backoff"
	"github.com/tally-analytics/tally/store/wal"
)

// anonymise stands in for enrich's StorageIP: the last octet becomes 0.
func anonymise(ip string) string {
	if i := strings.LastIndexByte(ip, '.'); i >= 0 {
		return ip[:i] + ".0"
	}
	return ip
}

func openLog(t *testing.T, dir string) *wal.Log {
	t.Helper()
	l, err := wal.Open(wal.Config{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendRecords appends one record per request.
func appendRecords(t *testing.T, l *wal.Log, requests ...[]ingest.Completion) {
	t.Helper()
	for _, cs := range requests {
		if _, err := l.Append(context.Background(), AppendRecord(nil, cs)); err != nil {
			t.Fatal(err)
		}
	}
}

func startLogWriter(t *testing.T, l *wal.Log, conn driver.Conn, db string, cfg LogWriterConfig) *LogWriter {
	t.Helper()
	r, err := l.Reader("clickhouse")
	if err != nil {
		t.Fatal(err)
	}
	in := NewInserter(conn, db)
	return NewLogWriter(cfg, r, l.LastIndex(), in.InsertBlocks, in.Existing, slog.New(slog.NewTextHandler(testLog{t}, nil)), nil)
}

// withEmails gives each completion an email of its own, p<i>@example.com.
func withEmails(cs []ingest.Completion) []ingest.Completion {
	for i := range cs {
		cs[i].Identity.Email = fmt.Sprintf("p%d@example.com", i)
	}
	return cs
}

// waitWritten waits, at most 30 s, until w has handled every record in
// its log.
func waitWritten(w *LogWriter) {
	for deadline := time.Now().Add(30 * time.Second); w.Pending() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// wantEachOnce checks that events holds n rows by a plain count (a
// duplicate would count twice) and person_events the rows of n
// completions.
func wantEachOnce(t *testing.T, conn driver.Conn, db string, n uint64) {
	t.Helper()
	if got := countRows(t, conn, "SELECT count() FROM "+db+".events"); got != n {
		t.Errorf("rows = %d; want %d (each once)", got, n)
	}
	if got := countRows(t, conn, "SELECT uniqExact(event_id) FROM "+db+".person_events"); got != n {
		t.Errorf("completions in person_events = %d; want %d", got, n)
	}
}

func closeLogWriter(t *testing.T, w *LogWriter, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func countRows(t *testing.T, conn driver.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func manyCompletions(from, n int) []ingest.Completion {
	cs := make([]ingest.Completion, n)
	for i := range cs {
		cs[i] = ingest.Completion{EventID: fmt.Sprintf("id-%05d", from+i), EventName: "e", Site: "s", Source: ingest.SourceAPI,
			OccurredAt: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), ReceivedAt: time.Date(2026, 3, 4, 5, 6, 8, 0, time.UTC)}
	}
	return cs
}

// A crash after an INSERT and before the cursor's commit leaves rows that
// are both in ClickHouse and still in the log. The next start must not
// insert them again: a plain count (no FINAL) sees each row once.
func TestLogWriterRestartAddsNoDuplicate(t *testing.T) {
	conn, db := migrated(t)
	dir := t.TempDir()
	l := openLog(t, dir)
	first, second := manyCompletions(0, 300), manyCompletions(300, 200)
	appendRecords(t, l, first, second)
	// The crashed run: its insert of the first record reached ClickHouse,
	// its commit did not.
	var b EventBatch
	b.Encode(first)
	if err := NewInserter(conn, db).InsertEvents(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	w := startLogWriter(t, l, conn, db, LogWriterConfig{FlushRows: 250, FlushAge: 10 * time.Millisecond})
	closeLogWriter(t, w, 30*time.Second)
	if got := countRows(t, conn, "SELECT count() FROM "+db+".events"); got != 500 {
		t.Errorf("rows after restart = %d; want 500 (each once)", got)
	}
	if got := countRows(t, conn, "SELECT uniqExact(event_id) FROM "+db+".events"); got != 500 {
		t.Errorf("distinct ids = %d; want 500", got)
	}
}

// An INSERT can be stored and still answer an error (a timeout after the
// server wrote it), and the person rows written beside it can fail while
// the events INSERT succeeds. Either way the retry asks which rows are
// there: a plain count sees each row once, and the person rows are all
// written.
func TestLogWriterRetryAddsNoDuplicate(t *testing.T) {
	conn, db := migrated(t)
	l := openLog(t, t.TempDir())
	cs := withEmails(manyCompletions(0, 300))
	r, err := l.Reader("clickhouse")
	if err != nil {
		t.Fatal(err)
	}
	in := NewInserter(conn, db)
	var inserts, personWrites atomic.Int32
	storedThenFailed := func(ctx context.Context, blocks Blocks) error {
		if err := in.InsertBlocks(ctx, blocks); err != nil {
			return err
		}
		if inserts.Add(1) == 1 {
			return errors.New("read: i/o timeout")
		}
		return nil
	}
	persons := func(ctx context.Context) PersonSink {
		return endingWith{in.StartPersonRows(ctx), func(s PersonSink) error {
			if personWrites.Add(1) == 2 {
				s.Abort()
				return errors.New("connection reset by peer")
			}
			return s.End()
		}}
	}
	w := NewLogWriter(LogWriterConfig{FlushAge: time.Millisecond, Persons: persons, Backoff: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}},
		r, l.LastIndex(), storedThenFailed, in.Existing, slog.New(slog.NewTextHandler(testLog{t}, nil)), nil)
	appendRecords(t, l, cs) // after the start: nothing is left from a crash
	waitWritten(w)
	closeLogWriter(t, w, 30*time.Second)
	wantEachOnce(t, conn, db, 300)
	if n := personWrites.Load(); n < 3 {
		t.Errorf("person writes = %d; want the failed one retried", n)
	}
}

// With Start the writer sends a batch's INSERT while the last one's ends.
// When the first batch's INSERT is stored but answers an error, and the
// second was sent meanwhile, both are read again and asked after: a plain
// count sees each row once, and every person row is written.
func TestLogWriterOverlapRetryAddsNoDuplicate(t *testing.T) {
	conn, db := migrated(t)
	l := openLog(t, t.TempDir())
	r, err := l.Reader("clickhouse")
	if err != nil {
		t.Fatal(err)
	}
	in := NewInserter(conn, db)
	appended := make(chan struct{})
	var starts, inFlight, maxInFlight atomic.Int32
	start := func(ctx context.Context, blocks Blocks) (func() error, error) {
		first := starts.Add(1) == 1
		if first {
			<-appended // every record is in the log: the next batch is there to start
		}
		wait, err := in.StartBlocks(ctx, blocks)
		if err != nil {
			return nil, err
		}
		n := inFlight.Add(1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		return func() error {
			defer inFlight.Add(-1)
			if err := wait(); err != nil {
				return err
			}
			if first {
				return errors.New("read: i/o timeout")
			}
			return nil
		}, nil
	}
	w := NewLogWriter(LogWriterConfig{FlushRows: 100, FlushAge: time.Millisecond, Persons: in.StartPersonRows, Start: start,
		Backoff: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}},
		r, l.LastIndex(), in.InsertBlocks, in.Existing, slog.New(slog.NewTextHandler(testLog{t}, nil)), nil)
	cs := withEmails(manyCompletions(0, 500))
	for k := range 5 {
		appendRecords(t, l, cs[k*100:(k+1)*100])
	}
	close(appended)
	waitWritten(w)
	if p := w.Pending(); p > 0 {
		t.Errorf("%d records not written after 30 s", p)
	}
	closeLogWriter(t, w, 30*time.Second)
	wantEachOnce(t, conn, db, 500)
	if m := maxInFlight.Load(); m < 2 {
		t.Errorf("at most %d INSERT in flight; want the next batch sent while the last one ended", m)
	}
}

// Each batch writes the person rows of its own completions, once.
func TestLogWriterPersonRowsOncePerBatch(t *testing.T) {
	conn, db := migrated(t)
	l := openLog(t, t.TempDir())
	cs := withEmails(manyCompletions(0, 300))
	for i := range cs {
		cs[i].VisitorID = fmt.Sprintf("v%d", i)
	}
	in := NewInserter(conn, db)
	var batches atomic.Int32
	persons := func(ctx context.Context) PersonSink {
		return endingWith{in.StartPersonRows(ctx), func(s PersonSink) error {
			batches.Add(1)
			return s.End()
		}}
	}
	w := startLogWriter(t, l, conn, db, LogWriterConfig{FlushRows: 100, FlushAge: time.Millisecond, Persons: persons})
	for k := 0; k < 3; k++ {
		appendRecords(t, l, cs[k*100:(k+1)*100])
		waitWritten(w)
	}
	closeLogWriter(t, w, 30*time.Second)
	if n := batches.Load(); n < 3 {
		t.Errorf("%d batches; want at least 3", n)
	}
	// Plain counts: a row left over from an earlier batch would be written
	// twice.
	if got := countRows(t, conn, "SELECT count() FROM "+db+".person_events"); got != 600 {
		t.Errorf("person_events rows = %d; want 600 (an email and a visitor row for each of 300)", got)
	}
	if got := countRows(t, conn, "SELECT count() FROM "+db+".identities"); got != 300 {
		t.Errorf("identities rows = %d; want 300", got)
	}
}

// A batch's person rows go out block by block, the person keys of each
// block made in memory the next block reuses: every row keeps its own
// completion's key.
func TestPersonWriterRowsAcrossBlocks(t *testing.T) {
	conn, db := migrated(t)
	cs := withEmails(manyCompletions(0, 5000)) // three blocks
	for i := range cs {
		cs[i].VisitorID = fmt.Sprintf("v%d", i)
	}
	if err := NewInserter(conn, db).InsertPersons(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	n := "toString(toUInt32(substring(event_id, 4)))" // id-00042 → 42
	if got := countRows(t, conn, "SELECT count() FROM "+db+".person_events WHERE person = concat('e:p', "+n+", '@example.com') OR person = concat('v:v', "+n+")"); got != 10_000 {
		t.Errorf("person_events rows with their own completion's key = %d; want 10000 (an email and a visitor row for each of 5000)", got)
	}
	if got := countRows(t, conn, "SELECT count() FROM "+db+".identities WHERE value = concat('p', substring(visitor_id, 2), '@example.com')"); got != 5000 {
		t.Errorf("identities rows linking a visitor to its own email = %d; want 5000", got)
	}
}

// While inserts fail the records stay in the log, and Close with a passed
// deadline leaves them there for the next start, which writes them.
func TestLogWriterKeepsRecordsThroughFailures(t *testing.T) {
	conn, db := migrated(t)
	dir := t.TempDir()
	l := openLog(t, dir)
	appendRecords(t, l, manyCompletions(0, 10), manyCompletions(10, 10))
	r, _ := l.Reader("clickhouse")
	var attempts atomic.Int32
	failing := func(context.Context, Blocks) error {
		attempts.Add(1)
		return errors.New("connection refused")
	}
	w := NewLogWriter(LogWriterConfig{FlushAge: time.Millisecond, Backoff: backoff.Policy{Min: time.Millisecond, Max: 5 * time.Millisecond}},
		r, l.LastIndex(), failing, nil, nil, nil)
	for attempts.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	// Close does not wait out the outage: the records are safe in the log.
	start := time.Now()
	closeLogWriter(t, w, time.Minute)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close while ClickHouse is down took %v; want it to give up at the first failed attempt", took)
	}
	if p := w.Pending(); p != 2 {
		t.Errorf("records pending after Close = %d; want 2 (kept)", p)
	}
	l.Close()

	l = openLog(t, dir)
	w = startLogWriter(t, l, conn, db, LogWriterConfig{FlushAge: 10 * time.Millisecond})
	closeLogWriter(t, w, 30*time.Second)
	if got := countRows(t, conn, "SELECT count() FROM "+db+".events"); got != 20 {
		t.Errorf("rows after the next start = %d; want 20", got)
	}
}

// A damaged record is skipped and counted; the records around it are
// written.
func TestLogWriterSkipsUndecodableRecord(t *testing.T) {
	conn, db := migrated(t)
	l := openLog(t, t.TempDir())
	appendRecords(t, l, manyCompletions(0, 3))
	if _, err := l.Append(context.Background(), []byte{42, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, l, manyCompletions(3, 3))
	w := startLogWriter(t, l, conn, db, LogWriterConfig{FlushAge: 10 * time.Millisecond})
	closeLogWriter(t, w, 30*time.Second)
	if got := countRows(t, conn, "SELECT count() FROM "+db+".events"); got != 6 {
		t.Errorf("rows = %d; want the 6 good ones", got)
	}
	if got := value(t, w.corrupt); got != 1 {
		t.Errorf("corrupt records counted = %v; want 1", got)
	}
}

// An idle follower moves its cursor without handing anything on.
func TestFollowerIdlePassesOver(t *testing.T) {
	l := openLog(t, t.TempDir())
	appendRecords(t, l, manyCompletions(0, 3), manyCompletions(3, 3))
	r, _ := l.Reader("rules")
	var handled atomic.Int32
	f := Follow(FollowConfig{MaxAge: time.Millisecond, Idle: func() bool { return true }}, r,
		func(context.Context, []ingest.Completion, uint64) error { handled.Add(1); return nil }, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.Close(ctx)
	if p := r.Pending(); p != 0 {
		t.Errorf("records pending = %d; want 0", p)
	}
	if n := handled.Load(); n != 0 {
		t.Errorf("handler called %d times; want 0 while idle", n)
	}
}
