// Package ingest defines what an event completion is and how one is accepted:
// event definitions and their limits, parsing and validating completions from
// every path (browser snippet, HubSpot-compatible API, CSV import), and the
// HTTP collector that serves those paths.
//
// It is the only package that imports fiber. It must not import store, rules
// or snippet: main hands the collector its dependencies as small interfaces
// declared here (Sink, Deduper, EnrichFunc).
//
// Backpressure: the collector never buffers completions itself. It hands each
// accepted request to the Sink synchronously; when the Sink answers ErrFull the
// request is refused with 503 and Retry-After and its event ids are forgotten
// by the Deduper, so the client's retry is accepted as new. A Sink that did
// part of its work before refusing must make that part idempotent by event id
// (tally's forwarding outbox is keyed by it).
package ingest
