// Package capi speaks Meta's Conversions API: the server-event wire format,
// normalising and hashing customer information per Meta's rules, the HTTP
// client for POST /{api_version}/{pixel_id}/events, and the Meta
// destination of the delivery engine (rules/deliver): its sender, which
// classifies Meta's answers, and its horizon.
//
// Classification. Before a request, Check drops an event Meta would refuse
// (Validate: failed, or expired when too old), because Meta rejects a whole
// request for one bad event, and holds back one whose event_time is up to
// an hour ahead until Meta takes it. Transient failures (network, 5xx, 429,
// Meta's throttling and temporary codes) retry. An invalid parameter (code
// 100) may be one event's fault: the engine bisects the batch. An invalid
// or expired token (190), or HTTP 401/403, pauses the destination with its
// events kept: no event is at fault, and a fixed token delivers them all.
// Any other refusal fails the events. The horizon is Meta's age limit for
// the event's action_source (7 days, 62 for physical_store) less an hour.
// event_id and event_time never change between attempts, so Meta
// deduplicates repeats and the browser pixel's twin.
//
// It must not decide which completions are forwarded or how a completion
// maps onto an event (package rules does), must not log or record raw
// customer information, and must not talk to any host but the configured
// Graph URL.
package capi
