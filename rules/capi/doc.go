// Package capi speaks Meta's Conversions API: the server-event wire format,
// normalising and hashing customer information per Meta's rules, the HTTP
// client for POST /{api_version}/{pixel_id}/events with Meta's error
// classification, and the Forwarder that delivers events from a durable
// spool with retries.
//
// Delivery policy. Enqueue writes the event to the destination's spool and
// returns once it is on disk; a worker per destination sends due events in
// batches of up to 1,000 (waiting up to Linger for a partial batch). Before
// each request it drops events whose event_time is past MaxAge (expired) and
// events that fail Validate (failed), because Meta rejects a whole request
// for one bad event. Transient failures (network, 5xx, 429, Meta's
// throttling and temporary codes) are retried with capped exponential
// backoff and jitter, never sooner than Retry-After, and given up as
// expired when the next try would be past MaxAge. Permanent failures are
// recorded as failed; when Meta rejects a batch with code 100 (invalid
// parameter), the batch is bisected so the good events are still delivered
// and the bad one is found in ~2·log2(n) requests. An invalid token (190)
// or missing permission fails every event of the request at once: no
// splitting can help. Every outcome goes to the DeliveryLog; event_id and
// event_time never change between attempts.
//
// Backpressure: when a destination's spool is full, Enqueue returns an
// error wrapping spool.ErrFull and the caller decides (the rules engine
// records the drop). Delivery is at least once: an event leaves the spool
// only after Meta accepted it, it failed permanently or it expired; an event
// in flight when tally dies is sent again, with the same event_id, after the
// restart.
//
// It must not decide which completions are forwarded or how a completion
// maps onto an event (package rules does), must not log or record raw
// customer information, and must not talk to any host but the configured
// Graph URL.
package capi
