package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

// Blocks hands every completion of every record once, in log order, in
// blocks of at most n, whichever record boundaries they cross; two passes
// at once hand the same.
func TestRecordsBlocks(t *testing.T) {
	var recs Records
	var want []string
	next := 0
	for i, size := range []int{1, 500, 3, 1999, 2000, 7} {
		cs := manyCompletions(next, size)
		next += size
		for _, c := range cs {
			want = append(want, c.EventID)
		}
		if n, err := recs.add(uint64(i+1), AppendRecord(nil, cs)); err != nil || n != size {
			t.Fatalf("add record %d = %d, %v; want %d", i+1, n, err, size)
		}
	}
	if recs.Rows() != len(want) {
		t.Fatalf("Rows = %d; want %d", recs.Rows(), len(want))
	}
	for _, n := range []int{1, 7, 2000, 10_000} {
		var got [2][]string
		var wg sync.WaitGroup
		for p := range got {
			wg.Go(func() {
				err := recs.Blocks(n, func(cs []ingest.Completion) error {
					if len(cs) == 0 || len(cs) > n {
						return fmt.Errorf("block of %d; want 1..%d", len(cs), n)
					}
					for _, c := range cs {
						got[p] = append(got[p], c.EventID)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for p := range got {
			if !slices.Equal(got[p], want) {
				t.Fatalf("n=%d pass %d: %d ids, first %v; want %d in log order", n, p, len(got[p]), got[p][:min(3, len(got[p]))], len(want))
			}
		}
	}
}

// Skip drops completions as they are decoded, told the record's index; a
// record whose header reads but whose body does not is reported once, however many
// passes decode it, and the completions before its damage are kept.
func TestRecordsSkipAndDamage(t *testing.T) {
	var reported []uint64
	recs := Records{
		skip: func(index uint64, c *ingest.Completion) bool { return index == 1 && c.EventID == "id-00001" },
		corrupt: func(index uint64, err error) {
			reported = append(reported, index)
		},
	}
	recs.add(1, AppendRecord(nil, manyCompletions(0, 3)))
	damaged := AppendRecord(nil, manyCompletions(3, 2))
	damaged = damaged[:len(damaged)-3] // the second completion is cut short
	if _, err := recs.add(2, damaged); err != nil {
		t.Fatalf("add: %v; want the header to read", err)
	}
	recs.add(3, AppendRecord(nil, manyCompletions(5, 1)))
	if _, err := recs.add(4, []byte{42, 1}); err == nil {
		t.Fatal("add of a record of another version: no error")
	}
	for range 2 {
		var ids []string
		recs.Blocks(2, func(cs []ingest.Completion) error {
			for _, c := range cs {
				ids = append(ids, c.EventID)
			}
			return nil
		})
		if want := []string{"id-00000", "id-00002", "id-00003", "id-00005"}; !slices.Equal(ids, want) {
			t.Errorf("ids = %v; want %v", ids, want)
		}
	}
	if !slices.Equal(reported, []uint64{2}) {
		t.Errorf("reported = %v; want record 2 once", reported)
	}
}

// An error from fn stops Blocks and is returned.
func TestRecordsBlocksStopsAtError(t *testing.T) {
	var recs Records
	recs.add(1, AppendRecord(nil, manyCompletions(0, 10)))
	calls := 0
	err := recs.Blocks(3, func([]ingest.Completion) error { calls++; return fmt.Errorf("refused") })
	if err == nil || calls != 1 {
		t.Errorf("Blocks = %v after %d calls; want the error after 1", err, calls)
	}
}
