package store

import (
	"context"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// One identity per person: the identities table links visitor ids to the
// emails and external ids an identify (or an API call carrying both) tied
// them to, and person_events indexes every completion by the people it
// belongs to, so a contact's timeline is a read of a few granules instead
// of a scan of events (whose order key starts with site and event name).
// Both are derived from the completions as the events writer copies them
// from the durable log (InsertPersonRows, called with the events INSERT).

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

// Person keys in person_events.
func emailKey(email string) string     { return "e:" + email }
func visitorKey(visitor string) string { return "v:" + visitor }
func objectKey(object string) string   { return "o:" + object }

// PersonRows are the person_events and identities rows derived from a
// batch of completions, gathered block by block (Add) while the batch's
// events INSERT encodes the same blocks, so the batch is decoded once.
// They hold copies of a few strings of each completion, not the decoded
// strings themselves: those are slices of the batch's records (see
// Records.Blocks), which the writer's next batch overwrites while these
// rows are written (TestPersonRowsOutliveTheirRecords).
type PersonRows struct {
	person, name, id, site []string
	at                     []time.Time
	ms                     []uint16
	links                  map[personLink]int // → row in the identities columns
	kind, value, visitor   []string
	lsite                  []string
	seen                   []time.Time
	names, sites           []string // copies of the event names and sites met, few in a batch
}

// shared returns a copy of s from *seen (adding one when s is new there),
// so the rows share a copy of each event name and site.
func shared(seen *[]string, s string) string {
	for _, v := range *seen {
		if v == s {
			return v
		}
	}
	v := strings.Clone(s)
	if len(*seen) < 64 { // an unusual batch of many names: not searched further
		*seen = append(*seen, v)
	}
	return v
}

type personLink struct{ kind, value, visitor string }

// newPersonRows returns PersonRows with room for n person rows.
func newPersonRows(n int) *PersonRows {
	return &PersonRows{person: make([]string, 0, n), name: make([]string, 0, n), id: make([]string, 0, n), site: make([]string, 0, n),
		at: make([]time.Time, 0, n), ms: make([]uint16, 0, n)}
}

// Add derives the rows of cs.
func (p *PersonRows) Add(cs []ingest.Completion) {
	if p.links == nil {
		p.links = map[personLink]int{}
	}
	for i := range cs {
		c := &cs[i]
		t := clampTime(c.OccurredAt)
		name, id, site := shared(&p.names, c.EventName), strings.Clone(c.EventID), shared(&p.sites, c.Site)
		for _, k := range []struct{ v, key string }{
			{c.Identity.Email, emailKey(c.Identity.Email)}, {c.VisitorID, visitorKey(c.VisitorID)}, {c.ObjectID, objectKey(c.ObjectID)},
		} {
			if k.v == "" {
				continue
			}
			p.person, p.name, p.id, p.site = append(p.person, k.key), append(p.name, name), append(p.id, id), append(p.site, site)
			p.at, p.ms = append(p.at, t), append(p.ms, uint16(t.Nanosecond()/int(time.Millisecond)))
		}
		if c.VisitorID == "" {
			continue
		}
		for _, l := range []personLink{{"email", c.Identity.Email, c.VisitorID}, {"external_id", c.Identity.ExternalID, c.VisitorID}} {
			if l.value == "" {
				continue
			}
			if j, ok := p.links[l]; ok {
				if t.After(p.seen[j]) {
					p.seen[j] = t
				}
				continue
			}
			l.value, l.visitor = strings.Clone(l.value), strings.Clone(l.visitor)
			p.links[l] = len(p.kind)
			p.kind, p.value, p.visitor, p.lsite, p.seen = append(p.kind, l.kind), append(p.value, l.value), append(p.visitor, l.visitor), append(p.lsite, site), append(p.seen, t)
		}
	}
}

// InsertPersonRows writes rows to identities and person_events. The events
// writer calls it beside its events INSERT of the same batch: when either
// fails the batch is retried, and these rows are written again, which the
// engines and readers absorb (rows of one key collapse; readers take one
// row per event).
func (in *Inserter) InsertPersonRows(ctx context.Context, p *PersonRows) error {
	if err := in.insert(ctx, "identities", identityColumns, len(p.kind), []any{p.kind, p.value, p.visitor, p.lsite, p.seen}); err != nil {
		return err
	}
	return in.insert(ctx, "person_events", personEventsColumns, len(p.person), []any{p.person, p.at, p.ms, p.name, p.id, p.site})
}
