// Package salesforce is the Salesforce destination: it records matching
// completions as completed Tasks on the Contact (or Lead) with the
// completion's email, as HubSpot's activity sync does, through the REST
// API: OAuth 2.0 (client credentials or a refresh token), one SOQL query
// per batch for the contacts and one for the leads, and one sObject
// Collections upsert of up to 200 tasks keyed by an external-id field that
// holds the event id, so a retry never creates a second task.
//
// Classification for the delivery engine: a task Salesforce created or
// updated is sent; a completion whose email matches no contact or lead is
// skipped_no_contact; a record Salesforce refuses (a field too long, a bad
// picklist value) fails alone; REQUEST_LIMIT_EXCEEDED, 5xx and network
// failures are retried; a session refused after one token refresh
// (INVALID_SESSION_ID), a token endpoint that refuses the credentials, and
// any other refusal of a whole request (a missing external-id field) pause
// the destination with its tasks kept.
//
// It must not decide which completions are forwarded (package rules does),
// must not log emails or task contents, and must not talk to any host but
// the configured login and instance URLs.
package salesforce
