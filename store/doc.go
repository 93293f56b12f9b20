// Package store keeps completions in ClickHouse: the schema and its
// versioned migrations, the typed per-event views, and the batching writer.
package store
