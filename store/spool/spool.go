package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// Config sizes and locates one spool.
type Config struct {
	// Path of the spool file; its directory is created if missing.
	Path string
	// Name labels the spool's metrics; default the file's base name.
	Name string
	// MaxItems bounds the number of items. Default 1,000,000: at the
	// ~2 KB of a typical forwarded event that is ~2 GB of disk.
	MaxItems int
	// MaxBytes bounds the sum of keys and payloads. Default 1 GiB.
	MaxBytes int64
	// CommitDelay is how long the first writer of a group commit waits for
	// others to join before the single fsync. Default 2ms: one fsync costs
	// 1–10 ms on SSDs, so waiting 2 ms lets a burst of concurrent callers
	// share it while a lone caller pays little extra.
	CommitDelay time.Duration
	// MaxCommitBatch is how many writers may share one commit. Default 1000.
	MaxCommitBatch int
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = filepath.Base(c.Path)
	}
	if c.MaxItems == 0 {
		c.MaxItems = 1_000_000
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.CommitDelay == 0 {
		c.CommitDelay = 2 * time.Millisecond
	}
	if c.MaxCommitBatch == 0 {
		c.MaxCommitBatch = 1000
	}
	return c
}

// Errors returned by Spool methods.
var (
	// ErrFull is returned by Enqueue when the items would exceed MaxItems or
	// MaxBytes; nothing of that call is stored.
	ErrFull = errors.New("spool full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool closed")
)

// Item is one queued piece of work.
type Item struct {
	// Key identifies the item: enqueueing a key that is already queued
	// stores nothing (the first payload wins).
	Key     string
	Payload []byte
	// Attempts counts Retry calls; Enqueue stores it as given (normally 0).
	Attempts int
	// NotBefore is when the item becomes due; zero means now.
	NotBefore time.Time
	// EnqueuedAt is set by Enqueue.
	EnqueuedAt time.Time
}

// Retry reschedules a leased item.
type Retry struct {
	Key       string
	NotBefore time.Time
}

var (
	bucketItems = []byte("items") // key → record
	bucketDue   = []byte("due")   // notBefore|seq → key, the order items become due
	bucketMeta  = []byte("meta")  // counters kept in the same transactions as the items
	metaCount   = []byte("count")
	metaBytes   = []byte("bytes")
)

// Spool is a durable, bounded queue in one bbolt file. Writes (Enqueue, Ack,
// Retry) return only after their transaction is fsynced; concurrent writers
// share one commit. Leases live in memory only: after a crash or restart
// every item is available again, so consumers see each item at least once.
// One consumer per spool is assumed (Ready has one reader).
type Spool struct {
	cfg Config
	db  *bolt.DB
	log *slog.Logger

	// life is held shared by every operation and exclusively by Close, so
	// Close waits for operations in progress and none starts after it.
	life   sync.RWMutex
	closed bool

	mu     sync.Mutex // guards leased
	leased map[string]struct{}
	ready  chan struct{}

	items, bytes          prometheus.GaugeFunc
	enqueued, dupes, full prometheus.Counter
	reg                   prometheus.Registerer
}

// Open opens or creates the spool at cfg.Path. reg may be nil.
func Open(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Spool, error) {
	cfg = cfg.withDefaults()
	if cfg.Path == "" {
		return nil, errors.New("open spool: path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", cfg.Path, err)
	}
	_, statErr := os.Stat(cfg.Path)
	created := errors.Is(statErr, os.ErrNotExist)
	// Timeout: a second tally on the same file fails instead of waiting.
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", cfg.Path, err)
	}
	db.MaxBatchDelay = cfg.CommitDelay
	db.MaxBatchSize = cfg.MaxCommitBatch
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketItems, bucketDue, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open spool %s: %w", cfg.Path, err)
	}
	if created {
		// A new file's directory entry is durable only once the directory
		// is synced; without it a crash could lose the whole spool.
		if err := syncDir(filepath.Dir(cfg.Path)); err != nil {
			db.Close()
			return nil, fmt.Errorf("open spool %s: %w", cfg.Path, err)
		}
	}
	s := &Spool{cfg: cfg, db: db, log: log, leased: map[string]struct{}{}, ready: make(chan struct{}, 1), reg: reg}
	if err := s.registerMetrics(reg); err != nil {
		db.Close()
		return nil, fmt.Errorf("open spool %s: %w", cfg.Path, err)
	}
	n, size := s.Len()
	log.Info("spool opened", "spool", cfg.Name, "path", cfg.Path, "items", n, "bytes", size)
	if n > 0 {
		s.signal()
	}
	return s, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Spool) registerMetrics(reg prometheus.Registerer) error {
	labels := prometheus.Labels{"spool": s.cfg.Name}
	s.items = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_spool_items", Help: "Items queued in the spool.", ConstLabels: labels},
		func() float64 { n, _ := s.Len(); return float64(n) })
	s.bytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_spool_bytes", Help: "Bytes of keys and payloads queued in the spool.", ConstLabels: labels},
		func() float64 { _, b := s.Len(); return float64(b) })
	s.enqueued = prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_spool_enqueued_total", Help: "Items stored by Enqueue.", ConstLabels: labels})
	s.dupes = prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_spool_duplicates_total", Help: "Items not stored because their key was already queued.", ConstLabels: labels})
	s.full = prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_spool_full_total", Help: "Items refused because the spool was full.", ConstLabels: labels})
	if reg == nil {
		return nil
	}
	for _, c := range s.collectors() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// collectors are the spool's metrics, registered by Open and unregistered
// by Close.
func (s *Spool) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.items, s.bytes, s.enqueued, s.dupes, s.full}
}

// Ready delivers a token whenever items may have become available
// (enqueued or released). Due times in the future are not signalled: use
// NextDue.
func (s *Spool) Ready() <-chan struct{} { return s.ready }

func (s *Spool) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// record layout: seq(8) notBefore(8) enqueuedAt(8) attempts(4) payload.
const headerLen = 28

func encodeRecord(seq uint64, it Item) []byte {
	b := make([]byte, headerLen+len(it.Payload))
	binary.BigEndian.PutUint64(b[0:], seq)
	binary.BigEndian.PutUint64(b[8:], nanos(it.NotBefore))
	binary.BigEndian.PutUint64(b[16:], nanos(it.EnqueuedAt))
	binary.BigEndian.PutUint32(b[24:], uint32(min(max(it.Attempts, 0), math.MaxUint32)))
	copy(b[headerLen:], it.Payload)
	return b
}

func decodeRecord(key string, b []byte) (seq uint64, it Item, err error) {
	if len(b) < headerLen {
		return 0, Item{}, fmt.Errorf("item %q: record of %d bytes is truncated", key, len(b))
	}
	it = Item{
		Key:        key,
		NotBefore:  fromNanos(binary.BigEndian.Uint64(b[8:])),
		EnqueuedAt: fromNanos(binary.BigEndian.Uint64(b[16:])),
		Attempts:   int(binary.BigEndian.Uint32(b[24:])),
		Payload:    append([]byte(nil), b[headerLen:]...),
	}
	return binary.BigEndian.Uint64(b[0:]), it, nil
}

// nanos maps a time onto an unsigned, order-preserving number; the zero
// time and anything before 1970 become 0 ("due at once").
func nanos(t time.Time) uint64 {
	if t.IsZero() || t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano())
}

func fromNanos(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n))
}

func dueKey(notBefore, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, notBefore)
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func getUint(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putUint(b *bolt.Bucket, k []byte, n uint64) error {
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, n)
	return b.Put(k, v)
}

// Enqueue stores items durably: it returns after the fsync of the commit
// that holds them (a commit shared with concurrent callers). Items whose key
// is already queued, or repeated within items, are skipped; added counts
// the new ones. When the new items do not fit, nothing is stored and the
// error wraps ErrFull.
func (s *Spool) Enqueue(ctx context.Context, items []Item) (added int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !s.begin() {
		return 0, ErrClosed
	}
	defer s.life.RUnlock()
	for _, it := range items {
		if it.Key == "" {
			return 0, errors.New("enqueue: item key is empty")
		}
	}
	now := time.Now()
	dupes := 0
	err = s.db.Batch(func(tx *bolt.Tx) error {
		// Batch may run this function more than once: start from scratch.
		added, dupes = 0, 0
		ib, db, mb := tx.Bucket(bucketItems), tx.Bucket(bucketDue), tx.Bucket(bucketMeta)
		count, size := getUint(mb, metaCount), getUint(mb, metaBytes)
		for _, it := range items {
			k := []byte(it.Key)
			if ib.Get(k) != nil {
				dupes++
				continue
			}
			if count+1 > uint64(s.cfg.MaxItems) || size+uint64(len(k)+len(it.Payload)) > uint64(s.cfg.MaxBytes) {
				return fmt.Errorf("enqueue %d items: %d queued, %d bytes: %w", len(items), count, size, ErrFull)
			}
			seq, err := ib.NextSequence()
			if err != nil {
				return err
			}
			it.EnqueuedAt = now
			if err := ib.Put(k, encodeRecord(seq, it)); err != nil {
				return err
			}
			if err := db.Put(dueKey(nanos(it.NotBefore), seq), k); err != nil {
				return err
			}
			count++
			size += uint64(len(k) + len(it.Payload))
			added++
		}
		if err := putUint(mb, metaCount, count); err != nil {
			return err
		}
		return putUint(mb, metaBytes, size)
	})
	if err != nil {
		if errors.Is(err, ErrFull) {
			s.full.Add(float64(len(items)))
			return 0, err
		}
		return 0, fmt.Errorf("enqueue into spool %s: %w", s.cfg.Name, err)
	}
	s.enqueued.Add(float64(added))
	s.dupes.Add(float64(dupes))
	if added > 0 {
		s.signal()
	}
	return added, nil
}

// Lease returns up to max items due at now, oldest due first, and hides
// them from further Lease calls until they are acknowledged, retried or
// released.
func (s *Spool) Lease(max int, now time.Time) ([]Item, error) {
	if !s.begin() {
		return nil, ErrClosed
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	limit := nanos(now)
	err := s.db.View(func(tx *bolt.Tx) error {
		ib := tx.Bucket(bucketItems)
		c := tx.Bucket(bucketDue).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			if binary.BigEndian.Uint64(k) > limit {
				break
			}
			key := string(v)
			if _, ok := s.leased[key]; ok {
				continue
			}
			rec := ib.Get(v)
			if rec == nil {
				continue // cannot happen: both are written in one transaction
			}
			_, it, err := decodeRecord(key, rec)
			if err != nil {
				return err
			}
			out = append(out, it)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lease from spool %s: %w", s.cfg.Name, err)
	}
	for _, it := range out {
		s.leased[it.Key] = struct{}{}
	}
	return out, nil
}

// NextDue returns when the earliest unleased item becomes due; ok is false
// when there is none.
func (s *Spool) NextDue() (t time.Time, ok bool) {
	if !s.begin() {
		return time.Time{}, false
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if _, leased := s.leased[string(v)]; leased {
				continue
			}
			t, ok = fromNanos(binary.BigEndian.Uint64(k)), true
			return nil
		}
		return nil
	})
	return t, ok
}

// Ack removes items for good (delivered, or given up on). Unknown keys are
// ignored.
func (s *Spool) Ack(keys []string) error {
	if !s.begin() {
		return ErrClosed
	}
	defer s.life.RUnlock()
	err := s.db.Batch(func(tx *bolt.Tx) error {
		ib, db, mb := tx.Bucket(bucketItems), tx.Bucket(bucketDue), tx.Bucket(bucketMeta)
		count, size := getUint(mb, metaCount), getUint(mb, metaBytes)
		for _, key := range keys {
			rec := ib.Get([]byte(key))
			if rec == nil {
				continue
			}
			seq, it, err := decodeRecord(key, rec)
			if err != nil {
				return err
			}
			if err := db.Delete(dueKey(nanos(it.NotBefore), seq)); err != nil {
				return err
			}
			if err := ib.Delete([]byte(key)); err != nil {
				return err
			}
			count--
			size -= uint64(len(key) + len(it.Payload))
		}
		if err := putUint(mb, metaCount, count); err != nil {
			return err
		}
		return putUint(mb, metaBytes, size)
	})
	if err != nil {
		return fmt.Errorf("ack %d items in spool %s: %w", len(keys), s.cfg.Name, err)
	}
	s.unlease(keys)
	return nil
}

// Retry counts one more attempt for each item and hides it until its
// NotBefore. Unknown keys are ignored.
func (s *Spool) Retry(rs []Retry) error { return s.reschedule(rs, true) }

// Defer hides leased items until their NotBefore without counting an
// attempt (the consumer chose not to try them yet). Unknown keys are ignored.
func (s *Spool) Defer(rs []Retry) error { return s.reschedule(rs, false) }

func (s *Spool) reschedule(rs []Retry, attempt bool) error {
	if !s.begin() {
		return ErrClosed
	}
	defer s.life.RUnlock()
	err := s.db.Batch(func(tx *bolt.Tx) error {
		ib, db := tx.Bucket(bucketItems), tx.Bucket(bucketDue)
		for _, r := range rs {
			rec := ib.Get([]byte(r.Key))
			if rec == nil {
				continue
			}
			seq, it, err := decodeRecord(r.Key, rec)
			if err != nil {
				return err
			}
			if err := db.Delete(dueKey(nanos(it.NotBefore), seq)); err != nil {
				return err
			}
			if attempt {
				it.Attempts++
			}
			it.NotBefore = r.NotBefore
			if err := ib.Put([]byte(r.Key), encodeRecord(seq, it)); err != nil {
				return err
			}
			if err := db.Put(dueKey(nanos(it.NotBefore), seq), []byte(r.Key)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reschedule %d items in spool %s: %w", len(rs), s.cfg.Name, err)
	}
	keys := make([]string, len(rs))
	for i, r := range rs {
		keys[i] = r.Key
	}
	s.unlease(keys)
	return nil
}

// Release makes leased items available again without counting an attempt
// (the consumer is stopping before it could try them).
func (s *Spool) Release(keys []string) {
	s.unlease(keys)
	s.signal()
}

func (s *Spool) unlease(keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.leased, k)
	}
}

// Len returns the number of queued items and their key and payload bytes.
func (s *Spool) Len() (items int, bytes int64) {
	if !s.begin() {
		return 0, 0
	}
	defer s.life.RUnlock()
	_ = s.db.View(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		items, bytes = int(getUint(mb, metaCount)), int64(getUint(mb, metaBytes))
		return nil
	})
	return items, bytes
}

// Full reports whether the spool is at or above fraction (0..1) of either
// bound: /readyz uses it as the high-water mark.
func (s *Spool) Full(fraction float64) bool {
	n, b := s.Len()
	return float64(n) >= fraction*float64(s.cfg.MaxItems) || float64(b) >= fraction*float64(s.cfg.MaxBytes)
}

// begin holds the spool open for one operation; false means it is closed.
// The caller releases it with s.life.RUnlock.
func (s *Spool) begin() bool {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return false
	}
	return true
}

// Close stops the spool: later calls fail with ErrClosed. It waits for
// operations in progress, then closes the file and unregisters metrics.
func (s *Spool) Close(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.reg != nil {
		for _, c := range s.collectors() {
			s.reg.Unregister(c)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close spool %s: %w", s.cfg.Name, err)
	}
	s.log.Info("spool closed", "spool", s.cfg.Name)
	return nil
}

// Keys lists the keys of every item in the spool, leased or not (privacy
// erasure finds a person's pending items by key).
func (s *Spool) Keys() ([]string, error) {
	if !s.begin() {
		return nil, ErrClosed
	}
	defer s.life.RUnlock()
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketItems).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list spool %s: %w", s.cfg.Name, err)
	}
	return keys, nil
}
