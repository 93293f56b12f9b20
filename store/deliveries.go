package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DeliveryWriter batches delivery outcomes into the deliveries table on its
// own goroutine, so a forwarder's worker never waits for ClickHouse.
// Outcomes are an audit log: the forwarder's spool, not this queue, holds
// what is still to be sent. What does not fit in the queue is dropped and
// counted in tally_store_rows_dropped_total{table="deliveries"}.
type DeliveryWriter struct {
	q *queue[Delivery]
}

// DeliveryInsertFunc writes outcomes, such as (*Inserter).InsertDeliveries.
type DeliveryInsertFunc func(ctx context.Context, ds []Delivery) error

// NewDeliveryWriter starts a delivery writer; Close stops it. Defaults: 1,000
// rows or 1 s per INSERT, at most 100,000 rows queued (about 40 MB at ~400
// bytes a row, enough for a long ClickHouse outage at Meta's request rates).
// reg may be nil.
func NewDeliveryWriter(insert DeliveryInsertFunc, log *slog.Logger, reg prometheus.Registerer) *DeliveryWriter {
	q := newQueue(queueConfig{table: "deliveries", flushRows: 1_000, flushAge: time.Second, maxRows: 100_000,
		minBackoff: 100 * time.Millisecond, maxBackoff: 10 * time.Second}, insert, log, newMetrics(reg, "deliveries"), nil)
	return &DeliveryWriter{q: q}
}

// Record queues outcomes; it never blocks.
func (w *DeliveryWriter) Record(ds []Delivery) {
	n, _ := w.q.offer(ds, true)
	if dropped := len(ds) - n; dropped > 0 {
		w.q.m.dropped.Add(float64(dropped))
	}
}

// Close stops intake, writes what is queued until ctx ends and waits.
func (w *DeliveryWriter) Close(ctx context.Context) error { return w.q.close(ctx) }
