package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// Reader answers the events API's reads (ingest.EventReader).
//
// A read by person (email or object id) is two queries, each on an order
// key: first the person's keys in person_events — the email or object id
// itself and v:<visitor> for every visitor identities links to it — sorted
// and paged there; then the page's full rows from events by (site,
// event_name, occurred_at range, event_id), which is the events order key.
// A read without a person scans events by its key as far as the filters
// allow (event name, occurred time), in one query.
type Reader struct {
	conn Conn
	db   string
}

// NewReader returns a Reader of database (already migrated).
func NewReader(conn Conn, database string) *Reader {
	return &Reader{conn: conn, db: quoteIdent(database)}
}

// ReadEvents implements ingest.EventReader.
func (r *Reader) ReadEvents(ctx context.Context, q ingest.EventQuery) ([]ingest.Completion, error) {
	if q.EventNames != nil && len(q.EventNames) == 0 {
		return nil, nil // no event is allowed
	}
	if q.Email == "" && q.ObjectID == "" {
		return r.scan(ctx, r.db+".events", "", q, eventColumns)
	}
	// Every person filter must hold: the first one's keys drive the read,
	// the others are subqueries on person_events.
	var sets [][]string
	for _, p := range []struct{ kind, v, key string }{
		{"email", q.Email, emailKey(q.Email)}, {"external_id", q.ObjectID, objectKey(q.ObjectID)},
	} {
		if p.v == "" {
			continue
		}
		visitors, err := r.visitors(ctx, p.kind, p.v)
		if err != nil {
			return nil, err
		}
		keys := []string{p.key}
		for _, v := range visitors {
			keys = append(keys, visitorKey(v))
		}
		sets = append(sets, keys)
	}
	extra := ""
	for _, set := range sets[1:] {
		extra += " AND (event_name, event_id) IN (SELECT event_name, event_id FROM " + r.db + ".person_events WHERE person IN (" + quoteList(set) + "))"
	}
	keyCols := []string{"site", "event_name", "event_id", "occurred_at", "occurred_at_ms"}
	page, err := r.scan(ctx, r.db+".person_events", "person IN ("+quoteList(sets[0])+")"+extra, q, keyCols)
	if err != nil || len(page) == 0 {
		return page, err
	}
	return r.rows(ctx, page)
}

// visitors returns the visitor ids linked to an identifier.
func (r *Reader) visitors(ctx context.Context, kind, value string) ([]string, error) {
	rows, err := r.conn.Query(ctx, "SELECT DISTINCT visitor_id FROM "+r.db+".identities WHERE kind = "+quoteString(kind)+" AND value = "+quoteString(value)+" LIMIT "+strconv.Itoa(maxLinkedVisitors))
	if err != nil {
		return nil, fmt.Errorf("read identities: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read identities: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// maxLinkedVisitors bounds the visitor ids one person's read follows: a
// person uses a handful of browsers; an address typed into thousands (a
// test address, a shared kiosk) must not make a query too large to send.
const maxLinkedVisitors = 1000

// scan runs one sorted, paged read of table (events or person_events)
// with the query's filters, and returns cols of each row as completions.
func (r *Reader) scan(ctx context.Context, table, where string, q ingest.EventQuery, cols []string) ([]ingest.Completion, error) {
	var conds []string
	if where != "" {
		conds = append(conds, where)
	}
	if len(q.EventNames) > 0 {
		conds = append(conds, "event_name IN ("+quoteList(q.EventNames)+")")
	}
	if len(q.IDs) > 0 {
		conds = append(conds, "event_id IN ("+quoteList(q.IDs)+")")
	}
	// Bounds on occurred time: the plain comparison on occurred_at prunes
	// partitions and granules; the tuple makes it exact to the millisecond.
	if !q.After.IsZero() {
		conds = append(conds, fmt.Sprintf("occurred_at >= toDateTime(%d) AND (occurred_at, occurred_at_ms) > (toDateTime(%d), %d)", q.After.Unix(), q.After.Unix(), millis(q.After)))
	}
	if !q.Before.IsZero() {
		conds = append(conds, fmt.Sprintf("occurred_at <= toDateTime(%d) AND (occurred_at, occurred_at_ms) < (toDateTime(%d), %d)", q.Before.Unix(), q.Before.Unix(), millis(q.Before)))
	}
	dir, cmp, bound := "ASC", ">", ">="
	if q.Descending {
		dir, cmp, bound = "DESC", "<", "<="
	}
	if c := q.Cursor; c != nil {
		conds = append(conds, fmt.Sprintf("occurred_at %s toDateTime(%d) AND (occurred_at, occurred_at_ms, event_name, event_id) %s (toDateTime(%d), %d, %s, %s)",
			bound, c.OccurredAt.Unix(), cmp, c.OccurredAt.Unix(), millis(c.OccurredAt), quoteString(c.EventName), quoteString(c.EventID)))
	}
	if len(q.Properties) > 0 {
		var pc []string
		for _, p := range q.Properties {
			pc = append(pc, "prop_values[indexOf(prop_keys, "+quoteString(p.Name)+")] = "+quoteString(p.Value))
		}
		filter := strings.Join(pc, " AND ")
		if table == r.db+".events" {
			conds = append(conds, filter)
		} else {
			conds = append(conds, "(event_name, event_id) IN (SELECT event_name, event_id FROM "+r.db+".events WHERE "+filter+")")
		}
	}
	query := "SELECT " + strings.Join(cols, ", ") + " FROM " + table
	if len(conds) > 0 {
		query += "\nWHERE " + strings.Join(conds, "\n  AND ")
	}
	// One row per event: the engines collapse repeats only when they merge,
	// and a person's keys (email and visitor) both index the same event.
	query += fmt.Sprintf("\nORDER BY occurred_at %[1]s, occurred_at_ms %[1]s, event_name %[1]s, event_id %[1]s\nLIMIT 1 BY event_name, event_id\nLIMIT %[2]d", dir, max(q.Limit, 1))
	return r.query(ctx, query, cols)
}

// rows reads the full events rows of page (completions holding only their
// key columns) and returns them in page's order.
func (r *Reader) rows(ctx context.Context, page []ingest.Completion) ([]ingest.Completion, error) {
	// The page's rows by the events order key itself, one tuple each, so
	// ClickHouse reads the granules of those keys only, however far apart
	// in time they are.
	var tuples strings.Builder
	lo, hi := page[0].OccurredAt, page[0].OccurredAt
	for i := range page {
		c := &page[i]
		if i > 0 {
			tuples.WriteString(", ")
		}
		fmt.Fprintf(&tuples, "(%s, %s, toDate(toDateTime(%d, 'UTC')), %s)", quoteString(c.Site), quoteString(c.EventName), c.OccurredAt.Unix(), quoteString(c.EventID))
		lo, hi = minTime(lo, c.OccurredAt), maxTime(hi, c.OccurredAt)
	}
	query := fmt.Sprintf("SELECT %s FROM %s.events\nPREWHERE (site, event_name, toDate(occurred_at), event_id) IN (%s)\nWHERE occurred_at >= toDateTime(%d) AND occurred_at <= toDateTime(%d)\nLIMIT 1 BY event_name, event_id",
		strings.Join(eventColumns, ", "), r.db, tuples.String(), lo.Unix(), hi.Unix())
	full, err := r.query(ctx, query, eventColumns)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]*ingest.Completion, len(full))
	for i := range full {
		byKey[eventKey(full[i].EventName, full[i].EventID)] = &full[i]
	}
	out := make([]ingest.Completion, 0, len(page))
	for i := range page {
		// A key row whose event row is not there yet (the events INSERT
		// follows the index's) is left out of this page.
		if c, ok := byKey[eventKey(page[i].EventName, page[i].EventID)]; ok {
			out = append(out, *c)
		}
	}
	return out, nil
}

// query runs a SELECT of events or person_events columns and scans each
// row into a completion, through the same column table the writer uses.
func (r *Reader) query(ctx context.Context, query string, cols []string) ([]ingest.Completion, error) {
	rows, err := r.conn.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	colsOf := make([]*column, len(cols))
	for i, name := range cols {
		colsOf[i] = columnNamed(name)
	}
	var out []ingest.Completion
	for rows.Next() {
		c, err := scanCompletion(rows, colsOf)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// columnNamed is the events column called name.
func columnNamed(name string) *column {
	for i := range eventTable {
		if eventTable[i].name == name {
			return &eventTable[i]
		}
	}
	panic("store: no events column " + name)
}

func quoteList(vs []string) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteString(v))
	}
	return b.String()
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func millis(t time.Time) int { return t.Nanosecond() / int(time.Millisecond) }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
