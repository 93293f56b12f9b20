// Package wal is tally's durable log of accepted completions: one
// append-only, segmented log on local disk that every accepted request is
// written to before it is acknowledged, and that the ClickHouse writer and
// the rules engine each read from a durable cursor of their own — one log,
// many readers, the way Prometheus remote-write tails its WAL or a Kafka
// consumer group reads a topic.
//
// # Writing
//
// Append hands a record to the one committer goroutine. The committer takes
// every record waiting when it starts a commit (group commit: no delay is
// added; while one fsync runs, the next group gathers), writes them as one
// batch and fsyncs once, then answers each caller. An answered Append is on
// disk and survives kill -9 and power loss.
//
// # Reading
//
// A Reader has a name and a cursor: the index of the next record it has not
// yet finished with. Read returns records from its in-memory position on;
// Commit makes a position durable (a small file under Dir/cursors, written
// atomically). After a restart a reader resumes from its last commit, so a
// record is handled at least once by every reader; readers make their work
// idempotent by the ids inside the records.
//
// # Backpressure and retention
//
// The log is bounded by MaxBytes on disk. Append refuses a record that would
// pass it with ErrFull (the collector answers 503 with Retry-After); nothing
// is dropped. A segment file is deleted only once every registered reader
// has committed past it, so a reader that is stuck (ClickHouse down) holds
// the log, which then fills and refuses, never loses.
//
// # On disk
//
// Dir holds segment files named by the index of their first record (twenty
// digits), written by github.com/tidwall/wal: each record is a uvarint length
// followed by the record. Inside, tally adds a CRC-32C of the payload (the
// first four bytes, little endian), so a record damaged on disk is detected
// when read. Dir/cursors/NAME holds each reader's cursor as a decimal
// index. A tail torn by a power loss (a length with no complete record
// behind it) is cut off at Open, keeping every whole record before it.
//
// It must not know what a record means: it stores bytes (store encodes
// completions, see store/record.go).
package wal
