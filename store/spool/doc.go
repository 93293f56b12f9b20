// Package spool is a durable, bounded queue on local disk (one bbolt file
// per spool) that survives kill -9: Enqueue returns only after the items
// are fsynced, concurrent callers sharing one commit (group commit). Items
// are opaque bytes under a caller-chosen key; enqueueing a key twice stores
// it once. A consumer leases due items, then acknowledges them, retries them
// at a later time (counting an attempt) or releases them.
//
// Backpressure: the spool is bounded by item count and bytes; Enqueue
// refuses a whole call with ErrFull rather than dropping or blocking, and
// the caller decides (the collector answers 503 with Retry-After, the rules
// engine records the drop).
//
// bbolt is chosen over an append-only log because items are removed out of
// order (retries) and keys must be unique: a B+tree gives both, with
// transactions that keep the item and its due-index entry consistent.
//
// It must not interpret payloads, and must not hold leases across restarts:
// after a crash every unacknowledged item is delivered again (at least once).
package spool
