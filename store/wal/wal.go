package wal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	twal "github.com/tidwall/wal"
)

// Config locates and sizes the log.
type Config struct {
	// Dir holds the segment files and the cursors; created if missing.
	Dir string `yaml:"-"`
	// MaxBytes bounds the log on disk; past it Append answers ErrFull.
	// Default 1 GiB: a completion takes about 600 bytes in the log, so that
	// is ~1.7 M completions, an hour at ~500 completions/s, or 20 s of the
	// ~90,000/s ClickHouse ceiling measured on a 2-core machine.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a segment file is closed and the
	// next begun. Default 1 MiB: the library holds the tail segment and the
	// two most recently read ones in memory (3–6 MiB, as its buffers grow
	// by doubling), and a segment is the unit of deletion.
	SegmentBytes int `yaml:"segment_bytes"`
	// MaxGroup bounds the records written under one fsync. Default 4,096.
	MaxGroup int `yaml:"-"`
}

func (c Config) withDefaults() Config {
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 1 << 20
	}
	if c.MaxGroup <= 0 {
		c.MaxGroup = 4096
	}
	return c
}

// Errors returned by the log.
var (
	// ErrFull: the record would take the log past MaxBytes. Nothing of it
	// was written.
	ErrFull = errors.New("durable log full")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("durable log closed")
	// ErrCorrupt: a record's checksum does not match its payload.
	ErrCorrupt = errors.New("durable log record corrupt")
)

// Log is the durable log. Its methods are safe for concurrent use.
type Log struct {
	cfg Config
	// lib is the library's log; replaced only by reopen, after a failed
	// write.
	lib atomic.Pointer[twal.Log]
	log *slog.Logger

	reqs chan *appendReq
	done chan struct{} // closed when the committer has returned

	truncMu sync.Mutex // one truncation at a time
	readMu  sync.Mutex // one library read at a time (see readRecord)

	mu       sync.Mutex
	size     int64 // bytes of the segment files on disk
	reserved int64 // bytes of records accepted but not yet committed
	last     uint64
	closed   bool
	readers  map[string]*Reader
	notify   chan struct{} // closed and replaced after every commit

	m metrics
}

type appendReq struct {
	data  []byte
	index uint64
	err   error
	done  chan struct{}
}

type metrics struct {
	bytes     prometheus.GaugeFunc
	appends   prometheus.Counter
	commits   prometheus.Counter
	group     prometheus.Histogram
	full      prometheus.Counter
	lag       *prometheus.GaugeVec
	truncates prometheus.Counter
}

// Open opens or creates the log at cfg.Dir. reg may be nil.
func Open(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Log, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "cursors"), 0o750); err != nil {
		return nil, fmt.Errorf("create durable log dir: %w", err)
	}
	w, err := openLibrary(cfg.Dir, cfg.SegmentBytes, log)
	if err != nil {
		return nil, err
	}
	last, err := w.LastIndex()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open durable log %s: %w", cfg.Dir, err)
	}
	l := &Log{cfg: cfg, log: log, reqs: make(chan *appendReq, cfg.MaxGroup), done: make(chan struct{}),
		last: last, readers: map[string]*Reader{}, notify: make(chan struct{})}
	l.lib.Store(w)
	if l.size, err = segmentBytes(cfg.Dir); err != nil {
		w.Close()
		return nil, err
	}
	l.m = newMetrics(l)
	if reg != nil {
		for _, c := range []prometheus.Collector{l.m.bytes, l.m.appends, l.m.commits, l.m.group, l.m.full, l.m.lag, l.m.truncates} {
			if err := reg.Register(c); err != nil {
				w.Close()
				return nil, fmt.Errorf("register durable log metrics: %w", err)
			}
		}
	}
	go l.commitLoop()
	return l, nil
}

func newMetrics(l *Log) metrics {
	return metrics{
		bytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_log_bytes", Help: "Bytes of the durable log on disk."},
			func() float64 { s, _ := l.Size(); return float64(s) }),
		appends: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_log_appends_total", Help: "Records appended to the durable log."}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_log_commits_total", Help: "Group commits (one fsync each) of the durable log."}),
		group: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tally_log_commit_records", Help: "Records written under one fsync.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7)}),
		full: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_log_full_total", Help: "Appends refused because the durable log was full."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tally_log_reader_lag_records",
			Help: "Records appended but not yet committed by a reader, by reader."}, []string{"reader"}),
		truncates: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_log_segments_deleted_total", Help: "Truncations of the durable log's front."}),
	}
}

// FrameHeader is the room AppendFrame needs before a record.
const FrameHeader = 4

// Append writes one record and returns its index once it is on disk. It
// answers ErrFull, without writing, when the record would take the log past
// MaxBytes.
func (l *Log) Append(ctx context.Context, data []byte) (uint64, error) {
	frame := make([]byte, FrameHeader+len(data))
	copy(frame[FrameHeader:], data)
	return l.AppendFrame(ctx, frame)
}

// AppendFrame is Append for a record already placed after FrameHeader
// bytes of room, which the log fills with the record's checksum: it saves
// a copy of the record. frame must not be changed until AppendFrame
// returns.
func (l *Log) AppendFrame(ctx context.Context, frame []byte) (uint64, error) {
	if len(frame) < FrameHeader {
		return 0, errors.New("append to durable log: frame shorter than its header")
	}
	binary.LittleEndian.PutUint32(frame, crc32.Checksum(frame[FrameHeader:], castagnoli))
	n := int64(len(frame)) + binary.MaxVarintLen64
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return 0, ErrClosed
	case l.size+l.reserved+n > l.cfg.MaxBytes:
		l.mu.Unlock()
		l.m.full.Inc()
		return 0, ErrFull
	}
	l.reserved += n
	l.mu.Unlock()

	r := &appendReq{data: frame, done: make(chan struct{})}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		l.unreserve(n)
		return 0, ctx.Err()
	}
	// Once handed over the record may be written: wait for the truth rather
	// than give up on ctx and report a failure that did not happen.
	<-r.done
	l.unreserve(n)
	return r.index, r.err
}

func (l *Log) unreserve(n int64) {
	l.mu.Lock()
	l.reserved -= n
	l.mu.Unlock()
}

// commitLoop is the one writer: it takes the waiting records, writes them
// as one batch with one fsync, and answers them.
func (l *Log) commitLoop() {
	defer close(l.done)
	var batch twal.Batch
	group := make([]*appendReq, 0, l.cfg.MaxGroup)
	for r := range l.reqs {
		group = append(group[:0], r)
	gather:
		for len(group) < l.cfg.MaxGroup {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break gather
				}
				group = append(group, r)
			default:
				break gather
			}
		}
		l.mu.Lock()
		next := l.last + 1
		l.mu.Unlock()
		batch.Clear()
		for i, r := range group {
			batch.Write(next+uint64(i), r.data)
		}
		err := l.lib.Load().WriteBatch(&batch)
		if err != nil {
			// A failed write (disk full, I/O error) leaves the library's
			// in-memory tail ahead of the file: reopen from disk, cutting
			// whatever part of the batch reached it, so the next commit
			// starts from what is really there.
			l.reopen(err)
		}
		l.mu.Lock()
		if err == nil {
			l.last = next + uint64(len(group)) - 1
			// What the library wrote: a uvarint length before each record.
			for _, r := range group {
				l.size += int64(len(r.data) + uvarintLen(uint64(len(r.data))))
			}
			close(l.notify)
			l.notify = make(chan struct{})
		}
		l.mu.Unlock()
		for i, r := range group {
			if err != nil {
				r.err = fmt.Errorf("append to durable log: %w", err)
			} else {
				r.index = next + uint64(i)
			}
			close(r.done)
		}
		if err == nil {
			l.m.appends.Add(float64(len(group)))
			l.m.commits.Inc()
			l.m.group.Observe(float64(len(group)))
		}
	}
}

// reopen closes and reopens the library's log after a failed write. Readers
// hold no library state between calls, so they carry on. If reopening
// fails the log stays closed and every later call fails.
func (l *Log) reopen(cause error) {
	l.log.Error("durable log write failed; reopening it from disk", "err", cause)
	_ = l.lib.Load().Close()
	w, err := openLibrary(l.cfg.Dir, l.cfg.SegmentBytes, l.log)
	if err != nil {
		l.log.Error("durable log could not be reopened; appends will fail until restart", "err", err)
		return
	}
	l.lib.Store(w)
	last, _ := w.LastIndex()
	size, _ := segmentBytes(l.cfg.Dir)
	l.mu.Lock()
	l.last, l.size = last, size
	l.mu.Unlock()
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// Size returns the bytes on disk and MaxBytes.
func (l *Log) Size() (bytes, max int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size, l.cfg.MaxBytes
}

// Fill is the fraction of MaxBytes in use (for /readyz's high-water mark).
func (l *Log) Fill() float64 {
	s, m := l.Size()
	return float64(s) / float64(m)
}

// LastIndex is the index of the last record written (0 when none ever was).
func (l *Log) LastIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Close stops intake, waits for the commit in progress and closes the
// files. Readers must be done reading first.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.reqs)
	<-l.done
	if err := l.lib.Load().Close(); err != nil {
		return fmt.Errorf("close durable log: %w", err)
	}
	return nil
}

// openLibrary opens the segment files, cutting a torn tail first if the
// library finds one.
func openLibrary(dir string, segmentBytes int, log *slog.Logger) (*twal.Log, error) {
	opts := &twal.Options{SegmentSize: segmentBytes, SegmentCacheSize: 2, AllowEmpty: true, NoCopy: true,
		DirPerms: 0o750, FilePerms: 0o640}
	w, err := twal.Open(dir, opts)
	if errors.Is(err, twal.ErrCorrupt) {
		// The only damage kill -9 or a power loss leaves is a torn tail.
		cut, rerr := repairTail(dir)
		if rerr != nil {
			return nil, fmt.Errorf("open durable log %s: %w (repair: %w)", dir, err, rerr)
		}
		log.Warn("durable log: cut a torn record at the end of the last segment", "dir", dir, "bytes", cut)
		w, err = twal.Open(dir, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("open durable log %s: %w", dir, err)
	}
	return w, nil
}

// segmentBytes sums the sizes of the segment files in dir.
func segmentBytes(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("list durable log: %w", err)
	}
	var n int64
	for _, e := range ents {
		if !isSegment(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // deleted by a truncation in between
		}
		n += fi.Size()
	}
	return n, nil
}

func isSegment(name string) bool {
	if len(name) != 20 {
		return false
	}
	_, err := strconv.ParseUint(name, 10, 64)
	return err == nil
}

// segmentStarts lists the first index of every segment file, ascending.
func segmentStarts(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list durable log: %w", err)
	}
	var starts []uint64
	for _, e := range ents {
		if isSegment(e.Name()) {
			i, _ := strconv.ParseUint(e.Name(), 10, 64)
			starts = append(starts, i)
		}
	}
	slices.Sort(starts)
	return starts, nil
}

// repairTail cuts the last segment after its last whole record and returns
// how many bytes it removed.
func repairTail(dir string) (int64, error) {
	starts, err := segmentStarts(dir)
	if err != nil || len(starts) == 0 {
		return 0, errors.New("no segment to repair")
	}
	path := filepath.Join(dir, fmt.Sprintf("%020d", starts[len(starts)-1]))
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	good := 0
	for good < len(data) {
		size, n := binary.Uvarint(data[good:])
		if n <= 0 || size == 0 || uint64(len(data)-good-n) < size {
			break
		}
		good += n + int(size)
	}
	if good == len(data) {
		return 0, errors.New("last segment has no torn record")
	}
	if err := os.Truncate(path, int64(good)); err != nil {
		return 0, err
	}
	return int64(len(data) - good), nil
}

// Entry is one record read from the log.
type Entry struct {
	Index uint64
	// Data is the record as appended. It is valid until the next call of
	// Read on the same Reader.
	Data []byte
}

// Reader reads the log from its own durable cursor.
type Reader struct {
	l    *Log
	name string
	path string

	mu        sync.Mutex
	next      uint64 // next index Read returns
	committed uint64 // next index after the last Commit (durable)
	buf       []byte
}

// Reader returns the named reader, positioned at its last commit, or at the
// first record still in the log for a reader never seen before. Register
// every reader before any of them commits: the front of the log is deleted
// up to the slowest registered one.
func (l *Log) Reader(name string) (*Reader, error) {
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return nil, fmt.Errorf("durable log reader name %q: use letters, digits, - and _", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.readers[name]; ok {
		return r, nil
	}
	r := &Reader{l: l, name: name, path: filepath.Join(l.cfg.Dir, "cursors", name)}
	first, err := l.lib.Load().FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("durable log reader %s: %w", name, err)
	}
	b, err := os.ReadFile(r.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.committed = first
	case err != nil:
		return nil, fmt.Errorf("read cursor of %s: %w", name, err)
	default:
		c, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			return nil, fmt.Errorf("cursor of %s (%s) is not a number: %w", name, r.path, perr)
		}
		r.committed = c
	}
	// A cursor before the front means its records were deleted while the
	// reader was not registered; one past the end means the log was reset.
	// Either way the records it can still read start at first.
	if r.committed < first || r.committed > l.last+1 {
		l.log.Warn("durable log cursor outside the log; starting at its front", "reader", name, "cursor", r.committed, "first", first, "last", l.last)
		r.committed = first
	}
	r.next = r.committed
	l.readers[name] = r
	return r, nil
}

// Committed is the index of the first record r has not committed: every
// record before it is done with.
func (r *Reader) Committed() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.committed
}

// Name is the reader's name.
func (r *Reader) Name() string { return r.name }

// Pending is the number of records not yet committed by r.
func (r *Reader) Pending() uint64 { return r.after(&r.committed) }

// Unread is the number of records after the last one Read returned.
func (r *Reader) Unread() uint64 { return r.after(&r.next) }

// after counts the records from index *at (read under r.mu) to the end.
func (r *Reader) after(at *uint64) uint64 {
	r.mu.Lock()
	from := *at
	r.mu.Unlock()
	last := r.l.LastIndex()
	if last+1 < from {
		return 0
	}
	return last + 1 - from
}

// Read returns the records after the last one it returned, at most
// maxRecords of them and, past the first, at most maxBytes in total. It
// waits until there is at least one or ctx ends (then it returns ctx's
// error). Damaged records are returned with Data nil and the error
// ErrCorrupt alongside the good ones, so the caller can count and skip them.
func (r *Reader) Read(ctx context.Context, maxRecords, maxBytes int) ([]Entry, error) {
	next, last, err := r.await(ctx)
	if err != nil {
		return nil, err
	}
	return r.read(next, last, maxRecords, maxBytes)
}

// Skip moves past every record after the last one read, without reading
// them, and returns how many it passed and the index of the last. It waits
// like Read until there is at least one. A reader with nothing to do with
// the records (the rules engine with no rule) passes over them this way
// without loading their segments.
func (r *Reader) Skip(ctx context.Context) (n int, last uint64, err error) {
	next, last, err := r.await(ctx)
	if err != nil {
		return 0, 0, err
	}
	r.mu.Lock()
	r.next = last + 1
	r.mu.Unlock()
	return int(last - next + 1), last, nil
}

// await waits until there is a record after the last one read, or ctx
// ends, and returns the first and last index of those unread.
func (r *Reader) await(ctx context.Context) (next, last uint64, err error) {
	for {
		r.l.mu.Lock()
		last, notify, closed := r.l.last, r.l.notify, r.l.closed
		r.l.mu.Unlock()
		r.mu.Lock()
		next := r.next
		r.mu.Unlock()
		if next <= last {
			return next, last, nil
		}
		if closed {
			return 0, 0, ErrClosed
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
}

func (r *Reader) read(next, last uint64, maxRecords, maxBytes int) ([]Entry, error) {
	r.buf = r.buf[:0]
	type span struct {
		index      uint64
		start, end int
		bad        bool
	}
	var spans []span
	var corrupt error
	for i := next; i <= last && len(spans) < maxRecords; i++ {
		d, err := r.l.readRecord(i)
		if err != nil {
			return nil, fmt.Errorf("read durable log record %d: %w", i, err)
		}
		if len(spans) > 0 && len(r.buf)+len(d) > maxBytes {
			break
		}
		if len(d) < 4 || binary.LittleEndian.Uint32(d) != crc32.Checksum(d[4:], castagnoli) {
			spans = append(spans, span{index: i, bad: true})
			corrupt = fmt.Errorf("record %d: %w", i, ErrCorrupt)
			continue
		}
		start := len(r.buf)
		r.buf = append(r.buf, d[4:]...) // copied: the library's buffer moves on
		spans = append(spans, span{index: i, start: start, end: len(r.buf)})
	}
	es := make([]Entry, len(spans))
	for i, s := range spans {
		es[i].Index = s.index
		if !s.bad {
			es[i].Data = r.buf[s.start:s.end:s.end]
		}
	}
	r.mu.Lock()
	r.next = spans[len(spans)-1].index + 1
	r.mu.Unlock()
	return es, corrupt
}

// Rewind moves the read position back to the last commit, for a reader
// that lost what it had read (it gave up a batch it could not finish).
func (r *Reader) Rewind() {
	r.mu.Lock()
	r.next = r.committed
	r.mu.Unlock()
}

// Commit records that every record up to and including index is done with,
// durably, then deletes the segments every reader has passed.
func (r *Reader) Commit(index uint64) error {
	r.mu.Lock()
	if index+1 <= r.committed {
		r.mu.Unlock()
		return nil
	}
	c := index + 1
	r.mu.Unlock()
	if err := writeFileSync(r.path, []byte(strconv.FormatUint(c, 10)+"\n")); err != nil {
		return fmt.Errorf("commit cursor of %s: %w", r.name, err)
	}
	r.mu.Lock()
	r.committed = c
	r.mu.Unlock()
	r.l.m.lag.WithLabelValues(r.name).Set(float64(r.Pending()))
	return r.l.truncate()
}

// truncate deletes the segments that lie wholly before the slowest
// reader's cursor. The library rewrites the first segment it keeps, so the
// front is moved only when that costs at most a quarter of what it frees,
// or when every reader has read everything (then nothing is rewritten).
func (l *Log) truncate() error {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.mu.Lock()
	if l.closed || len(l.readers) == 0 {
		l.mu.Unlock()
		return nil
	}
	min := uint64(1<<64 - 1)
	for _, r := range l.readers {
		r.mu.Lock()
		min = minU(min, r.committed)
		r.mu.Unlock()
	}
	last := l.last
	l.mu.Unlock()

	first, err := l.lib.Load().FirstIndex()
	if err != nil {
		return fmt.Errorf("truncate durable log: %w", err)
	}
	to := uint64(0)
	if min == last+1 && min > first {
		to = min
	} else {
		starts, err := segmentStarts(l.cfg.Dir)
		if err != nil {
			return err
		}
		whole := 0 // segments wholly before min
		for i, s := range starts {
			if i+1 < len(starts) && starts[i+1] <= min {
				whole++
				continue
			}
			if s <= min && whole >= 4 {
				to = s
			}
			break
		}
	}
	if to <= first {
		return nil
	}
	if err := l.lib.Load().TruncateFront(to); err != nil {
		return fmt.Errorf("truncate durable log to %d: %w", to, err)
	}
	l.m.truncates.Inc()
	size, err := segmentBytes(l.cfg.Dir)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.size = size
	l.mu.Unlock()
	return nil
}

func minU(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return b
}

// writeFileSync replaces path's content atomically and durably: a temp
// file, fsync, rename, fsync of the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readRecord reads record i from the library. Reads are serialised: the
// library loads a segment into its cache under a shared lock, so two
// readers loading at once corrupt the cache (TestReadersReadConcurrently).
func (l *Log) readRecord(i uint64) ([]byte, error) {
	l.readMu.Lock()
	defer l.readMu.Unlock()
	return l.lib.Load().Read(i)
}

// Scan calls fn with every record still in the log, oldest first, without
// moving any cursor (tally warms its duplicate filter this way at start).
// Damaged records are skipped. Scan must not run concurrently with Append
// at the log's front being truncated: call it before readers start.
func (l *Log) Scan(fn func(index uint64, data []byte) error) error {
	first, err := l.lib.Load().FirstIndex()
	if err != nil {
		return fmt.Errorf("scan durable log: %w", err)
	}
	last := l.LastIndex()
	for i := first; i <= last && i != 0; i++ {
		d, err := l.readRecord(i)
		if err != nil {
			return fmt.Errorf("scan durable log record %d: %w", i, err)
		}
		if len(d) < 4 || binary.LittleEndian.Uint32(d) != crc32.Checksum(d[4:], castagnoli) {
			continue
		}
		if err := fn(i, d[4:]); err != nil {
			return err
		}
	}
	return nil
}
