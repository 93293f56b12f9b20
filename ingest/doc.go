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
// request is refused with 503 and Retry-After, and nothing of it is stored, so
// the client's retry is the only copy.
package ingest
