// Package deliver is tally's one delivery engine: it takes the items the
// rules engine maps for a destination, keeps them in a durable outbox per
// destination, and sends them in batches through the destination's Sender,
// whatever the destination is (Meta's Conversions API, Salesforce, a
// webhook). A destination type provides only its Sender (the request and
// the classification of each answer); everything else is here.
//
// Delivery policy. EnqueueBatch writes items to the destination's outbox
// (a store/spool file) and returns once they are on disk; one worker per
// destination leases due items in batches of up to the destination's
// MaxBatch, waiting up to Linger for a partial batch. Before a request it
// drops items past their destination's horizon (expired) and items the
// Sender's optional Check refuses (failed), or postpones them. Each item's
// Result is classified by the Sender:
//
//   - Sent: acknowledged and removed.
//   - Retry: tried again after capped exponential backoff with jitter,
//     never sooner than Retry-After, and given up as expired when the next
//     try would be past the horizon.
//   - Drop: this item can never be delivered (failed, or a skipped_…
//     status the Sender names); removed.
//   - Split: the whole request was refused, perhaps for one item: the batch
//     is bisected so the good items are delivered and the bad one is found
//     in ~2·log2(n) requests.
//   - Pause: the destination refused tally's credentials. Every item stays
//     in the outbox without counting an attempt, the destination is paused
//     (Health, the tally_destination_paused metric, one log line, paused
//     rows for the refused request's items), and it is probed again every
//     MaxBackoff; a reload that gives it new credentials
//     resumes it at once. Items still expire at their horizon.
//
// Every outcome is a store.Delivery given to the DeliveryLog.
//
// Backpressure: when a destination's outbox is full, EnqueueBatch returns
// an error wrapping spool.ErrFull and the caller decides (the durable log's
// follower retries). Delivery is at least once: an item leaves the outbox
// only after its destination accepted it, it failed permanently or it
// expired; an item in flight when tally dies is sent again, with the same
// id, after the restart, so destinations must be idempotent by item id.
//
// It must not decide which completions are forwarded or how a completion
// maps onto an item (package rules and the destination packages do), must
// not log payloads (they may hold customer information), and must not
// speak any destination's protocol.
package deliver
