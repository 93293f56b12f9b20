// Package sftest is a local stand-in for a Salesforce org, for tests: the
// OAuth 2.0 token endpoint (client credentials and refresh token), SOQL
// queries of contacts and leads by email, and the sObject Collections
// upsert of Tasks by an external-id field. It validates what Salesforce
// validates for those calls (the session, the SOQL's shape and string
// literals, field names, lengths and picklists, 15/18-character ids and
// their prefixes, at most 200 records) and answers in Salesforce's shapes,
// with failures on demand. Test support only: production code must not
// import it.
package sftest
