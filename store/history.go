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
	cs := make([]ingest.Completion, 0, batch)
	for rows.Next() {
		var c ingest.Completion
		var ms uint16
		var bot uint8
		var keys, values []string
		dest := make([]any, len(eventTable))
		for i := range eventTable {
			col := &eventTable[i]
			switch col.kind {
			case kindString:
				dest[i] = col.str(&c)
			case kindTime:
				dest[i] = col.tm(&c)
			case kindMillis:
				dest[i] = &ms
			case kindBool:
				dest[i] = &bot
			case kindPropKeys:
				dest[i] = &keys
			case kindPropVals:
				dest[i] = &values
			case kindStrings:
				dest[i] = col.list(&c)
			}
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		c.OccurredAt = c.OccurredAt.UTC().Add(time.Duration(ms) * time.Millisecond)
		c.ReceivedAt = c.ReceivedAt.UTC()
		c.Enrichment.IsBot = bot != 0
		for i := range keys {
			if i < len(values) {
				c.Props = append(c.Props, ingest.Prop{Name: keys[i], Value: values[i]})
			}
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
