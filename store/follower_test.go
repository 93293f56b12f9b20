package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tally-analytics/tally/store/backoff"
)

// A StartFunc's batches (a record each, MaxBytes 1) overlap: the next one
// starts before the last one finished, and the cursor moves past a batch
// only once it and those before it finished. A batch whose finish fails is
// read and started again, with the one started after it.
func TestFollowerStartsOverlapInOrder(t *testing.T) {
	l := openLog(t, t.TempDir())
	for i := range 3 {
		appendRecords(t, l, manyCompletions(i*10, 10))
	}
	r, err := l.Reader("x")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var starts, committed []uint64 // each start's batch end, and the cursor then
	failed := false
	f := FollowStarts(FollowConfig{MaxBytes: 1, MaxAge: time.Millisecond, Backoff: backoff.Policy{Min: time.Millisecond, Max: time.Millisecond}}, r,
		func(ctx context.Context, recs *Records, through uint64) (func() error, error) {
			mu.Lock()
			starts, committed = append(starts, through), append(committed, r.Committed())
			mu.Unlock()
			return func() error {
				if through == 1 && !failed {
					failed = true
					return errors.New("stored, then an error")
				}
				return nil
			}, nil
		}, nil, nil)
	for deadline := time.Now().Add(10 * time.Second); r.Pending() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	// 2 starts while 1 is in flight; 1 fails, so both start again; 3
	// starts once 1 is committed (the cursor then at 2).
	if want := []uint64{1, 2, 1, 2, 3}; !slices.Equal(starts, want) {
		t.Errorf("batches started through %v; want %v", starts, want)
	}
	if want := []uint64{1, 1, 1, 1, 2}; !slices.Equal(committed, want) {
		t.Errorf("cursor at each start %v; want %v", committed, want)
	}
	if p := r.Pending(); p != 0 {
		t.Errorf("%d records pending after the last batch finished", p)
	}
}
