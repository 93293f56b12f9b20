package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// MirrorReports reads the named events' completions since a time, the
// newest received first, so a read cut at its bound keeps the newest.
func TestMirrorReportsNewestFirst(t *testing.T) {
	conn, db := migrated(t)
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var cs []ingest.Completion
	for i, name := range []string{"form_submitted", "form_submitted", "viewed_car", "form_submitted"} {
		cs = append(cs, ingest.Completion{EventID: fmt.Sprint("id-", i), EventName: name, Site: "s", Source: ingest.SourceBrowser,
			OccurredAt: at, ReceivedAt: at.Add(time.Duration([]int{2, 3, 9, 1}[i]) * time.Minute), Mirror: []string{"leads=sent"}})
	}
	cs = append(cs, ingest.Completion{EventID: "id-old", EventName: "form_submitted", Site: "s", Source: ingest.SourceAPI,
		OccurredAt: at.Add(-48 * time.Hour), ReceivedAt: at.Add(time.Hour)})
	if err := NewInserter(conn, db).InsertCompletions(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	got, err := NewConsoleReader(conn, db).MirrorReports(context.Background(), []string{"form_submitted"}, at.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.EventID)
	}
	if want := []string{"id-1", "id-0", "id-3"}; !slices.Equal(ids, want) {
		t.Errorf("reports %v; want %v (newest received first, none of another event or before the time)", ids, want)
	}
	if len(got) > 0 && !slices.Equal(got[0].Mirror, []string{"leads=sent"}) {
		t.Errorf("mirror %q; want [leads=sent]", got[0].Mirror)
	}
}
