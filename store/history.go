package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// History reads stored completions back as ingest.Completions, for a
// deliberate replay of a rule. Every events column is read through the
// eventTable, so a row comes back as the completion it was written from,
// less what the table does not keep: the user data beyond email (phone,
// names, external id, fbp, fbc), the full client IP (the row has the
// anonymised one) and consent. Consent is taken as given for API and
// import completions (their callers answer for it, as on the way in) and
// as refused for browser completions, whose ads consent the row does not
// keep: a replay never forwards a browser completion.
func History(ctx context.Context, conn Conn, database string, events []string, since time.Time, batch int, fn func([]ingest.Completion) error) error {
	if len(events) == 0 {
		return nil
	}
	q := "SELECT " + joinColumns() + " FROM " + quoteIdent(database) + ".events FINAL WHERE event_name IN (" + quoteList(events) +
		") AND occurred_at >= toDateTime(" + strconv.FormatInt(since.Unix(), 10) + ") ORDER BY occurred_at"
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	cols := make([]*column, len(eventTable))
	for i := range eventTable {
		cols[i] = &eventTable[i]
	}
	cs := make([]ingest.Completion, 0, batch)
	for rows.Next() {
		c, err := scanCompletion(rows, cols)
		if err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		trusted := c.Source != ingest.SourceBrowser
		c.Consent = ingest.Consent{Analytics: trusted, Ads: trusted}
		cs = append(cs, c)
		if len(cs) == batch {
			if err := fn(cs); err != nil {
				return err
			}
			cs = cs[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read history: %w", err)
	}
	if len(cs) > 0 {
		return fn(cs)
	}
	return nil
}

func joinColumns() string {
	s := ""
	for i, c := range eventColumns {
		if i > 0 {
			s += ", "
		}
		s += c
	}
	return s
}
