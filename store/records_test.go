package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

// Blocks hands every completion of every record once, in log order, in
// blocks that end with the record bringing the block to n or more (the
// last may be smaller), a block over n in the fewest equal parts of at
// most n; two passes at once hand the same.
func TestRecordsBlocks(t *testing.T) {
	var recs Records
	var want []string
	sizes := []int{1, 500, 3, 1999, 2000, 7}
	next := 0
	for i, size := range sizes {
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
	ones := make([]int, len(want))
	for i := range ones {
		ones[i] = 1
	}
	for n, wantBlocks := range map[int][]int{
		1: ones,
		// 1+500+3+1999 = 2503 in five parts, 2000 in four, then 7.
		600:    {500, 501, 500, 501, 501, 500, 500, 500, 500, 7},
		2000:   {1251, 1252, 2000, 7},
		2001:   {1251, 1252, 1003, 1004},
		10_000: {len(want)},
	} {
		var got [2][]string
		var blocks [2][]int
		var wg sync.WaitGroup
		for p := range got {
			wg.Go(func() {
				recs.Blocks(n, func(cs []ingest.Completion) error {
					blocks[p] = append(blocks[p], len(cs))
					for _, c := range cs {
						got[p] = append(got[p], c.EventID)
					}
					return nil
				})
			})
		}
		wg.Wait()
		for p := range got {
			if !slices.Equal(got[p], want) {
				t.Fatalf("n=%d pass %d: %d ids, first %v; want %d in log order", n, p, len(got[p]), got[p][:min(3, len(got[p]))], len(want))
			}
			if !slices.Equal(blocks[p], wantBlocks) {
				t.Errorf("n=%d pass %d: blocks of %v; want %v", n, p, blocks[p], wantBlocks)
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
