// Package store keeps tally's data in ClickHouse: the schema and its
// versioned migrations (Migrate), the typed per-event views (SyncViews), the
// batching writers for completions, rejections and forward outcomes (Writer,
// RejectionWriter, DeliveryWriter), and the in-memory
// duplicate filter warmed from stored completions (Deduper).
//
// It must not import fiber itself, nor rules, snippet or cmd (cmd/tally's
// architecture_test.go checks): it uses ingest's types, implements ingest's
// small interfaces (Sink, RejectionSink, Deduper), and main wires it in. It
// talks to ClickHouse over the native protocol only, with SQL that runs on
// both ClickHouse 18.16 and current releases (see schema.go). The managed
// local server lives in store/chserver.
//
// # Batching
//
// Each writer keeps one bounded FIFO of rows, counted in rows, cut into
// batches of at most FlushRows. One goroutine per writer sends the oldest
// batch when it is full or its first row is FlushAge old, one INSERT at a
// time and in acceptance order, so rows reach ClickHouse in the order they
// were accepted. A failed INSERT is retried with capped exponential backoff
// and jitter, and the batch is kept, however long the outage lasts.
//
// # Backpressure
//
// Completions (Writer): Write never waits for ClickHouse. It takes a whole
// request's completions or none: when they would push the queue past
// MaxQueueRows it returns ingest.ErrFull, nothing of the request is queued,
// and the collector answers 503 with Retry-After, so the client keeps the
// only copy and retries. While ClickHouse is down the queue fills with the
// batch being retried and what arrives behind it, then refuses; when
// ClickHouse returns the queue drains and Write accepts again. Nothing
// accepted is dropped, except at shutdown: Close stops intake, keeps
// flushing until its context ends, and then gives up what is left, which is
// counted in tally_store_rows_dropped_total{table="events"} and reported in
// Close's error. A durable spool placed in front of the Writer (product
// contract §10) closes that gap: it replays into Write and learns from
// WriterConfig.OnWritten how far ClickHouse has caught up.
//
// Rejections (RejectionWriter): Reject never blocks and never fails. What
// does not fit in its queue is dropped and counted in
// tally_store_rows_dropped_total{table="rejections"}: rejections are
// diagnostics, and a flood of bad input must not hold up good input.
//
// Deliveries (DeliveryWriter): as rejections. Record never blocks; what
// does not fit is dropped and counted in
// tally_store_rows_dropped_total{table="deliveries"}. The forwards
// themselves are durable in the forwarder's outbox; these rows are their
// audit trail. InsertDeliveries writes synchronously for callers that keep
// their own queue.
//
// # Metrics
//
// tally_store_rows_written_total, tally_store_rows_dropped_total,
// tally_store_flush_errors_total, tally_store_flush_duration_seconds and
// tally_store_queue_rows, each labelled with table ("events", "rejections"
// or "deliveries").
package store
