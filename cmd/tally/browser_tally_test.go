package main

import (
	"context"
	"testing"

	"github.com/tally-analytics/tally/store/chtest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// startBrowserTally runs the whole of tally for yamlText (collector, spool,
// enrichment, ClickHouse writer, rules, demo page) against a fresh database
// on the test ClickHouse server, and reads back what it stored.
func startBrowserTally(t *testing.T, yamlText string) *tallyUnderTest {
	t.Helper()
	return startBrowserTallyWith(t, yamlText, serverOptions{})
}

// startBrowserTallyWith is startBrowserTally with the server's options.
func startBrowserTallyWith(t *testing.T, yamlText string, opt serverOptions) *tallyUnderTest {
	t.Helper()
	ts := startTestServer(t, yamlText, opt)
	query := "SELECT event_id, event_name, url, visitor_id, session_id, email, " +
		"toUInt64(toUnixTimestamp(occurred_at)) * 1000 + occurred_at_ms, prop_keys, prop_values, truncated, is_bot, source " +
		"FROM `" + ts.db + "`.events"
	rejections := "SELECT reason, field, event_name, payload FROM `" + ts.db + "`.rejections WHERE site = 'web' AND source = 'browser'"
	readRejections := func(t *testing.T) [][4]string {
		t.Helper()
		rows, err := ts.conn.Query(context.Background(), rejections)
		if err != nil {
			t.Fatalf("read rejections: %v", err)
		}
		defer rows.Close()
		var out [][4]string
		for rows.Next() {
			var r [4]string
			if err := rows.Scan(&r[0], &r[1], &r[2], &r[3]); err != nil {
				t.Fatalf("scan rejections: %v", err)
			}
			out = append(out, r)
		}
		return out
	}
	return &tallyUnderTest{ts: ts, url: ts.url, rejections: readRejections, read: func(t *testing.T) []eventRow {
		t.Helper()
		rows, err := ts.conn.Query(context.Background(), query)
		if err != nil {
			t.Fatalf("read events: %v", err)
		}
		defer rows.Close()
		var out []eventRow
		for rows.Next() {
			var r eventRow
			var ms uint64
			var keys, values []string
			var bot uint8
			if err := rows.Scan(&r.EventID, &r.EventName, &r.URL, &r.VisitorID, &r.SessionID, &r.Email, &ms, &keys, &values, &r.Truncated, &bot, &r.Source); err != nil {
				t.Fatalf("scan events: %v", err)
			}
			r.OccurredMs, r.IsBot = int64(ms), bot == 1
			r.Props = make(map[string]string, len(keys))
			for i := range keys {
				if i < len(values) {
					r.Props[keys[i]] = values[i]
				}
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read events: %v", err)
		}
		return out
	}}
}
