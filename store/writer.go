package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/ingest"
)

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// RejectionWriterConfig tunes the rejections writer. Zero values mean the
// defaults.
type RejectionWriterConfig struct {
	// FlushRows is the most rows in one INSERT; 0 means 1,000.
	FlushRows int
	// FlushAge is the longest a rejection waits; 0 means 5 s: rejections are
	// read by people debugging a site, and fewer inserts leave more of the
	// server to events.
	FlushAge time.Duration
	// MaxQueueBytes bounds the memory the queue holds; past it rejections
	// are dropped and counted. 0 means 8 MiB: about 2,000 rejections with a
	// full 4 KiB payload, or 30,000 small ones.
	MaxQueueBytes int64
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
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = 8 << 20
	}
	cfg.MinBackoff = orDefault(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = orDefault(cfg.MaxBackoff, 10*time.Second)
	var batch RejectionBatch
	send := func(ctx context.Context, rs []ingest.Rejection) error {
		batch.Reset()
		batch.Encode(rs)
		return insert(ctx, &batch)
	}
	q := newQueue(queueConfig{table: "rejections", flushRows: cfg.FlushRows, flushAge: cfg.FlushAge, maxBytes: cfg.MaxQueueBytes,
		size: rejectionSize, minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff, diagnostics: true}, send, log, newMetrics(reg, "rejections"), nil)
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
// up to 1,000 rows or 1 s old, and at most 16 MiB queued (about 200 bytes
// a row without an error message, so some 80,000 outcomes, 80 full Meta
// requests' worth, held through a ClickHouse outage). Close stops it. reg
// may be nil.
func NewDeliveryWriter(insert DeliveryInsertFunc, log *slog.Logger, reg prometheus.Registerer) *DeliveryWriter {
	q := newQueue(queueConfig{table: "deliveries", flushRows: 1_000, flushAge: time.Second, maxBytes: 16 << 20, size: deliverySize,
		minBackoff: 100 * time.Millisecond, maxBackoff: 10 * time.Second, diagnostics: true},
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

// Drain waits until every row recorded so far is written, or ctx ends (an
// erasure's deletes must come after the rows they are to delete).
func (w *DeliveryWriter) Drain(ctx context.Context) error {
	w.q.wake() // do not wait out the flush age
	for w.q.depth() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("deliveries not yet written: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// rejectionSize and deliverySize are what a queued row holds in memory:
// its strings plus the struct around them.
func rejectionSize(v any) int {
	r := v.(ingest.Rejection)
	return 128 + len(r.Site) + len(r.EventName) + len(r.Reason) + len(r.Field) + len(r.Payload)
}

func deliverySize(v any) int {
	d := v.(Delivery)
	return 160 + len(d.EventID) + len(d.SourceEvent) + len(d.Rule) + len(d.Destination) + len(d.ForwardedName) +
		len(d.Status) + len(d.TraceID) + len(d.Message) + len(d.Payload) + len(d.Response)
}
