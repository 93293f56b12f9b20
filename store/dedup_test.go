package store

import (
	"math/rand/v2"

	"fmt"
	"github.com/tally-analytics/tally/ingest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestDeduperFirstSeen(t *testing.T) {
	d := NewDeduper(DeduperConfig{MaxKeys: 1000})
	tests := []struct {
		name, id string
		want     bool
	}{
		{"signed_up", "1", true},
		{"signed_up", "1", false}, // repeat
		{"signed_up", "2", true},
		{"viewed_car", "1", true}, // same id, other event
		{"signed_up1", "", true},  // the separator keeps name+id pairs apart
		{"signed_up", "1", false},
	}
	for _, tt := range tests {
		if got := d.FirstSeen(tt.name, tt.id); got != tt.want {
			t.Errorf("FirstSeen(%q, %q) = %v; want %v", tt.name, tt.id, got, tt.want)
		}
	}
}

func TestDeduperEvictsOldest(t *testing.T) {
	const perShard = 4
	d := NewDeduper(DeduperConfig{MaxKeys: perShard * dedupShards})
	for i := range 1000 {
		d.FirstSeen("e", fmt.Sprint(i))
	}
	if got := d.Len(); got != perShard*dedupShards {
		t.Errorf("Len after 1000 keys = %d; want the capacity %d", got, perShard*dedupShards)
	}
	// The last perShard-1 keys cannot have been evicted whatever shards they
	// hashed to; the first key has seen ~60 newer ones in its shard.
	for i := 1000 - perShard + 1; i < 1000; i++ {
		if d.FirstSeen("e", fmt.Sprint(i)) {
			t.Errorf("recent key %d was forgotten", i)
		}
	}
	if !d.FirstSeen("e", "0") {
		t.Error("the oldest key is still remembered")
	}
}

func TestDeduperConcurrent(t *testing.T) {
	d := NewDeduper(DeduperConfig{})
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 2000 {
				if d.FirstSeen("e", fmt.Sprint(i)) {
					firsts.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := firsts.Load(); got != 2000 {
		t.Errorf("%d first sightings of 2000 keys sent by 8 goroutines; want 2000", got)
	}
}

// BenchmarkDeduperFirstSeen measures a lookup-and-insert on a full default
// Deduper and reports its memory per key (the arithmetic in DeduperConfig).
func BenchmarkDeduperFirstSeen(b *testing.B) {
	ids := make([]string, 4_000_000)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := NewDeduper(DeduperConfig{})
	for _, id := range ids[:2_000_000] {
		d.FirstSeen("viewed_car", id)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		d.FirstSeen("viewed_car", ids[i%len(ids)])
		i++
	}
	b.StopTimer()
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/2_000_000, "heap-bytes/key")
	runtime.KeepAlive(d)
}

func TestDeduperForget(t *testing.T) {
	d := NewDeduper(DeduperConfig{MaxKeys: 100})
	if !d.FirstSeen("e", "1") {
		t.Fatal("FirstSeen(e, 1) = false on an empty Deduper")
	}
	d.Forget("e", "1")
	if !d.FirstSeen("e", "1") {
		t.Error("FirstSeen(e, 1) after Forget = false; want true (a refused completion's retry is new)")
	}
	if d.FirstSeen("e", "1") {
		t.Error("FirstSeen(e, 1) again = true; want false")
	}
}

// The store types are what main hands the collector.
var (
	_ ingest.Deduper       = (*Deduper)(nil)
	_ ingest.Sink          = (*Writer)(nil)
	_ ingest.RejectionSink = (*RejectionWriter)(nil)
)

// TestHashSetMatchesMap runs random inserts and removes on a small, crowded
// set (long probe runs that wrap around the end) and compares it with a map
// after every step.
func TestHashSetMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, capacity := range []int{1, 3, 8, 50} {
		s := newHashSet(capacity)
		ref := map[uint64]bool{}
		// Few distinct keys, some with the same home slot.
		keys := make([]uint64, 3*capacity+2)
		for i := range keys {
			keys[i] = rng.Uint64() | 1
			if i%3 == 1 {
				keys[i] = keys[i-1] ^ 1<<1 // same top bits: same home slot
			}
		}
		for step := range 5000 {
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(2) == 0 && len(ref) < capacity {
				s.insert(k)
				ref[k] = true
			} else {
				s.remove(k)
				delete(ref, k)
			}
			if s.n != len(ref) {
				t.Fatalf("capacity %d step %d: n = %d; want %d", capacity, step, s.n, len(ref))
			}
			for _, k := range keys {
				if got := s.contains(k); got != ref[k] {
					t.Fatalf("capacity %d step %d: contains(%x) = %v; want %v", capacity, step, k, got, ref[k])
				}
			}
		}
	}
}
