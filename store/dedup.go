package store

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// DeduperConfig sizes the Deduper. Zero values mean the defaults.
type DeduperConfig struct {
	// MaxKeys is how many (event name, event id) pairs are remembered; the
	// oldest are forgotten first. 0 means 1,000,000: 18 hours at a
	// sustained 15 completions/s, 2.8 hours at 100/s — clients retry within
	// minutes, and what slips past is still caught by the events table's
	// ReplacingMergeTree. Each key costs 8 bytes in the eviction ring and
	// 2–4 slots of 8 bytes in a hash set kept at most half full: 1,000,000
	// keys in 16 shards of 62,500 need 131,072 slots each, so 8 + 16.8 ≈ 25
	// bytes per key, about 25 MB in all (BenchmarkDeduperFirstSeen reports
	// the measured heap bytes per key).
	MaxKeys int
}

// dedupShards spreads the keys over independently locked parts so
// concurrent requests rarely wait for each other; eviction is oldest-first
// within each shard, which is oldest-first overall to within the spread of
// the hash.
const dedupShards = 16

// Deduper remembers recently accepted (event name, event id) pairs. It
// implements ingest.Deduper and is safe for concurrent use.
//
// It stores a 64-bit hash of each pair, not the pair: 8 bytes instead of
// about 60. A collision would make a new completion look like a repeat; with
// 1,000,000 keys remembered the chance per completion is 1e6/2^64 ≈ 5e-14.
// The hash is seeded per process, so nobody can choose ids that collide
// with another site's.
type Deduper struct {
	seed   maphash.Seed
	shards [dedupShards]dedupShard
}

// NewDeduper returns an empty Deduper.
func NewDeduper(cfg DeduperConfig) *Deduper {
	maxKeys := orDefault(cfg.MaxKeys, 1_000_000)
	per := max(1, (maxKeys+dedupShards-1)/dedupShards)
	d := &Deduper{seed: maphash.MakeSeed()}
	for i := range d.shards {
		d.shards[i].set = newHashSet(per)
		d.shards[i].ring = make([]uint64, per)
	}
	return d
}

// FirstSeen reports whether the pair is new, and remembers it.
func (d *Deduper) FirstSeen(eventName, eventID string) bool {
	h := d.hash(eventName, eventID)
	s := &d.shards[h%dedupShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set.contains(h) {
		return false
	}
	s.add(h)
	return true
}

// Forget drops a pair FirstSeen just remembered, for completions the Sink
// then refused: the client's retry must count as new. Its slot in the
// eviction ring stays; when that slot comes up it may evict the pair early
// if it was seen again meanwhile, which only shortens its memory.
func (d *Deduper) Forget(eventName, eventID string) {
	h := d.hash(eventName, eventID)
	s := &d.shards[h%dedupShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set.remove(h)
}

// Len is the number of remembered pairs.
func (d *Deduper) Len() int {
	n := 0
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		n += s.set.n
		s.mu.Unlock()
	}
	return n
}

func (d *Deduper) hash(eventName, eventID string) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	h.WriteString(eventName)
	h.WriteByte(0) // names never contain NUL, so the pair is unambiguous
	h.WriteString(eventID)
	if sum := h.Sum64(); sum != 0 {
		return sum
	}
	return 1 // 0 marks a free slot in hashSet
}

type dedupShard struct {
	mu   sync.Mutex
	set  hashSet
	ring []uint64 // insertion order; next is the oldest once full
	next int
	full bool
}

func (s *dedupShard) add(h uint64) {
	if s.full {
		s.set.remove(s.ring[s.next])
	}
	s.ring[s.next] = h
	s.set.insert(h)
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
}

// hashSet is an open-addressing set of non-zero 64-bit hashes with linear
// probing, kept at most half full, and backward-shift deletion (no
// tombstones, so eviction never degrades it). It takes 16–32 bytes per key
// where a Go map[uint64]struct{} took 38.
type hashSet struct {
	slots []uint64 // 0 marks a free slot
	shift uint     // 64 - log2(len(slots)): the slot is the hash's top bits
	n     int
}

func newHashSet(capacity int) hashSet {
	size, bits := 2, uint(1)
	for size < 2*capacity {
		size, bits = size*2, bits+1
	}
	return hashSet{slots: make([]uint64, size), shift: 64 - bits}
}

// The low bits of a hash choose the shard, so the slot uses the high ones.
func (s *hashSet) home(h uint64) int { return int(h >> s.shift) }

func (s *hashSet) contains(h uint64) bool {
	mask := len(s.slots) - 1
	for i := s.home(h); ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return true
		case 0:
			return false
		}
	}
}

func (s *hashSet) insert(h uint64) {
	mask := len(s.slots) - 1
	for i := s.home(h); ; i = (i + 1) & mask {
		switch s.slots[i] {
		case h:
			return
		case 0:
			s.slots[i] = h
			s.n++
			return
		}
	}
}

func (s *hashSet) remove(h uint64) {
	mask := len(s.slots) - 1
	i := s.home(h)
	for s.slots[i] != h {
		if s.slots[i] == 0 {
			return
		}
		i = (i + 1) & mask
	}
	// Pull later entries of the probe run back into the hole when their
	// home slot is not cyclically within (hole, their slot].
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		k := s.home(s.slots[j])
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		s.slots[i] = s.slots[j]
		i = j
	}
	s.slots[i] = 0
	s.n--
}

// Warm loads the pairs received in the last window from the events table,
// oldest first, so a restart does not forget recent completions. At most
// the Deduper's capacity is read: the newest pairs are the ones kept. It
// returns how many rows it read.
func (d *Deduper) Warm(ctx context.Context, conn Conn, database string, window time.Duration) (int, error) {
	if err := CheckDatabaseName(database); err != nil {
		return 0, err
	}
	capacity := 0
	for i := range d.shards {
		capacity += len(d.shards[i].ring)
	}
	since := time.Now().Add(-window).UTC()
	// The inner query picks the newest pairs; the outer one orders them
	// oldest first so that eviction order matches arrival order.
	q := fmt.Sprintf(`SELECT event_name, event_id FROM (
    SELECT event_name, event_id, received_at FROM %s.events
    WHERE received_at >= toDateTime(%d)
    ORDER BY received_at DESC LIMIT %d
) ORDER BY received_at`, quoteIdent(database), since.Unix(), capacity)
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("warm deduper from %s.events: %w", database, err)
	}
	defer rows.Close()
	n := 0
	var name, id string
	for rows.Next() {
		if err := rows.Scan(&name, &id); err != nil {
			return n, fmt.Errorf("warm deduper from %s.events: %w", database, err)
		}
		d.FirstSeen(name, id)
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("warm deduper from %s.events: %w", database, err)
	}
	return n, nil
}
