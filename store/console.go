package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// ConsoleReader answers the console's reads of ClickHouse: recent
// rejections and truncations, completions per event, outcomes per rule and
// the snippet's pixel mirror reports. Each read is bounded (a LIMIT, or a
// time window on a partition key) so a page never scans the whole history.
type ConsoleReader struct {
	conn     Conn
	database string
}

// NewConsoleReader returns a ConsoleReader of database (already migrated).
func NewConsoleReader(conn Conn, database string) *ConsoleReader {
	return &ConsoleReader{conn: conn, database: database}
}

// Rejections returns the newest rejections, at most limit of them.
func (r *ConsoleReader) Rejections(ctx context.Context, limit int) ([]ingest.Rejection, error) {
	rows, err := r.conn.Query(ctx, fmt.Sprintf("SELECT rejected_at, site, source, event_name, reason, field, payload FROM %s ORDER BY rejected_at DESC LIMIT %d", r.table("rejections"), limit))
	if err != nil {
		return nil, fmt.Errorf("read rejections: %w", err)
	}
	defer rows.Close()
	var out []ingest.Rejection
	for rows.Next() {
		var x ingest.Rejection
		if err := rows.Scan(&x.At, &x.Site, (*string)(&x.Source), &x.EventName, &x.Reason, &x.Field, &x.Payload); err != nil {
			return nil, fmt.Errorf("read rejections: %w", err)
		}
		x.At = x.At.UTC()
		out = append(out, x)
	}
	return out, rows.Err()
}

// The console's reads of events are bounded by occurred_at, which the
// table is partitioned (by month) and sorted (after site and event name,
// by day) on, so ClickHouse reads the days asked for, not the history.

// truncationWindow: the truncated completions shown are those of the
// last day.
const truncationWindow = 24 * time.Hour

// Truncated returns the newest completions that happened in the last day
// and were stored with a value cut or a property dropped, at most limit of
// them. Each has its id, names, times, site, source and Truncated set.
func (r *ConsoleReader) Truncated(ctx context.Context, now time.Time, limit int) ([]ingest.Completion, error) {
	cols := []string{"event_id", "event_name", "site", "source", "received_at", "truncated"}
	out, err := NewReader(r.conn, r.database).query(ctx, fmt.Sprintf(`SELECT %s FROM %s
WHERE occurred_at >= toDateTime(%d) AND notEmpty(truncated) ORDER BY received_at DESC LIMIT %d`,
		strings.Join(cols, ", "), r.table("events"), now.Add(-truncationWindow).Unix(), limit), cols)
	if err != nil {
		return nil, fmt.Errorf("read truncated completions: %w", err)
	}
	return out, nil
}

// EventCount is how many completions of one event happened in the last
// hour and the last day.
type EventCount struct {
	Hour, Day uint64
}

// EventCounts counts the completions that happened in the day before now,
// by event name (an import of history adds to the days it happened on).
func (r *ConsoleReader) EventCounts(ctx context.Context, now time.Time) (map[string]EventCount, error) {
	rows, err := r.conn.Query(ctx, fmt.Sprintf(`SELECT event_name, countIf(occurred_at >= ?), count() FROM %s
WHERE occurred_at >= ? GROUP BY event_name`, r.table("events")), now.Add(-time.Hour).UTC(), now.Add(-24*time.Hour).UTC())
	if err != nil {
		return nil, fmt.Errorf("count events: %w", err)
	}
	defer rows.Close()
	out := map[string]EventCount{}
	for rows.Next() {
		var (
			name string
			c    EventCount
		)
		if err := rows.Scan(&name, &c.Hour, &c.Day); err != nil {
			return nil, fmt.Errorf("count events: %w", err)
		}
		out[name] = c
	}
	return out, rows.Err()
}

// OutcomeCounts counts, for each rule, the distinct events that reached
// each delivery status since the given time (an event retried and then
// sent counts under both).
func (r *ConsoleReader) OutcomeCounts(ctx context.Context, since time.Time) (map[string]map[string]uint64, error) {
	rows, err := r.conn.Query(ctx, fmt.Sprintf(`SELECT rule, status, uniqExact(event_id) FROM %s
WHERE updated_at >= ? GROUP BY rule, status`, r.table("deliveries")), since.UTC())
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]uint64{}
	for rows.Next() {
		var (
			rule, status string
			n            uint64
		)
		if err := rows.Scan(&rule, &status, &n); err != nil {
			return nil, fmt.Errorf("count deliveries: %w", err)
		}
		if out[rule] == nil {
			out[rule] = map[string]uint64{}
		}
		out[rule][status] = n
	}
	return out, rows.Err()
}

// Deliveries returns the newest outcomes of one rule, at most limit.
func (r *ConsoleReader) Deliveries(ctx context.Context, rule string, since time.Time, limit int) ([]Delivery, error) {
	return ReadDeliveries(ctx, r.conn, r.database, DeliveryQuery{Rule: rule, Since: since, Limit: limit})
}

// MirrorReport is what the snippet said its pixel mirror did with one
// completion (ingest.Completion.Mirror).
type MirrorReport struct {
	EventID    string
	Source     ingest.Source
	ReceivedAt time.Time
	Mirror     []string
}

// MaxMirrorReports bounds one read of mirror reports: a day of one rule's
// events on a busy site.
const MaxMirrorReports = 100_000

// MirrorReports returns the mirror reports of the completions of the named
// events that happened since the given time, the newest received first,
// at most MaxMirrorReports.
func (r *ConsoleReader) MirrorReports(ctx context.Context, events []string, since time.Time) ([]MirrorReport, error) {
	if len(events) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(events)+1)
	for _, e := range events {
		args = append(args, e)
	}
	args = append(args, since.UTC())
	rows, err := r.conn.Query(ctx, fmt.Sprintf(`SELECT event_id, source, received_at, mirror FROM %s
WHERE event_name IN (?%s) AND occurred_at >= ? ORDER BY received_at DESC LIMIT %d`, r.table("events"), strings.Repeat(", ?", len(events)-1), MaxMirrorReports), args...)
	if err != nil {
		return nil, fmt.Errorf("read mirror reports: %w", err)
	}
	defer rows.Close()
	var out []MirrorReport
	for rows.Next() {
		var m MirrorReport
		if err := rows.Scan(&m.EventID, (*string)(&m.Source), &m.ReceivedAt, &m.Mirror); err != nil {
			return nil, fmt.Errorf("read mirror reports: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (r *ConsoleReader) table(name string) string { return quoteIdent(r.database) + "." + name }
