package store

import (
	"fmt"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// column is one column of the events table: its name, ClickHouse type and
// comment (the DDL), the field of a completion it holds (the INSERT
// encoder, EventBatch), and its tag in the durable log's record format
// (record.go). The schema, the encoder and the log format all derive from
// eventTable, so a new column is one new entry there (plus, for a column
// added after the first release, the migration version that adds it).
type column struct {
	name    string
	typ     string
	comment string
	kind    columnKind
	// tag identifies the value in a log record; 0 for columns derived from
	// another one (occurred_at_ms, prop_values). Tags are never reused.
	tag uint64
	// since is the migration version that created the column: 1 for the
	// columns of the first schema; later ones are added by ALTER TABLE in
	// that migration.
	since uint32

	str  func(*ingest.Completion) *string    // kindString
	tm   func(*ingest.Completion) *time.Time // kindTime, kindMillis
	flag func(*ingest.Completion) *bool      // kindBool
	list func(*ingest.Completion) *[]string  // kindStrings
}

type columnKind uint8

const (
	kindString   columnKind = iota // String
	kindTime                       // DateTime('UTC'): whole seconds, clamped to DateTime's range
	kindMillis                     // UInt16: the milliseconds of a kindTime field
	kindBool                       // UInt8
	kindStrings                    // Array(String)
	kindPropKeys                   // Array(String): the names of Props
	kindPropVals                   // Array(String): the values of Props
)

// eventTable is the events table, in column order.
var eventTable = []column{
	{name: "event_id", typ: "String", comment: "browser-minted UUID, the API uuid, or an id derived from an import row; unique per event_name",
		tag: 1, str: func(c *ingest.Completion) *string { return &c.EventID }},
	{name: "site", typ: "String", comment: "site id from tally.yaml", tag: 2, str: func(c *ingest.Completion) *string { return &c.Site }},
	{name: "event_name", typ: "String", comment: "internal event name", tag: 3, str: func(c *ingest.Completion) *string { return &c.EventName }},
	{name: "occurred_at", typ: "DateTime('UTC')", comment: "when the event happened, whole seconds", kind: kindTime,
		tag: 4, tm: func(c *ingest.Completion) *time.Time { return &c.OccurredAt }},
	{name: "occurred_at_ms", typ: "UInt16", comment: "milliseconds of occurred_at (0-999)", kind: kindMillis,
		tm: func(c *ingest.Completion) *time.Time { return &c.OccurredAt }},
	{name: "received_at", typ: "DateTime('UTC')", comment: "when tally accepted it", kind: kindTime,
		tag: 5, tm: func(c *ingest.Completion) *time.Time { return &c.ReceivedAt }},
	{name: "source", typ: "String", comment: "browser | api | import", tag: 6, str: func(c *ingest.Completion) *string { return (*string)(&c.Source) }},
	{name: "visitor_id", typ: "String", comment: "first-party cookie id (browser) or utk (API)", tag: 7, str: func(c *ingest.Completion) *string { return &c.VisitorID }},
	{name: "session_id", typ: "String", tag: 8, str: func(c *ingest.Completion) *string { return &c.SessionID }},
	{name: "email", typ: "String", tag: 9, str: func(c *ingest.Completion) *string { return &c.Identity.Email }},
	{name: "object_id", typ: "String", tag: 10, str: func(c *ingest.Completion) *string { return &c.ObjectID }},
	{name: "url", typ: "String", tag: 11, str: func(c *ingest.Completion) *string { return &c.Page.URL }},
	{name: "path", typ: "String", tag: 12, str: func(c *ingest.Completion) *string { return &c.Enrichment.Path }},
	{name: "referrer", typ: "String", tag: 13, str: func(c *ingest.Completion) *string { return &c.Page.Referrer }},
	{name: "page_title", typ: "String", tag: 14, str: func(c *ingest.Completion) *string { return &c.Page.Title }},
	{name: "utm_source", typ: "String", tag: 15, str: func(c *ingest.Completion) *string { return &c.Enrichment.UTMSource }},
	{name: "utm_medium", typ: "String", tag: 16, str: func(c *ingest.Completion) *string { return &c.Enrichment.UTMMedium }},
	{name: "utm_campaign", typ: "String", tag: 17, str: func(c *ingest.Completion) *string { return &c.Enrichment.UTMCampaign }},
	{name: "utm_term", typ: "String", tag: 18, str: func(c *ingest.Completion) *string { return &c.Enrichment.UTMTerm }},
	{name: "utm_content", typ: "String", tag: 19, str: func(c *ingest.Completion) *string { return &c.Enrichment.UTMContent }},
	{name: "touchpoint_source", typ: "String", comment: "DIRECT_TRAFFIC, ORGANIC_SEARCH, PAID_SEARCH, SOCIAL_MEDIA, PAID_SOCIAL, EMAIL_MARKETING, REFERRALS, OTHER_CAMPAIGNS",
		tag: 20, str: func(c *ingest.Completion) *string { return &c.Enrichment.TouchpointSource }},
	{name: "click_id_param", typ: "String", comment: "which click id the landing URL carried (gclid, fbclid, ...)",
		tag: 21, str: func(c *ingest.Completion) *string { return &c.Enrichment.ClickIDParam }},
	{name: "click_id", typ: "String", tag: 22, str: func(c *ingest.Completion) *string { return &c.Enrichment.ClickID }},
	// The log keeps the full IP (a pending forward may share it); the row
	// gets what the writer's StorageIP makes of it.
	{name: "ip", typ: "String", comment: "client IP, anonymised when privacy.anonymize_ip is on", tag: 23, str: func(c *ingest.Completion) *string { return &c.Client.IP }},
	{name: "user_agent", typ: "String", tag: 24, str: func(c *ingest.Completion) *string { return &c.Client.UserAgent }},
	{name: "language", typ: "String", tag: 25, str: func(c *ingest.Completion) *string { return &c.Client.Language }},
	{name: "browser", typ: "String", tag: 26, str: func(c *ingest.Completion) *string { return &c.Enrichment.Browser }},
	{name: "browser_version", typ: "String", tag: 27, str: func(c *ingest.Completion) *string { return &c.Enrichment.BrowserVersion }},
	{name: "os", typ: "String", tag: 28, str: func(c *ingest.Completion) *string { return &c.Enrichment.OS }},
	{name: "os_version", typ: "String", tag: 29, str: func(c *ingest.Completion) *string { return &c.Enrichment.OSVersion }},
	{name: "device_type", typ: "String", comment: "Desktop, Smartphone, Tablet, Smart TV, Game Console, Wearable Computer, Unknown",
		tag: 30, str: func(c *ingest.Completion) *string { return &c.Enrichment.DeviceType }},
	{name: "is_bot", typ: "UInt8", kind: kindBool, tag: 31, flag: func(c *ingest.Completion) *bool { return &c.Enrichment.IsBot }},
	{name: "country", typ: "String", comment: "ISO 3166-1 alpha-2", tag: 32, str: func(c *ingest.Completion) *string { return &c.Enrichment.Country }},
	{name: "region", typ: "String", tag: 33, str: func(c *ingest.Completion) *string { return &c.Enrichment.Region }},
	{name: "city", typ: "String", tag: 34, str: func(c *ingest.Completion) *string { return &c.Enrichment.City }},
	{name: "prop_keys", typ: "Array(String)", comment: "custom property names, sorted; typed in the event_<name> views", kind: kindPropKeys, tag: 35},
	{name: "prop_values", typ: "Array(String)", comment: "values of prop_keys, normalised by type", kind: kindPropVals},
	{name: "truncated", typ: "Array(String)", comment: "what the snippet path cut or dropped, as name: reason", kind: kindStrings,
		tag: 36, list: func(c *ingest.Completion) *[]string { return &c.Truncated }},
	{name: "debug", typ: "UInt8", comment: "1 for a browser in debug mode (?tally_debug=1)", kind: kindBool, since: 7,
		tag: 37, flag: func(c *ingest.Completion) *bool { return &c.Debug }},
	{name: "mirror", typ: "Array(String)", comment: "the snippet's pixel mirror report, as rule=sent|queued|no_pixel|duplicate, or *=no_consent|gpc", kind: kindStrings, since: 7,
		tag: 38, list: func(c *ingest.Completion) *[]string { return &c.Mirror }},
}

// eventColumns are the names of eventTable, in order.
var eventColumns = func() []string {
	names := make([]string, len(eventTable))
	for i, c := range eventTable {
		names[i] = c.name
	}
	return names
}()

// columnsDDL renders the column list of a CREATE TABLE for the columns
// created by migration version since.
func columnsDDL(since uint32) string {
	var b strings.Builder
	first := true
	for _, c := range eventTable {
		if max(c.since, 1) != since {
			continue
		}
		if !first {
			b.WriteString(",\n")
		}
		first = false
		fmt.Fprintf(&b, "    %-17s %s", c.name, c.typ)
		if c.comment != "" {
			b.WriteString(" COMMENT " + quoteString(c.comment))
		}
	}
	return b.String()
}

// scanCompletion reads the current row of rows, a SELECT of cols (events
// columns, in order), back into the completion it was written from, through
// the same table the encoder uses.
func scanCompletion(rows driver.Rows, cols []*column) (ingest.Completion, error) {
	var (
		c          ingest.Completion
		ms         uint16
		keys, vals []string
	)
	dest := make([]any, len(cols))
	flags := make([]uint8, len(cols))
	for i, col := range cols {
		switch col.kind {
		case kindString:
			dest[i] = col.str(&c)
		case kindTime:
			dest[i] = col.tm(&c)
		case kindMillis:
			dest[i] = &ms
		case kindBool:
			dest[i] = &flags[i]
		case kindStrings:
			dest[i] = col.list(&c)
		case kindPropKeys:
			dest[i] = &keys
		case kindPropVals:
			dest[i] = &vals
		}
	}
	if err := rows.Scan(dest...); err != nil {
		return c, err
	}
	c.OccurredAt = c.OccurredAt.UTC().Add(time.Duration(ms) * time.Millisecond)
	c.ReceivedAt = c.ReceivedAt.UTC()
	for i, col := range cols {
		if col.kind == kindBool {
			*col.flag(&c) = flags[i] == 1
		}
	}
	for i := range keys {
		if i < len(vals) {
			c.Props = append(c.Props, ingest.Prop{Name: keys[i], Value: vals[i]})
		}
	}
	return c, nil
}
