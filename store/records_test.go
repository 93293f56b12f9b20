package store

import (
	"fmt"
	"reflect"
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

// withProps gives each completion properties, an email and a visitor id
// that differ from one call to the next by tag.
func withProps(cs []ingest.Completion, tag string) []ingest.Completion {
	for i := range cs {
		c := &cs[i]
		c.Identity.Email = fmt.Sprintf("%s-%d@example.com", tag, i)
		c.VisitorID = tag + "-visitor"
		c.Props = []ingest.Prop{{Name: "make", Value: tag + "-volvo"}, {Name: "year", Value: fmt.Sprint(1990 + i%30)}}
	}
	return cs
}

// Blocks decodes into memory it keeps: once its block and property arena
// have grown, a pass over the records allocates nothing per completion,
// and what it hands is what was appended.
func TestRecordsBlocksDecodeWithoutCopies(t *testing.T) {
	var recs Records
	var want []ingest.Completion
	for i := range 4 {
		cs := withProps(manyCompletions(i*1000, 1000), "a")
		want = append(want, cs...)
		if _, err := recs.add(uint64(i+1), AppendRecord(nil, cs)); err != nil {
			t.Fatal(err)
		}
	}
	var got []ingest.Completion
	recs.Blocks(insertBlockRows, func(cs []ingest.Completion) error {
		for _, c := range cs {
			c.Props = slices.Clone(c.Props)
			got = append(got, c)
		}
		return nil
	})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Blocks handed %d completions unlike the %d appended", len(got), len(want))
	}
	rows := 0
	allocs := testing.AllocsPerRun(5, func() {
		recs.Blocks(insertBlockRows, func(cs []ingest.Completion) error { rows += len(cs); return nil })
	})
	// A pass's own bookkeeping (its closure and deferred return) only:
	// decoding 4,000 completions with a copy each would be thousands.
	if allocs > 4 {
		t.Errorf("a pass over 4,000 completions allocated %v times; want at most 4", allocs)
	}
}

// The identities rows of a batch keep their strings when the next batch
// is read into the same Records: they are copies, not slices of the
// records.
func TestIdentityRowsOutliveTheirRecords(t *testing.T) {
	var recs Records
	if _, err := recs.add(1, AppendRecord(nil, withProps(manyCompletions(0, 100), "first"))); err != nil {
		t.Fatal(err)
	}
	var rows identityRows
	recs.Blocks(insertBlockRows, func(cs []ingest.Completion) error { rows.add(cs); return nil })
	recs.reset()
	if _, err := recs.add(2, AppendRecord(nil, withProps(manyCompletions(500, 100), "later"))); err != nil {
		t.Fatal(err)
	}
	recs.Blocks(insertBlockRows, func([]ingest.Completion) error { return nil })
	if len(rows.value) != 100 {
		t.Fatalf("identities rows = %d; want 100 (an email each, one visitor)", len(rows.value))
	}
	for i := range rows.value {
		if rows.value[i] != fmt.Sprintf("first-%d@example.com", i) || rows.visitor[i] != "first-visitor" || rows.site[i] != "s" {
			t.Fatalf("identities row %d = %q, %q, %q after the next batch was read; want the first batch's", i, rows.value[i], rows.visitor[i], rows.site[i])
		}
	}
}
