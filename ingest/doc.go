// Package ingest defines what an event completion is and how one is accepted:
// event definitions and their limits, parsing and validating completions from
// every path (browser snippet, HubSpot-compatible API, CSV import), and the
// HTTP collector that serves those paths.
//
// Every path accepts through one Pipeline (dedup → enrich → Sink), outside
// the HTTP handlers: the API, /e, and CSV import and replay alike.
//
// It is the only package that imports fiber. It must not import store, rules
// or snippet: main hands the pipeline and collector their dependencies as
// small interfaces declared here (Sink, Deduper, EnrichFunc).
//
// Backpressure: nothing here buffers completions. The pipeline hands each
// accepted request to the Sink synchronously (in tally, the durable log:
// Write returns once the request is on disk); when the Sink answers ErrFull
// the request is refused with 503 and Retry-After and its event ids are
// forgotten by the Deduper, so the client's retry is accepted as new.
package ingest
