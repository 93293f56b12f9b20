package enrich

import (
	"hash/maphash"
	"sync"
)

// uaCache remembers parsed user agents. A site's traffic comes from a few
// thousand distinct strings (browser × version × OS build), so nearly every
// completion is a hit, and a hit costs a hash and a map lookup instead of a
// parse (about 40 allocations in mssola/useragent).
//
// It is bounded and needs no background work: each of the shards holds two
// generations of maps. Lookups try the current generation, then the previous
// one (and promote the entry); when the current generation fills, it becomes
// the previous one and the old previous one is dropped whole. So at most
// size entries are held, entries in use survive rotations, and a flood of
// one-off strings (random user agents from a scanner) evicts in O(1) without
// per-entry bookkeeping. Shards keep goroutines from queueing on one lock.
type uaCache struct {
	seed   maphash.Seed
	shards [uaCacheShards]uaShard
}

const uaCacheShards = 16

type uaShard struct {
	mu     sync.Mutex
	cur    map[string]uaInfo
	prev   map[string]uaInfo
	perGen int
	// 8 (mutex) + 8 + 8 + 8 = 32 bytes of fields; 32 more make a shard one
	// 64-byte cache line, so goroutines locking neighbouring shards do not
	// contend for the same line.
	_ [32]byte
}

// maxCachedUALen bounds the strings kept as keys. Real user agents are
// 100–300 bytes; longer ones are parsed every time so that the cache's memory
// stays under size × (1 KiB + the parsed fields).
const maxCachedUALen = 1024

// newUACache returns a cache of at most size entries (size ≥ 2 × shards).
func newUACache(size int) *uaCache {
	c := &uaCache{seed: maphash.MakeSeed()}
	perGen := size / uaCacheShards / 2
	if perGen < 1 {
		perGen = 1
	}
	for i := range c.shards {
		c.shards[i].perGen = perGen
		c.shards[i].cur = make(map[string]uaInfo, perGen)
	}
	return c
}

// get returns the parsed form of s, parsing it on a miss.
func (c *uaCache) get(s string) uaInfo {
	// No user agent (imports and most API calls) parses at once; a very
	// long one is not kept.
	if s == "" || len(s) > maxCachedUALen {
		return parseUA(s)
	}
	sh := &c.shards[hashShard(c, s)]
	sh.mu.Lock()
	if info, ok := sh.cur[s]; ok {
		sh.mu.Unlock()
		return info
	}
	if info, ok := sh.prev[s]; ok {
		sh.putLocked(s, info)
		sh.mu.Unlock()
		return info
	}
	sh.mu.Unlock()

	// Parse outside the lock: two goroutines may parse the same new string
	// at once, which is cheaper than serialising every miss of a shard.
	info := parseUA(s)
	sh.mu.Lock()
	sh.putLocked(s, info)
	sh.mu.Unlock()
	return info
}

func (sh *uaShard) putLocked(s string, info uaInfo) {
	if len(sh.cur) >= sh.perGen {
		sh.prev = sh.cur
		sh.cur = make(map[string]uaInfo, sh.perGen)
	}
	sh.cur[s] = info
}

// len returns the number of entries held, for tests.
func (c *uaCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.cur) + len(sh.prev)
		sh.mu.Unlock()
	}
	return n
}

// hashShard returns the index of the shard that holds s.
func hashShard(c *uaCache, s string) uint64 {
	return maphash.String(c.seed, s) % uaCacheShards
}
