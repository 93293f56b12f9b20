package store

import (
	"context"
	"fmt"

	"github.com/tally-analytics/tally/ingest"
)

// ImportFilter is ingest's ImportFilter: an imported row is known when the
// events table has its event id, or when this process accepted it before
// (it may still be in the durable log, not yet in ClickHouse). It has its
// own Deduper, so an import never evicts live traffic's event ids from the
// collector's.
type ImportFilter struct {
	conn Conn
	db   string
	seen *Deduper
}

// NewImportFilter returns a filter over database's events, remembering
// what it accepted in seen.
func NewImportFilter(conn Conn, database string, seen *Deduper) *ImportFilter {
	return &ImportFilter{conn: conn, db: quoteIdent(database), seen: seen}
}

// Known implements ingest.ImportFilter. The events lookup names the rows'
// sites, event names and occurred range with their ids, so it reads the
// granules of that key range only.
func (f *ImportFilter) Known(ctx context.Context, cs []ingest.Completion) ([]bool, error) {
	out := make([]bool, len(cs))
	if len(cs) == 0 {
		return out, nil
	}
	sites, names := map[string]bool{}, map[string]bool{}
	lo, hi := cs[0].OccurredAt, cs[0].OccurredAt
	for i := range cs {
		sites[cs[i].Site], names[cs[i].EventName] = true, true
		lo, hi = minTime(lo, cs[i].OccurredAt), maxTime(hi, cs[i].OccurredAt)
	}
	// The ids are not sent: a list of thousands of literals costs
	// ClickHouse 18.16 more to parse than reading the ids of the rows
	// imported in that stretch of time (an import's rows are usually in
	// time order, so the stretch is short, and before the first import of
	// a file it holds none of its rows).
	q := fmt.Sprintf("SELECT event_name, event_id FROM %s.events WHERE site IN (%s) AND event_name IN (%s) AND occurred_at >= toDateTime(%d) AND occurred_at <= toDateTime(%d) AND source = 'import'",
		f.db, quoteList(keys(sites)), quoteList(keys(names)), clampTime(lo).Unix(), clampTime(hi).Unix())
	rows, err := f.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("look up %d imported event ids: %w", len(cs), err)
	}
	defer rows.Close()
	have := map[string]bool{}
	var name, id string
	for rows.Next() {
		if err := rows.Scan(&name, &id); err != nil {
			return nil, fmt.Errorf("look up imported event ids: %w", err)
		}
		have[eventKey(name, id)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up imported event ids: %w", err)
	}
	for i := range cs {
		out[i] = have[eventKey(cs[i].EventName, cs[i].EventID)] || !f.seen.FirstSeen(cs[i].EventName, cs[i].EventID)
	}
	return out, nil
}

// Forget implements ingest.ImportFilter.
func (f *ImportFilter) Forget(cs []ingest.Completion) {
	for i := range cs {
		f.seen.Forget(cs[i].EventName, cs[i].EventID)
	}
}
