package store

import (
	"cmp"
	"context"
	"strings"
	"time"
	"unsafe"

	"github.com/tally-analytics/tally/ingest"
)

// One identity per person: the identities table links visitor ids to the
// emails and external ids an identify (or an API call carrying both) tied
// them to, and person_events indexes every completion by the people it
// belongs to, so a contact's timeline is a read of a few granules instead
// of a scan of events (whose order key starts with site and event name).
// Both are derived from the completions as the events writer copies them
// from the durable log (PersonWriter, beside the events INSERT).

// identitiesDDL: one row per (kind, value, visitor) link. The table is
// read as "which visitors are this person", so it is sorted by the
// person's identifier. ReplacingMergeTree collapses the repeats every
// batch writes (each completion after an identify carries the email).
// Granules of 1,024 rows: a lookup wants a handful of rows, and reads at
// least one granule in every part.
const identitiesDDL = `CREATE TABLE IF NOT EXISTS {db}.identities
(
    kind       String COMMENT 'email | external_id',
    value      String COMMENT 'the email (trimmed, lower-cased) or the external id',
    visitor_id String COMMENT 'the visitor id (cookie or utk) the identifier was sent with',
    site       String,
    seen_at    DateTime('UTC') COMMENT 'occurred time of a completion that carried both (the last one written)'
)
ENGINE = ReplacingMergeTree
ORDER BY (kind, value, visitor_id)
SETTINGS index_granularity = 1024`

// personEventsDDL: one row per completion and identifier it carries
// (e:<email>, v:<visitor id>, o:<object id>), sorted by that key then time,
// so the completions of one person, newest or oldest first, are contiguous
// in every part. The rows hold the events order key (site, event_name,
// occurred_at, event_id), which is how the full rows are then read from
// events.
//
// It is not partitioned: a person's completions span months, and with
// monthly partitions every lookup would read at least one granule in each
// month's parts. Granules are 1,024 rows rather than 8,192 so a lookup
// reads less around its key; the primary index this keeps in memory is
// one key per 1,024 rows (about 150,000 keys, a few MB, at 150 million
// rows). Old months are removed with ALTER TABLE … DELETE WHERE
// occurred_at < …, as the engine allows no DROP PARTITION by month here.
const personEventsDDL = `CREATE TABLE IF NOT EXISTS {db}.person_events
(
    person         String COMMENT 'e:<email>, v:<visitor id> or o:<object id>',
    occurred_at    DateTime('UTC'),
    occurred_at_ms UInt16,
    event_name     String,
    event_id       String,
    site           String
)
ENGINE = ReplacingMergeTree
ORDER BY (person, occurred_at, occurred_at_ms, event_name, event_id)
SETTINGS index_granularity = 1024`

var (
	identityColumns     = []string{"kind", "value", "visitor_id", "site", "seen_at"}
	personEventsColumns = []string{"person", "occurred_at", "occurred_at_ms", "event_name", "event_id", "site"}
)

// Backfills for databases that had events before migration 3. Emails
// stored before tally normalised them are lower-cased and trimmed here
// (18.16 has no trimBoth). A crash half-way repeats the INSERT: the
// engines collapse the repeats and readers take one row per event.
const (
	normalizedEmail = `lower(replaceRegexpAll(email, '^\\s+|\\s+$', ''))`

	personEventsBackfill = `INSERT INTO {db}.person_events (person, occurred_at, occurred_at_ms, event_name, event_id, site)
SELECT person, occurred_at, occurred_at_ms, event_name, event_id, site FROM {db}.events
ARRAY JOIN arrayFilter(p -> length(p) > 2, [concat('e:', ` + normalizedEmail + `), concat('v:', visitor_id), concat('o:', object_id)]) AS person`

	identitiesBackfill = `INSERT INTO {db}.identities (kind, value, visitor_id, site, seen_at)
SELECT 'email', ` + normalizedEmail + ` AS value, visitor_id, any(site), max(occurred_at) FROM {db}.events
WHERE email != '' AND visitor_id != ''
GROUP BY value, visitor_id`
)

// contactTimelineDDL is the analysts' view of one identity per person:
// every completion with the contact (email) it belongs to, including the
// anonymous completions (no email) of every visitor id linked to that
// email, before and after the visitor identified. A visitor linked to two
// emails (a shared browser) shows its anonymous completions under both.
//
// It holds the events columns of schema version 4, which created it: a
// migration's statements run before its columns are added, so a later
// column is not there yet when a database is migrated from empty.
func contactTimelineDDL() []string {
	var names []string
	for _, c := range eventTable {
		if c.since <= 4 {
			names = append(names, c.name)
		}
	}
	cols := strings.Join(names, ", ")
	return []string{
		"DROP TABLE IF EXISTS {db}.`contact_timeline`",
		"CREATE VIEW {db}.`contact_timeline` AS\nSELECT contact, " + cols + " FROM (\n" +
			"    SELECT " + normalizedEmail + " AS contact, " + cols + " FROM {db}.events WHERE email != ''\n" +
			"    UNION ALL\n" +
			"    SELECT contact, " + cols + " FROM {db}.events\n" +
			"    ALL INNER JOIN (SELECT DISTINCT visitor_id, value AS contact FROM {db}.identities WHERE kind = 'email') USING visitor_id\n" +
			"    WHERE email = ''\n)",
	}
}

func personsMigration() []string {
	return append([]string{identitiesDDL, personEventsDDL, personEventsBackfill, identitiesBackfill}, contactTimelineDDL()...)
}

// Person keys in person_events: a prefix for the kind of identifier,
// then the identifier.
const (
	emailPrefix   = "e:"
	visitorPrefix = "v:"
	objectPrefix  = "o:"
)

func emailKey(email string) string     { return emailPrefix + email }
func visitorKey(visitor string) string { return visitorPrefix + visitor }
func objectKey(object string) string   { return objectPrefix + object }

// PersonWriter writes the person rows of one batch as the events writer
// hands its blocks (Add), so the batch is decoded once for both tables:
// each block's person_events rows go out at once in an INSERT streamed
// beside the batch's events INSERT, on another connection, and nothing of
// them is held past the block. The identities rows, a few per visitor, are
// gathered over the batch and written at its end (End).
type PersonWriter struct {
	ctx    context.Context
	in     *Inserter
	events *stream // the person_events INSERT
	ids    identityRows
	// One block's person_events columns, reused. Their strings are the
	// block's (the driver copies what it is given), but for the person
	// keys, made in keys.
	person, name, id, site []string
	at                     []time.Time
	ms                     []uint16
	keys                   []byte
}

// StartPersonRows returns a PersonWriter for one batch; it is a
// LogWriterConfig.Persons.
func (in *Inserter) StartPersonRows(ctx context.Context) PersonSink {
	return &PersonWriter{ctx: ctx, in: in, events: in.newStream(ctx, "person_events", personEventsColumns)}
}

// Add sends the person_events rows of cs (one row per identifier each
// completion carries) and gathers their identities rows. cs and its
// strings are not used after Add returns.
func (w *PersonWriter) Add(cs []ingest.Completion) error {
	w.ids.add(cs)
	w.person, w.name, w.id, w.site, w.at, w.ms = w.person[:0], w.name[:0], w.id[:0], w.site[:0], w.at[:0], w.ms[:0]
	w.keys = w.keys[:0] // the last block's keys were copied by the driver
	for i := range cs {
		c := &cs[i]
		t := clampTime(c.OccurredAt)
		for _, k := range [...]struct{ prefix, v string }{{emailPrefix, c.Identity.Email}, {visitorPrefix, c.VisitorID}, {objectPrefix, c.ObjectID}} {
			if k.v == "" {
				continue
			}
			w.person = append(w.person, w.key(k.prefix, k.v))
			w.name, w.id, w.site = append(w.name, c.EventName), append(w.id, c.EventID), append(w.site, c.Site)
			w.at, w.ms = append(w.at, t), append(w.ms, uint16(t.Nanosecond()/int(time.Millisecond)))
		}
	}
	return w.events.send([]any{w.person, w.at, w.ms, w.name, w.id, w.site}, len(w.person))
}

// key is prefix+v, made in w.keys: the keys of a block share its memory.
// A key stays valid when w.keys grows past it (its old array is left as
// it was), until the next block's keys overwrite it.
func (w *PersonWriter) key(prefix, v string) string {
	from := len(w.keys)
	w.keys = append(append(w.keys, prefix...), v...)
	b := w.keys[from:]
	return unsafe.String(&b[0], len(b))
}

// End ends the person_events INSERT and writes the identities rows, and
// returns once both are stored.
func (w *PersonWriter) End() error {
	wait := w.events.end()
	var err error
	if n := len(w.ids.kind); n > 0 {
		err = w.in.insert(w.ctx, "identities", identityColumns, n, []any{w.ids.kind, w.ids.value, w.ids.visitor, w.ids.site, w.ids.seen})
	}
	return cmp.Or(wait(), err)
}

// Abort drops what Add sent.
func (w *PersonWriter) Abort() { w.events.abort() }

// identityRows are the identities rows of a batch: one per (kind, value,
// visitor id), with the latest time it was seen. They hold copies of
// their strings, not the decoded ones: those are slices of the batch's
// records (see Records.Blocks), which the writer's next batch overwrites
// while these rows are written (TestIdentityRowsOutliveTheirRecords).
type identityRows struct {
	links                      map[personLink]int // → row
	kind, value, visitor, site []string
	seen                       []time.Time
	sites                      []string // copies of the sites met, few in a batch
}

type personLink struct{ kind, value, visitor string }

// shared returns a copy of s from *seen (adding one when s is new there),
// so the rows share a copy of each site.
func shared(seen *[]string, s string) string {
	for _, v := range *seen {
		if v == s {
			return v
		}
	}
	v := strings.Clone(s)
	if len(*seen) < 64 { // an unusual batch of many sites: not searched further
		*seen = append(*seen, v)
	}
	return v
}

// add gathers the identities rows of cs: a visitor id sent with an email
// or an external id links them.
func (r *identityRows) add(cs []ingest.Completion) {
	for i := range cs {
		c := &cs[i]
		if c.VisitorID == "" {
			continue
		}
		t := clampTime(c.OccurredAt)
		for _, l := range [...]personLink{{"email", c.Identity.Email, c.VisitorID}, {"external_id", c.Identity.ExternalID, c.VisitorID}} {
			if l.value == "" {
				continue
			}
			if j, ok := r.links[l]; ok {
				if t.After(r.seen[j]) {
					r.seen[j] = t
				}
				continue
			}
			if r.links == nil {
				r.links = map[personLink]int{}
			}
			l.value, l.visitor = strings.Clone(l.value), strings.Clone(l.visitor)
			r.links[l] = len(r.kind)
			r.kind, r.value, r.visitor = append(r.kind, l.kind), append(r.value, l.value), append(r.visitor, l.visitor)
			r.site, r.seen = append(r.site, shared(&r.sites, c.Site)), append(r.seen, t)
		}
	}
}

// PersonSink takes the person rows of one batch: Add with each block,
// then End once every block was added (it returns when the rows are
// stored), or Abort when the batch failed.
type PersonSink interface {
	Add(cs []ingest.Completion) error
	End() error
	Abort()
}
