// Package rules decides which accepted completions are forwarded where, and
// maps each onto the destination's item: the destinations and rules
// sections of tally.yaml (Check validates them with YAML paths), the typed
// filter matcher (see Op for the semantics, shared with the browser mirror
// in snippet/src/mirror.js), the completion → Meta server event mapping,
// the registry of destination types (kinds: each type's checks, mapping and
// sender), and the Engine that runs the rules. The Engine is fed from the durable log by
// its own reader (main wires it), in batches, off the request path: nothing
// is forwarded that is not in the log.
//
// A rule forwards only completions received after it was enabled in its
// current form; the Engine keeps those times in a small JSON state file
// under its data dir, written atomically. Bots are never forwarded, imports
// only on a deliberate replay, and nothing to an ad platform without ads
// consent.
//
// The compiled rules sit behind one atomic pointer: Engine.Reload compiles
// a new config and swaps it in whole, or keeps the old on any problem. A
// rule's dedupe window is an in-memory map of hashed keys, bounded
// (defaultDedupeKeys); it is the Engine's only state besides the rules.
// Explain runs the rules over one completion without forwarding, for
// tally rules test.
//
// Backpressure: the Engine holds nothing itself. Write hands every match to
// the Forwarder (deliver.Forwarder) synchronously; when Enqueue fails (the
// outbox is full) Write returns the error and the caller (the log reader) retries the
// batch later, its cursor unmoved: the log holds the completions meanwhile.
//
// It must not talk to any destination itself (the destination packages
// do, through rules/deliver), must not
// import store or snippet (main wires them), and must not log customer
// information or access tokens.
package rules
