// Package store keeps tally's data in ClickHouse: the schema and its
// versioned migrations (Migrate), the typed per-event views (SyncViews), the
// writer that copies the durable log into the events table (LogWriter), the
// batching writers for rejections and forward outcomes (RejectionWriter,
// DeliveryWriter), and the in-memory duplicate filter warmed from stored
// completions (Deduper). It also owns the durable log's record format
// (record.go) and the log's Sink and Follower, because the events columns,
// their INSERT encoding and the log format all derive from one table
// (columns.go).
//
// It must not import fiber itself, nor rules, snippet or cmd (cmd/tally's
// architecture_test.go checks): it uses ingest's types, implements ingest's
// small interfaces (Sink, RejectionSink, Deduper), and main wires it in. It
// talks to ClickHouse over the native protocol only, with SQL that runs on
// both ClickHouse 18.16 and current releases (see schema.go). The managed
// local server lives in store/chserver, the log itself in store/wal.
//
// # Completions: one durable log, many readers
//
// An accepted request is one record appended to the durable log (LogSink);
// the request is acknowledged only once the record is on disk. Readers
// follow the log from their own cursors (Follow): LogWriter inserts into
// events, in batches of FlushRows or FlushAge, committing its cursor after
// each successful INSERT; the rules engine is another follower (main wires
// it). A failed INSERT is retried with capped exponential backoff and
// jitter for as long as it takes; the log holds the completions meanwhile.
//
// Backpressure: the log is bounded in bytes on disk. When it is full, the
// Sink answers ingest.ErrFull and the collector answers 503 with
// Retry-After, so the client keeps the only copy and retries. Nothing
// acknowledged is dropped: at shutdown what the readers have not reached
// stays in the log for the next start. Memory is bounded by the readers'
// batch sizes (rows and bytes), not by the backlog.
//
// # Rejections and deliveries
//
// Each has one in-memory FIFO, bounded in bytes, flushed by one goroutine on size or
// age (queue.go), retrying failed INSERTs with backoff.
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
