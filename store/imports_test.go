package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
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

	f := NewImportFilter(conn, db)
	offer := []ingest.Completion{row(0, ingest.SourceImport), row(1, ingest.SourceImport), row(2, ingest.SourceImport), row(3, ingest.SourceImport)}
	file := sha256.Sum256([]byte("history.csv"))
	nums := func(rows ...int) ingest.ImportRows { return ingest.ImportRows{File: file, Rows: rows} }
	known, err := f.Known(ctx, nums(0, 1, 2, 3), offer, true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(known) != "[true true false false]" {
		t.Errorf("Known = %v; want [true true false false]", known)
	}
	if known, _ := f.Known(ctx, nums(2, 3), offer[2:], true); fmt.Sprint(known) != "[true true]" {
		t.Errorf("Known again = %v; want [true true]", known)
	}
	f.Forget(nums(3), offer[3:])
	if known, _ := f.Known(ctx, nums(3), offer[3:], true); fmt.Sprint(known) != "[false]" {
		t.Errorf("Known after Forget = %v; want [false]", known)
	}
	// The same rows of another event, or of another file, are new.
	other := offer[2]
	other.EventName = "viewed_van"
	if known, _ := f.Known(ctx, nums(2), []ingest.Completion{other}, false); fmt.Sprint(known) != "[false]" {
		t.Errorf("Known of row 2 for another event = %v; want [false]", known)
	}
	if known, _ := f.Known(ctx, ingest.ImportRows{File: sha256.Sum256([]byte("other.csv")), Rows: []int{2}}, offer[2:3], false); fmt.Sprint(known) != "[false]" {
		t.Errorf("Known of row 2 of another file = %v; want [false]", known)
	}
}

// TestImportFilterBegin: a file's first run, and the parts of that run, do
// not look among stored rows; a later run of the same file does, in a new
// process too, and so does the first run once a second has begun.
func TestImportFilterBegin(t *testing.T) {
	conn, db := migrated(t)
	ctx := context.Background()
	file, other := sha256.Sum256([]byte("history.csv")), sha256.Sum256([]byte("other.csv"))
	begin := func(f *ImportFilter, file [32]byte, run string, want bool) {
		t.Helper()
		again, err := f.Begin(ctx, file, run)
		if err != nil {
			t.Fatal(err)
		}
		if again != want {
			t.Errorf("Begin(%x…, %s) = %v; want %v", file[:4], run, again, want)
		}
	}
	f := NewImportFilter(conn, db)
	begin(f, file, "run-1", false)
	begin(f, file, "run-1", false) // its next part
	begin(f, other, "run-1", false)
	// A new process: its memory is empty, the table is not.
	g := NewImportFilter(conn, db)
	begin(g, file, "run-2", true)
	begin(g, other, "run-1", false)
	begin(f, file, "run-1", true) // run-1's next part, now that run-2 began

	// Without looking among stored rows, a stored row is new to a process
	// that has not accepted it.
	in := NewInserter(conn, db)
	c := ingest.Completion{EventID: "stored-1", EventName: "viewed_car", Source: ingest.SourceImport, OccurredAt: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	writeCompletions(t, in, []ingest.Completion{c})
	if known, _ := g.Known(ctx, ingest.ImportRows{File: file, Rows: []int{1}}, []ingest.Completion{c}, false); fmt.Sprint(known) != "[false]" {
		t.Errorf("Known(stored=false) of a stored row = %v; want [false]", known)
	}
	if known, _ := NewImportFilter(conn, db).Known(ctx, ingest.ImportRows{File: file, Rows: []int{1}}, []ingest.Completion{c}, true); fmt.Sprint(known) != "[true]" {
		t.Errorf("Known(stored=true) of a stored row = %v; want [true]", known)
	}
	if n := countRows(t, conn, "SELECT count() FROM `"+db+"`.import_files FINAL"); n != 3 {
		t.Errorf("import_files holds %d runs; want 3 (file run-1, other run-1, file run-2)", n)
	}
}

// A rowSet holds what a set of ints holds through any adds and removes,
// in ranges that stay sorted, disjoint and apart.
func TestRowSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s rowSet
	want := map[int]bool{}
	for op := range 20_000 {
		r := rng.IntN(300)
		if op%5 == 4 {
			s.remove(r)
			delete(want, r)
		} else {
			if got := s.add(r); got == want[r] {
				t.Fatalf("op %d: add(%d) = %v with %d in the set: %v", op, r, got, r, want[r])
			}
			want[r] = true
		}
		for i, g := range s.ranges {
			if g.lo >= g.hi || i > 0 && s.ranges[i-1].hi >= g.lo {
				t.Fatalf("op %d: ranges %v not sorted, disjoint and apart", op, s.ranges)
			}
		}
	}
	n := 0
	for _, g := range s.ranges {
		for r := g.lo; r < g.hi; r++ {
			if !want[r] {
				t.Fatalf("%d in the set, not added", r)
			}
			n++
		}
	}
	if n != len(want) {
		t.Errorf("set holds %d rows; want %d", n, len(want))
	}
	// Rows added in order make one range.
	var inOrder rowSet
	for r := range 1_000_000 {
		inOrder.add(r)
	}
	if len(inOrder.ranges) != 1 {
		t.Errorf("a million rows in order make %d ranges; want 1", len(inOrder.ranges))
	}
}
