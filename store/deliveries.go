package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// DeliveryQuery selects rows of the deliveries log; empty fields select
// everything. Rows come newest first.
type DeliveryQuery struct {
	Destination string
	Rule        string
	EventID     string
	Status      string
	Since       time.Time // updated_at at or after
	Limit       int       // default 100, at most 10,000
}

// ReadDeliveries returns the outcomes q selects, newest first. Rows written
// before trace_id existed read their fbtrace_id as TraceID.
func ReadDeliveries(ctx context.Context, conn Conn, database string, q DeliveryQuery) ([]Delivery, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 10_000)
	var (
		where []string
		args  []any
	)
	for _, f := range []struct{ col, v string }{{"destination", q.Destination}, {"rule", q.Rule}, {"event_id", q.EventID}, {"status", q.Status}} {
		if f.v != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	if !q.Since.IsZero() {
		where = append(where, "updated_at >= ?")
		args = append(args, q.Since.UTC())
	}
	sql := "SELECT event_id, event_name, rule, destination, forwarded_name, status, attempts, http_status, trace_id, error, created_at, updated_at, payload, response FROM " +
		quoteIdent(database) + ".deliveries"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += fmt.Sprintf(" ORDER BY updated_at DESC LIMIT %d", q.Limit)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var (
			d        Delivery
			attempts uint32
			status   uint16
		)
		if err := rows.Scan(&d.EventID, &d.SourceEvent, &d.Rule, &d.Destination, &d.ForwardedName, &d.Status, &attempts, &status,
			&d.TraceID, &d.Message, &d.QueuedAt, &d.At, &d.Payload, &d.Response); err != nil {
			return nil, fmt.Errorf("read deliveries: %w", err)
		}
		d.Attempts, d.HTTPStatus = int(attempts), int(status)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return out, nil
}
