// Package webhook is the webhook destination: it POSTs batches of
// matching completions as JSON to a URL, signed as the Standard Webhooks
// specification says (webhook-id, webhook-timestamp and webhook-signature
// headers; HMAC-SHA256 over "id.timestamp.body" with a whsec_ secret), so
// any CRM or workflow tool that verifies Standard Webhooks can take them.
//
// Classification for the delivery engine: a 2xx answer delivers the
// batch; 429, 408, 5xx and network failures retry (Retry-After honoured);
// 401, 403 and 410 pause the destination with its completions kept (the
// receiver refuses tally, not a completion); any other 4xx may be one
// completion's fault, so the batch is bisected down to the one that is
// refused, which fails alone. A batch of the same completions carries the
// same webhook-id; a retried completion may travel in another batch, so
// every completion carries its event id, by which receivers drop repeats.
//
// It must not decide which completions are forwarded (package rules
// does), must not log the payloads or the secret, and must not talk to any
// host but the configured URL.
package webhook
