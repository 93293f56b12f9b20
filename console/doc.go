// Package console is tally's window for marketers and operators: a few
// server-rendered pages on the admin listener that show what tally does
// without SQL. The live page streams completions as they are accepted
// (server-sent events), with the rules each one matched and browsers in
// debug mode highlighted; the others show rejections and truncations,
// event definitions with their counts, each rule's state and recent
// deliveries (the payload sent and the destination's answer), destination
// health and the durable log's readers, and, per Meta rule, how many
// conversions Meta can deduplicate against the browser pixel.
//
// Live is the stream's fan-out. Backpressure: it costs one atomic load per
// accepted request while nobody watches (a completion in debug mode is
// also kept in a small ring for the next watcher). A watcher gets frames
// through a buffer of subscriberBuffer; one that falls further behind
// loses frames, is told how many, and never slows acceptance.
//
// It reads and never writes: it must not change ClickHouse, the durable
// log or an outbox, and must not import fiber (ingest serves it), the
// ClickHouse driver (store's ConsoleReader answers its queries) or snippet.
package console
