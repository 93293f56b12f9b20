package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/ingest"
)

// WriterConfig tunes the events writer. Zero values mean the defaults.
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

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// EventInsertFunc sends one encoded batch to the events table, such as
// (*Inserter).InsertEvents.
type EventInsertFunc func(ctx context.Context, b *EventBatch) error

// Writer batches completions into the events table. It implements
// ingest.Sink; see the package comment for its backpressure policy.
type Writer struct {
	q *queue[ingest.Completion]
}

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

// RejectionWriterConfig tunes the rejections writer. Zero values mean the
// defaults.
type RejectionWriterConfig struct {
	// FlushRows is the most rows in one INSERT; 0 means 1,000.
	FlushRows int
	// FlushAge is the longest a rejection waits; 0 means 5 s: rejections are
	// read by people debugging a site, and fewer inserts leave more of the
	// server to events.
	FlushAge time.Duration
	// MaxQueueRows bounds the queue; past it rejections are dropped and
	// counted. 0 means 10,000: each holds at most a 4 KiB payload plus about
	// 200 bytes, so at most about 42 MB.
	MaxQueueRows int
	// MinBackoff and MaxBackoff: as for WriterConfig (100 ms, 10 s).
	MinBackoff, MaxBackoff time.Duration
}

// RejectionInsertFunc sends one encoded batch to the rejections table, such
// as (*Inserter).InsertRejections.
type RejectionInsertFunc func(ctx context.Context, b *RejectionBatch) error

// RejectionWriter batches rejections into the rejections table. It
// implements ingest.RejectionSink: Reject never blocks, and what does not fit
// is dropped and counted.
type RejectionWriter struct {
	q *queue[ingest.Rejection]
}

// NewRejectionWriter starts a rejection writer; Close stops it. reg may be
// nil.
func NewRejectionWriter(cfg RejectionWriterConfig, insert RejectionInsertFunc, log *slog.Logger, reg prometheus.Registerer) *RejectionWriter {
	cfg.FlushRows = orDefault(cfg.FlushRows, 1_000)
	cfg.FlushAge = orDefault(cfg.FlushAge, 5*time.Second)
	cfg.MaxQueueRows = orDefault(cfg.MaxQueueRows, 10_000)
	cfg.MinBackoff = orDefault(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = orDefault(cfg.MaxBackoff, 10*time.Second)
	var batch RejectionBatch
	send := func(ctx context.Context, rs []ingest.Rejection) error {
		batch.Reset()
		batch.Encode(rs)
		return insert(ctx, &batch)
	}
	q := newQueue(queueConfig{table: "rejections", flushRows: cfg.FlushRows, flushAge: cfg.FlushAge, maxRows: cfg.MaxQueueRows,
		minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff}, send, log, newMetrics(reg, "rejections"), nil)
	return &RejectionWriter{q: q}
}

// Reject queues what fits and drops the rest, counting it in
// tally_store_rows_dropped_total{table="rejections"}. It never blocks.
func (w *RejectionWriter) Reject(rs []ingest.Rejection) {
	w.q.offerOrDrop(rs)
}

// Close stops intake, writes what is queued until ctx ends and waits.
func (w *RejectionWriter) Close(ctx context.Context) error { return w.q.close(ctx) }

// DeliveryInsertFunc sends delivery rows in one INSERT, such as
// (*Inserter).InsertDeliveries.
type DeliveryInsertFunc func(ctx context.Context, ds []Delivery) error

// DeliveryWriter batches forward outcomes into the deliveries table for
// callers that must not wait for ClickHouse (the forwarder's workers, the
// rules engine on the write path). Like RejectionWriter it never blocks:
// what does not fit is dropped and counted. The forwards themselves are
// durable in the forwarder's outbox; these rows are their audit trail.
type DeliveryWriter struct {
	q *queue[Delivery]
}

// NewDeliveryWriter starts a delivery writer with the defaults: batches of
// up to 1,000 rows or 1 s old, and at most 100,000 queued rows (about 400
// bytes each with an error message, so about 40 MB; at Meta's 1,000 events
// per request that is 100 full requests of outcomes held through a
// ClickHouse outage). Close stops it. reg may be nil.
func NewDeliveryWriter(insert DeliveryInsertFunc, log *slog.Logger, reg prometheus.Registerer) *DeliveryWriter {
	q := newQueue(queueConfig{table: "deliveries", flushRows: 1_000, flushAge: time.Second, maxRows: 100_000,
		minBackoff: 100 * time.Millisecond, maxBackoff: 10 * time.Second},
		insert, log, newMetrics(reg, "deliveries"), nil)
	return &DeliveryWriter{q: q}
}

// Record queues what fits and drops the rest, counting it in
// tally_store_rows_dropped_total{table="deliveries"}. It never blocks, and
// the rows are copied.
func (w *DeliveryWriter) Record(ds []Delivery) {
	w.q.offerOrDrop(ds)
}

// Close stops intake, writes what is queued until ctx ends and waits.
func (w *DeliveryWriter) Close(ctx context.Context) error { return w.q.close(ctx) }
