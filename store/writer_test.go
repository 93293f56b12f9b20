package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tally-analytics/tally/ingest"
)

// fakeEvents is an EventInsertFunc that records what it was sent and fails
// while failures > 0.
type fakeEvents struct {
	mu       sync.Mutex
	failures int
	attempts []attempt
}

type attempt struct {
	at  time.Time
	ids []string
	ok  bool
}

func (f *fakeEvents) insert(_ context.Context, b *EventBatch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := attempt{at: time.Now(), ids: slices.Clone(b.column("event_id").([]string)), ok: f.failures == 0}
	f.attempts = append(f.attempts, a)
	if !a.ok {
		if f.failures > 0 {
			f.failures--
		}
		return errors.New("connection refused")
	}
	return nil
}

// sent returns the ids of the successful inserts, one string per insert.
func (f *fakeEvents) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, a := range f.attempts {
		if a.ok {
			out = append(out, strings.Join(a.ids, ","))
		}
	}
	return out
}

func completions(from, n int) []ingest.Completion {
	cs := make([]ingest.Completion, n)
	for i := range cs {
		cs[i] = ingest.Completion{EventName: "e", EventID: fmt.Sprint(from + i)}
	}
	return cs
}

func closeWriter(t *testing.T, w interface{ Close(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestWriterFlushesOnSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEvents{}
		w := NewWriter(WriterConfig{FlushRows: 3, FlushAge: time.Hour}, f.insert, nil, nil)
		if err := w.Write(t.Context(), completions(0, 7)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, want := f.sent(), []string{"0,1,2", "3,4,5"}; !slices.Equal(got, want) {
			t.Errorf("inserts after 7 rows = %q; want %q", got, want)
		}
		if got := w.Queued(); got != 1 {
			t.Errorf("Queued = %d; want 1", got)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got, want := f.sent(), []string{"0,1,2", "3,4,5", "6"}; !slices.Equal(got, want) {
			t.Errorf("inserts after an hour = %q; want %q", got, want)
		}
		closeWriter(t, w)
	})
}

func TestWriterFlushesOnAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEvents{}
		w := NewWriter(WriterConfig{FlushRows: 100, FlushAge: time.Second}, f.insert, nil, nil)
		start := time.Now()
		_ = w.Write(t.Context(), completions(0, 2))
		time.Sleep(500 * time.Millisecond)
		_ = w.Write(t.Context(), completions(2, 1)) // joins the batch; does not restart its clock
		time.Sleep(499 * time.Millisecond)
		synctest.Wait()
		if got := f.sent(); len(got) != 0 {
			t.Fatalf("inserted %q before the batch was 1 s old", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got, want := f.sent(), []string{"0,1,2"}; !slices.Equal(got, want) {
			t.Errorf("inserts at 1 s = %q; want %q", got, want)
		}
		if at := f.attempts[0].at.Sub(start); at != time.Second {
			t.Errorf("batch inserted %v after its first row; want 1s", at)
		}
		closeWriter(t, w)
	})
}

func TestWriterFullQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEvents{failures: -1} // ClickHouse down for good
		w := NewWriter(WriterConfig{FlushRows: 2, MaxQueueRows: 5}, f.insert, nil, nil)
		write := func(from, n int, want error) {
			t.Helper()
			if err := w.Write(t.Context(), completions(from, n)); !errors.Is(err, want) {
				t.Errorf("Write(%d rows) with %d queued = %v; want %v", n, w.Queued(), err, want)
			}
		}
		write(0, 3, nil)
		write(3, 3, ingest.ErrFull) // all or nothing
		write(3, 2, nil)
		write(5, 1, ingest.ErrFull)
		if got := w.Queued(); got != 5 {
			t.Errorf("Queued = %d; want 5", got)
		}
		f.mu.Lock()
		f.failures = 0 // ClickHouse is back
		f.mu.Unlock()
		time.Sleep(11 * time.Second) // longer than the longest backoff
		synctest.Wait()
		if got := w.Queued(); got != 0 {
			t.Errorf("Queued after recovery = %d; want 0", got)
		}
		write(5, 5, nil)
		closeWriter(t, w)
		if got, want := f.sent(), []string{"0,1", "2,3", "4", "5,6", "7,8", "9"}; !slices.Equal(got, want) {
			t.Errorf("inserts = %q; want %q (in acceptance order)", got, want)
		}
	})
}

func TestWriterRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEvents{failures: 5}
		reg := prometheus.NewRegistry()
		minB, maxB := 100*time.Millisecond, 800*time.Millisecond
		w := NewWriter(WriterConfig{FlushRows: 2, MinBackoff: minB, MaxBackoff: maxB}, f.insert, nil, reg)
		_ = w.Write(t.Context(), completions(0, 2))
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(f.attempts) != 6 {
			t.Fatalf("%d attempts; want 5 failures and a success", len(f.attempts))
		}
		for i := 1; i < len(f.attempts); i++ {
			gap := f.attempts[i].at.Sub(f.attempts[i-1].at)
			d := min(minB<<(i-1), maxB)
			if gap < d/2 || gap > d {
				t.Errorf("wait before attempt %d = %v; want within [%v, %v]", i+1, gap, d/2, d)
			}
			if got := strings.Join(f.attempts[i].ids, ","); got != "0,1" {
				t.Errorf("attempt %d sent %q; want the kept batch 0,1", i+1, got)
			}
		}
		if got := value(t, w.q.m.flushErrors); got != 5 {
			t.Errorf("flush errors = %v; want 5", got)
		}
		if got := value(t, w.q.m.written); got != 2 {
			t.Errorf("rows written = %v; want 2", got)
		}
		closeWriter(t, w)
	})
}

func TestWriterCloseDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEvents{failures: 2}
		var written int
		w := NewWriter(WriterConfig{FlushRows: 4, FlushAge: time.Hour, OnWritten: func(n int) { written += n }}, f.insert, nil, nil)
		_ = w.Write(t.Context(), completions(0, 6))
		closeWriter(t, w) // must not wait an hour for the second batch
		if got, want := f.sent(), []string{"0,1,2,3", "4,5"}; !slices.Equal(got, want) {
			t.Errorf("inserts = %q; want %q", got, want)
		}
		if written != 6 {
			t.Errorf("OnWritten total = %d; want 6", written)
		}
		if err := w.Write(t.Context(), completions(6, 1)); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close = %v; want ErrClosed", err)
		}
	})
}

func TestWriterCloseDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEvents{failures: -1}
		reg := prometheus.NewRegistry()
		w := NewWriter(WriterConfig{FlushRows: 2}, f.insert, nil, reg)
		_ = w.Write(t.Context(), completions(0, 5))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := w.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "5 rows not written") || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v; want 5 rows not written and DeadlineExceeded", err)
		}
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("Close took %v; want the 5s deadline", took)
		}
		if got := value(t, w.q.m.dropped); got != 5 {
			t.Errorf("rows dropped = %v; want 5", got)
		}
		if got := w.Queued(); got != 0 {
			t.Errorf("Queued after Close = %d; want 0", got)
		}
		// synctest.Test fails if the writer's goroutine outlived Close.
	})
}

func TestRejectionWriterDropsWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		down := true
		insert := func(_ context.Context, b *RejectionBatch) error {
			mu.Lock()
			defer mu.Unlock()
			if down {
				return errors.New("down")
			}
			got = append(got, strings.Join(b.reason, ","))
			return nil
		}
		reg := prometheus.NewRegistry()
		w := NewRejectionWriter(RejectionWriterConfig{FlushRows: 10, MaxQueueBytes: 3 * 129}, insert, nil, reg) // room for three one-letter reasons
		rs := func(reasons ...string) []ingest.Rejection {
			var out []ingest.Rejection
			for _, r := range reasons {
				out = append(out, ingest.Rejection{Reason: r})
			}
			return out
		}
		w.Reject(rs("a", "b"))
		w.Reject(rs("c", "d", "e")) // only c fits
		if got := value(t, w.q.m.dropped); got != 2 {
			t.Errorf("dropped = %v; want 2", got)
		}
		mu.Lock()
		down = false
		mu.Unlock()
		closeWriter(t, w)
		if want := []string{"a,b,c"}; !slices.Equal(got, want) {
			t.Errorf("inserts = %q; want %q", got, want)
		}
		w.Reject(rs("late"))
		if got := value(t, w.q.m.dropped); got != 3 {
			t.Errorf("dropped after Close = %v; want 3", got)
		}
	})
}

func TestWriterMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := &fakeEvents{}
	w1 := NewWriter(WriterConfig{}, f.insert, nil, reg)
	w2 := NewWriter(WriterConfig{}, f.insert, nil, reg) // same table: shares the series
	rw := NewRejectionWriter(RejectionWriterConfig{}, func(context.Context, *RejectionBatch) error { return nil }, nil, reg)
	for _, w := range []interface{ Close(context.Context) error }{w1, w2, rw} {
		closeWriter(t, w)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range families {
		if mf.GetName() == "tally_store_queue_rows" {
			n = len(mf.GetMetric())
		}
	}
	if n != 2 {
		t.Errorf("tally_store_queue_rows series = %d; want 2 (events, rejections)", n)
	}
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	switch {
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither counter nor gauge", m.Desc())
	return 0
}

func TestDeliveryWriterBatchesAndDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []int
		insert := func(_ context.Context, ds []Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, len(ds))
			return nil
		}
		w := NewDeliveryWriter(insert, nil, prometheus.NewRegistry())
		w.Record(make([]Delivery, 2500))
		synctest.Wait()
		mu.Lock()
		if want := []int{1000, 1000}; !slices.Equal(got, want) {
			t.Errorf("inserts before 1 s = %v; want %v", got, want)
		}
		mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		mu.Lock()
		if want := []int{1000, 1000, 500}; !slices.Equal(got, want) {
			t.Errorf("inserts after 1 s = %v; want %v", got, want)
		}
		mu.Unlock()
		// An empty delivery holds 160 bytes: 16 MiB hold 104,857 of them.
		w.Record(make([]Delivery, 104_858)) // one more than the queue holds
		if got := value(t, w.q.m.dropped); got != 1 {
			t.Errorf("dropped = %v; want 1", got)
		}
		closeWriter(t, w)
	})
}

func TestWriterTimesOutAHungInsert(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var calls []time.Time
		insert := func(ctx context.Context, b *EventBatch) error {
			mu.Lock()
			calls = append(calls, time.Now())
			first := len(calls) == 1
			mu.Unlock()
			if first { // the server accepted the connection and hangs
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		w := NewWriter(WriterConfig{FlushRows: 1, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}, insert, nil, nil)
		start := time.Now()
		_ = w.Write(t.Context(), completions(0, 1))
		time.Sleep(2 * insertTimeout)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(calls) != 2 {
			t.Fatalf("%d insert attempts; want a hung one and its retry", len(calls))
		}
		if gap := calls[1].Sub(start); gap < insertTimeout || gap > insertTimeout+time.Millisecond {
			t.Errorf("retry after %v; want about %v", gap, insertTimeout)
		}
		if w.Queued() != 0 {
			t.Errorf("Queued = %d after the retry; want 0", w.Queued())
		}
		closeWriter(t, w)
	})
}

// WriterConfig and Writer are a completions writer over the generic queue,
// shaped like the rejection and delivery writers: the queue's batching,
// backoff and Close are tested through them.
type WriterConfig struct {
	// FlushRows is the most rows in one INSERT; 0 means 10,000. ClickHouse
	// wants few, large inserts (each makes a part to merge): at the ~96,000
	// rows/s measured on a 2-core machine that is about 10 inserts/s at the
	// ceiling, and far fewer below it.
	FlushRows int
	// FlushAge is the longest a row waits for its batch to fill; 0 means 1 s,
	// so an analyst sees an event about a second after it is accepted, and a
	// quiet site still makes at most one insert per second.
	FlushAge time.Duration
	// MaxQueueRows bounds the rows accepted but not yet written; past it,
	// Write answers ingest.ErrFull (the collector's 503). 0 means 200,000:
	// about 2 s of the measured insert ceiling, or 200 s of ClickHouse outage
	// at 1,000 completions/s. A completion takes about 2 KB in memory (an
	// 850-byte struct, ten properties, URL and user agent), so a full queue
	// holds about 400 MB. It must be at least ingest.MaxBatch (500) or a full
	// API batch could never be accepted.
	MaxQueueRows int
	// MinBackoff and MaxBackoff bound the wait between retries of a failed
	// insert; 0 means 100 ms and 10 s: a restarted server is noticed within
	// 10 s, and an outage costs at most one insert attempt per 5–10 s.
	MinBackoff, MaxBackoff time.Duration
	// OnWritten, if set, is called from the writer's goroutine after each
	// successful insert with its row count. Rows are inserted in the order
	// Write accepted them, so a durable spool in front of the writer can
	// advance its read position by that count.
	OnWritten func(rows int)
}

func (c WriterConfig) withDefaults() WriterConfig {
	c.FlushRows = orDefault(c.FlushRows, 10_000)
	c.FlushAge = orDefault(c.FlushAge, time.Second)
	c.MaxQueueRows = orDefault(c.MaxQueueRows, 200_000)
	c.MinBackoff = orDefault(c.MinBackoff, 100*time.Millisecond)
	c.MaxBackoff = orDefault(c.MaxBackoff, 10*time.Second)
	return c
}

// Writer batches completions into the events table. It implements
// ingest.Sink; see the package comment for its backpressure policy.
type Writer struct {
	q *queue[ingest.Completion]
}

// EventInsertFunc sends one encoded batch to the events table, such as
// (*Inserter).InsertEvents.
type EventInsertFunc func(ctx context.Context, b *EventBatch) error

// NewWriter starts a writer; Close stops it. reg may be nil.
func NewWriter(cfg WriterConfig, insert EventInsertFunc, log *slog.Logger, reg prometheus.Registerer) *Writer {
	cfg = cfg.withDefaults()
	var batch EventBatch // owned by the queue's goroutine, reused every flush
	send := func(ctx context.Context, cs []ingest.Completion) error {
		batch.Reset()
		batch.Encode(cs)
		return insert(ctx, &batch)
	}
	q := newQueue(queueConfig{table: "events", flushRows: cfg.FlushRows, flushAge: cfg.FlushAge, maxRows: cfg.MaxQueueRows,
		minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff}, send, log, newMetrics(reg, "events"), cfg.OnWritten)
	return &Writer{q: q}
}

// Write queues all of cs or none: it returns ingest.ErrFull when they would
// take the queue past MaxQueueRows, and ErrClosed after Close. It never
// blocks on ClickHouse. The completions are copied; the caller may reuse cs.
func (w *Writer) Write(_ context.Context, cs []ingest.Completion) error {
	_, err := w.q.offer(cs, false)
	return err
}

// Queued is the number of accepted rows not yet written (for /readyz).
func (w *Writer) Queued() int { return w.q.depth() }

// Close stops intake, writes what is queued until ctx ends, then gives up
// the rest (counted in tally_store_rows_dropped_total and in the error) and
// returns once the writer's goroutine has.
func (w *Writer) Close(ctx context.Context) error { return w.q.close(ctx) }

// Rejections and deliveries are diagnostics: at Close with ClickHouse down
// they are dropped and counted at the first failed insert, without error,
// rather than holding the shutdown until its deadline.
func TestDiagnosticsWritersCloseAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		insert := func(context.Context, *RejectionBatch) error { return errors.New("connection refused") }
		w := NewRejectionWriter(RejectionWriterConfig{FlushRows: 2}, insert, nil, reg)
		w.Reject([]ingest.Rejection{{Reason: "A"}, {Reason: "B"}, {Reason: "C"}})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		if err := w.Close(ctx); err != nil {
			t.Errorf("Close = %v; want nil", err)
		}
		if took := time.Since(start); took >= time.Minute {
			t.Errorf("Close took %v; want less than its deadline", took)
		}
		if got := value(t, w.q.m.dropped); got != 3 {
			t.Errorf("rows dropped = %v; want 3", got)
		}
	})
}
