package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// Retention drops the months wholly past the limit and deletes the older
// rows of the month the limit falls in, on ClickHouse 18.16 (no TTL).
func TestRetentionRemovesOldRows(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	at := map[string]time.Time{
		"old":      now.AddDate(0, 0, -400), // months before the limit: partition dropped
		"boundary": now.AddDate(0, 0, -95),  // the limit's month, before the limit: deleted
		"kept":     now.AddDate(0, 0, -85),  // after the limit: kept
		"new":      now,
	}
	var cs []ingest.Completion
	for id, t := range at {
		cs = append(cs, ingest.Completion{EventID: id, EventName: "e", Site: "s", OccurredAt: t, ReceivedAt: t})
	}
	var b EventBatch
	b.Encode(cs)
	if err := NewInserter(conn, db).InsertEvents(ctx, &b); err != nil {
		t.Fatal(err)
	}
	// The limit (90 days before 2026-11-28: 2026-08-30) falls in August;
	// "boundary" (2026-08-25) is in it, "kept" (2026-09-04) after it.
	r := NewRetention(RetentionConfig{Events: 90}, conn, db, "", nil)
	res, err := r.Apply(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 || res[0].Table != "events" || !slices.Equal(res[0].Partitions, []string{"202510"}) || res[0].Deleted != 1 {
		t.Errorf("Apply = %+v; want events: partition 202510 dropped, 1 row deleted", res)
	}
	er := NewEraser(conn, db, "")
	if err := er.waitMutations(ctx); err != nil {
		t.Fatal(err)
	}
	got := queryStrings(t, conn, "SELECT event_id FROM "+db+".events ORDER BY event_id")
	if want := []string{"kept", "new"}; !slices.Equal(got, want) {
		t.Errorf("events after retention = %v; want %v", got, want)
	}
	// A second run has nothing left to remove.
	res, err = r.Apply(ctx, now)
	if err != nil || len(res[0].Partitions) != 0 || res[0].Deleted != 0 {
		t.Errorf("second Apply = %+v, %v; want nothing removed", res, err)
	}
}

func TestRetentionTTLOnlyWhereTheServerHasIt(t *testing.T) {
	r := NewRetention(RetentionConfig{Events: 395, Rejections: 30}, nil, "tally", "", nil)
	if got := r.TTLStatements("18.16.1"); got != nil {
		t.Errorf("TTL on 18.16 = %q; want none", got)
	}
	want := []string{
		"ALTER TABLE `tally`.events MODIFY TTL occurred_at + INTERVAL 395 DAY",
		"ALTER TABLE `tally`.person_events MODIFY TTL occurred_at + INTERVAL 395 DAY",
		"ALTER TABLE `tally`.rejections MODIFY TTL rejected_at + INTERVAL 30 DAY",
	}
	if got := r.TTLStatements("25.8.2.29"); !slices.Equal(got, want) {
		t.Errorf("TTL on 25.8 = %q; want %q", got, want)
	}
	c := NewRetention(RetentionConfig{Deliveries: 90}, nil, "tally", "c", nil)
	if got := c.TTLStatements("19.6.1"); !slices.Equal(got, []string{"ALTER TABLE `tally`.deliveries_local ON CLUSTER `c` MODIFY TTL updated_at + INTERVAL 90 DAY"}) {
		t.Errorf("cluster TTL = %q", got)
	}
}
