// Package capitest is a stand-in for Meta's Graph API endpoint
// POST /{version}/{pixel_id}/events, for tests. It validates what Meta
// validates (token, required fields per action_source, hashed versus
// unhashed user_data, event_time within 7 days and not in the future, at
// most 1,000 events), answers with Meta-shaped JSON, records every event it
// accepts, and fails on demand (5xx, 429 with Retry-After, invalid
// parameter, invalid token).
//
// Its validation is written independently of package capi's so that the
// client's own checks are tested against it, not with it. It must not be
// imported by production code.
package capitest
