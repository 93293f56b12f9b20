// Package capi speaks Meta's Conversions API: the server-event wire format,
// normalising and hashing customer information per Meta's rules, the HTTP
// client for POST /{pixel_id}/events with Meta's error classification, and
// the Forwarder that delivers events from a durable spool with retries.
//
// Backpressure: Forwarder.Enqueue writes to the spool and returns only once
// the event is on disk; when the spool is full it returns spool.ErrFull and
// the caller decides (the engine records the drop). Delivery is at least
// once: an event is removed from the spool only after Meta accepted it, a
// permanent error was recorded, or it grew too old for Meta (7 days).
//
// It must not decide which completions are forwarded or how a completion
// maps onto an event (package rules does), must not log or record raw
// customer information, and must not talk to any host but the configured
// Graph URL.
package capi
