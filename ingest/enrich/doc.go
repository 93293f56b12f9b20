// Package enrich derives what a completion's request implies: browser, OS,
// device type and bot flag from the user agent; country, region and city
// from the client IP (MaxMind City database); path, UTM tags, click id and
// touchpoint source from the page URL and referrer. It also owns the IP
// anonymisation rule (AnonymizeIP) that storage applies.
//
// Enrich runs on the ingest hot path, once per accepted completion: it does
// no I/O besides reading the memory-mapped GeoIP database, takes no lock but
// the user-agent cache's per-shard mutex, and logs nothing per completion.
//
// It must not change c.Client (the rules engine forwards the full IP while a
// delivery is pending; storage anonymises its own copy), must not overwrite an
// Enrichment field that is already set (API callers send hs_* values that
// win), and must not import fiber, store, rules or snippet.
package enrich
