package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// TestImportFilter: rows stored by an earlier run are known (a new
// process, so from ClickHouse alone); new rows are known the second time
// they are offered, until forgotten; live rows with the same ids are not
// taken for imported ones.
func TestImportFilter(t *testing.T) {
	conn, db := migrated(t)
	in := NewInserter(conn, db)
	ctx := context.Background()
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	row := func(i int, src ingest.Source) ingest.Completion {
		return ingest.Completion{EventID: fmt.Sprint("id-", i), EventName: "viewed_car", Source: src, OccurredAt: t0.Add(time.Duration(i) * time.Hour)}
	}
	writeCompletions(t, in, []ingest.Completion{row(0, ingest.SourceImport), row(1, ingest.SourceImport), row(2, ingest.SourceAPI)})

	f := NewImportFilter(conn, db, NewDeduper(DeduperConfig{MaxKeys: 100}))
	offer := []ingest.Completion{row(0, ingest.SourceImport), row(1, ingest.SourceImport), row(2, ingest.SourceImport), row(3, ingest.SourceImport)}
	known, err := f.Known(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(known) != "[true true false false]" {
		t.Errorf("Known = %v; want [true true false false]", known)
	}
	if known, _ := f.Known(ctx, offer[2:]); fmt.Sprint(known) != "[true true]" {
		t.Errorf("Known again = %v; want [true true]", known)
	}
	f.Forget(offer[3:])
	if known, _ := f.Known(ctx, offer[3:]); fmt.Sprint(known) != "[false]" {
		t.Errorf("Known after Forget = %v; want [false]", known)
	}
}
