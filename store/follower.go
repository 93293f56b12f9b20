package store

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/backoff"
	"github.com/tally-analytics/tally/store/wal"
)

// FollowConfig shapes the batches a Follower hands on. Zero values mean
// the defaults.
type FollowConfig struct {
	// Name labels logs and metrics, e.g. "clickhouse" or "rules".
	Name string
	// MaxRows bounds the completions of one batch; 0 means 10,000.
	MaxRows int
	// MaxBytes bounds the log records behind one batch; 0 means 4 MiB.
	// With MaxRows it bounds the follower's memory. FollowRecords holds a
	// batch as its records, so MaxBytes is about what it holds; Follow
	// decodes the whole batch, and a decoded completion takes an 800-byte
	// struct plus a copy of its record (see Records).
	MaxBytes int
	// MaxAge is the longest a completion waits for its batch to fill; 0
	// means 1 s.
	MaxAge time.Duration
	// Backoff spaces the retries of a batch the handler failed; zero means
	// 100 ms to 10 s.
	Backoff backoff.Policy
	// Skip, when set, drops a completion before it is handed on: it is
	// given the index of the log record the completion came from (the
	// erasures of people whose completions the log still holds).
	Skip func(index uint64, c *ingest.Completion) bool
	// Idle, when set and true, means the handler has nothing to do: records
	// are passed over without being read (the rules engine with no rule
	// enabled), and the cursor still moves.
	Idle func() bool
}

// HandleFunc does a follower's work on one batch: cs are the completions
// of the log records up to and including index through. It returns nil
// when the batch is done (the follower then commits its cursor past it),
// or an error to have the same batch handed again after a backoff. It may
// modify cs. ctx ends when the follower is made to stop.
type HandleFunc func(ctx context.Context, cs []ingest.Completion, through uint64) error

// RecordsFunc is a HandleFunc given the batch's records undecoded, for a
// handler that decodes them a block at a time (Records.Blocks).
type RecordsFunc func(ctx context.Context, recs *Records, through uint64) error

// StartFunc is a RecordsFunc that may return before its batch is done,
// once it no longer needs recs, with finish to end the batch later: the
// follower then reads and starts the next batch while the last one
// finishes (the events writer sends the next INSERT while ClickHouse
// stores the last one's part). finish is called from the follower's
// goroutine, in batch order, before the cursor moves past the batch; an
// error from it has the follower read the log again from that batch. A
// nil finish means the batch is done.
type StartFunc func(ctx context.Context, recs *Records, through uint64) (finish func() error, err error)

// Follower reads the durable log from one reader's cursor, hands its
// records on in batches (by completions, bytes or age) and commits the
// cursor after each batch is handled. A batch the handler fails is
// retried, with backoff, for as long as it takes: the log keeps everything
// meanwhile, and refuses new completions once full (see package wal).
// Records that do not decode are skipped, logged and counted.
type Follower struct {
	cfg     FollowConfig
	r       *wal.Reader
	start   StartFunc
	log     *slog.Logger
	corrupt prometheus.Counter

	ctx     context.Context
	cancel  context.CancelFunc // Close's deadline passed: give up the batch in flight
	stopCtx context.Context    // done once Close is called: drain what is in the log, then return
	stop    context.CancelFunc
	done    chan struct{}

	perRecord int // completions per log record in the last batch read

	inFlight *startedBatch // started, not finished, not committed
	failures int           // batches failed in a row (failed, succeeded), for the backoff
}

// startedBatch is a batch a StartFunc returned before it was done.
type startedBatch struct {
	finish  func() error
	through uint64
	rows    int
}

// Follow starts a follower that hands each batch decoded; Close stops it.
// corrupt counts undecodable records and may be nil.
func Follow(cfg FollowConfig, r *wal.Reader, handle HandleFunc, log *slog.Logger, corrupt prometheus.Counter) *Follower {
	var cs []ingest.Completion
	maxRows := orDefault(cfg.MaxRows, defaultFollowRows)
	return FollowRecords(cfg, r, func(ctx context.Context, recs *Records, through uint64) error {
		clear(cs) // drop the last batch's strings before decoding the next
		cs = cs[:0]
		if cap(cs) > 2*maxRows {
			cs = nil // one oversized batch must not pin its memory
		}
		if cs = recs.All(cs); len(cs) == 0 {
			return nil
		}
		return handle(ctx, cs, through)
	}, log, corrupt)
}

// maxReadBytes bounds one Read of the log by a follower (FollowConfig.MaxBytes
// bounds the batch).
const maxReadBytes = 1 << 20

// Default batch bounds of a follower.
const (
	defaultFollowRows  = 10_000
	defaultFollowBytes = 4 << 20
)

// FollowRecords starts a follower that hands each batch as records;
// Close stops it. corrupt counts undecodable records and may be nil.
func FollowRecords(cfg FollowConfig, r *wal.Reader, handle RecordsFunc, log *slog.Logger, corrupt prometheus.Counter) *Follower {
	return FollowStarts(cfg, r, func(ctx context.Context, recs *Records, through uint64) (func() error, error) {
		return nil, handle(ctx, recs, through)
	}, log, corrupt)
}

// FollowStarts starts a follower that starts each batch with start, and
// may start the next one before the last has finished (StartFunc); Close
// stops it. corrupt counts undecodable records and may be nil.
func FollowStarts(cfg FollowConfig, r *wal.Reader, start StartFunc, log *slog.Logger, corrupt prometheus.Counter) *Follower {
	cfg.MaxRows = orDefault(cfg.MaxRows, defaultFollowRows)
	cfg.MaxBytes = orDefault(cfg.MaxBytes, defaultFollowBytes)
	cfg.MaxAge = orDefault(cfg.MaxAge, time.Second)
	cfg.Backoff = cfg.Backoff.WithDefaults(100*time.Millisecond, 10*time.Second)
	if cfg.Name == "" {
		cfg.Name = r.Name()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if corrupt == nil {
		corrupt = prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"})
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopCtx, stop := context.WithCancel(ctx)
	f := &Follower{cfg: cfg, r: r, start: start, log: log.With("reader", cfg.Name), corrupt: corrupt,
		ctx: ctx, cancel: cancel, stopCtx: stopCtx, stop: stop, done: make(chan struct{}), perRecord: 1}
	go f.run()
	return f
}

func (f *Follower) run() {
	defer close(f.done)
	recs := &Records{skip: f.cfg.Skip, corrupt: func(index uint64, err error) {
		f.corrupt.Inc()
		f.log.Error("skipped a log record that does not decode", "index", index, "err", err)
	}}
	for {
		// A batch in flight is finished before the follower waits for
		// more of the log, so its cursor does not wait for new traffic.
		if f.inFlight != nil && f.r.Unread() == 0 {
			if !f.finishInFlight() {
				if !f.pause() {
					return
				}
				continue
			}
		}
		recs.reset()
		if cap(recs.data) > 2*f.cfg.MaxBytes {
			recs.data = nil // one oversized record must not pin its memory
		}
		last, n, ok := f.gather(recs)
		if !ok {
			f.finishInFlight()
			return
		}
		if n == 0 {
			continue
		}
		var finish func() error
		if len(recs.spans) > 0 {
			var next startOutcome
			switch finish, next = f.startUntilDone(recs, last); next {
			case startStop:
				return // stopping, or Close's deadline passed; the records stay in the log
			case startReread:
				// The batch before this one failed: the log is read again
				// from there.
				if !f.pause() {
					return
				}
				continue
			}
		}
		// In log order: the batch before this one is finished and
		// committed first.
		if !f.finishInFlight() {
			if finish != nil {
				_ = finish() // it ends before its records are read again
			}
			if !f.pause() {
				return
			}
			continue
		}
		if finish != nil {
			f.inFlight = &startedBatch{finish: finish, through: last, rows: recs.Rows()}
			continue
		}
		f.succeeded()
		f.commit(last)
	}
}

func (f *Follower) commit(through uint64) {
	if err := f.r.Commit(through); err != nil {
		// The batch is done; a restart hands it again, and handlers
		// are idempotent by event id.
		f.log.Error("commit durable log cursor", "err", err)
	}
}

// finishInFlight finishes the batch in flight, if any, and commits past
// it. When it fails it returns false and rewinds the reader to it: what
// was read after it is read again.
func (f *Follower) finishInFlight() bool {
	b := f.inFlight
	if b == nil {
		return true
	}
	f.inFlight = nil
	if err := b.finish(); err != nil {
		f.r.Rewind()
		f.failed(b.rows, err)
		return false
	}
	f.succeeded()
	f.commit(b.through)
	return true
}

// failed counts a failed batch toward the backoff; the first of a run of
// failures is logged.
func (f *Follower) failed(rows int, err error) {
	if f.stopCtx.Err() == nil && f.failures == 0 {
		f.log.Warn("durable log reader: batch failed; its completions stay in the log and are retried", "rows", rows, "err", err)
	}
	f.failures++
}

// succeeded ends a run of failures.
func (f *Follower) succeeded() {
	if f.failures > 0 {
		f.log.Info("durable log reader is moving again", "after_attempts", f.failures+1)
		f.failures = 0
	}
}

// pause waits out the backoff after failures failed batches in a row. It
// returns false when the follower must stop: it is stopping (what failed
// stays in the log for the next start rather than holding up the
// shutdown) or Close's deadline passed.
func (f *Follower) pause() bool {
	if f.stopCtx.Err() != nil {
		return false
	}
	t := time.NewTimer(f.cfg.Backoff.Delay(max(0, f.failures-1)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.ctx.Done():
		return false
	}
}

// startOutcome is how startUntilDone ended.
type startOutcome int

const (
	startDone   startOutcome = iota // the batch started (or is done)
	startStop                       // the follower must stop
	startReread                     // the batch in flight failed: the reader is rewound to it
)

// startUntilDone starts the batch, retrying with backoff until it starts.
func (f *Follower) startUntilDone(recs *Records, through uint64) (func() error, startOutcome) {
	for {
		finish, err := f.start(f.ctx, recs, through)
		if err == nil {
			return finish, startDone
		}
		// The batch in flight is settled before this one is retried: if
		// it failed too, the log is read again from it.
		if !f.finishInFlight() {
			return nil, startReread
		}
		f.failed(recs.Rows(), err)
		if !f.pause() {
			return nil, startStop
		}
	}
}

// gather reads records until a batch is full or FlushAge old, into recs.
// It returns the index of the last record read and how many it read; ok is
// false when the writer must stop. After Close it reads what is left
// without waiting, and stops when nothing is.
func (f *Follower) gather(recs *Records) (last uint64, n int, ok bool) {
	var deadline time.Time
	for recs.Rows() < f.cfg.MaxRows && recs.Bytes() < f.cfg.MaxBytes {
		ctx, cancel := f.stopCtx, context.CancelFunc(func() {})
		switch {
		case f.stopCtx.Err() != nil:
			if f.r.Unread() == 0 {
				return last, n, n > 0
			}
			ctx = f.ctx
		case !deadline.IsZero():
			ctx, cancel = context.WithDeadline(f.stopCtx, deadline)
		}
		var es []wal.Entry
		var err error
		if f.cfg.Idle != nil && f.cfg.Idle() {
			// Nothing to do with the records: passed over unread.
			var skipped int
			var to uint64
			if skipped, to, err = f.r.Skip(ctx); err == nil {
				last, n = to, n+skipped
			}
		} else {
			// At most maxReadBytes a Read: the reader stages what it reads
			// in a buffer of its own, which keeps the size of the largest
			// Read.
			es, err = f.r.Read(ctx, f.readChunk(f.cfg.MaxRows-recs.Rows(), recs.Rows(), len(recs.spans)), min(f.cfg.MaxBytes-recs.Bytes(), maxReadBytes))
		}
		cancel()
		if err != nil && !errors.Is(err, wal.ErrCorrupt) {
			if f.ctx.Err() != nil || errors.Is(err, wal.ErrClosed) {
				return 0, 0, false
			}
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				break // the batch is FlushAge old
			}
			continue // Close was called: read what is left without waiting
		}
		for _, e := range es {
			last, n = e.Index, n+1
			if e.Data == nil {
				f.corrupt.Inc()
				f.log.Error("skipped a damaged log record", "index", e.Index)
				continue
			}
			if _, err := recs.add(e.Index, e.Data); err != nil {
				recs.report(e.Index, err)
			}
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(f.cfg.MaxAge)
		}
	}
	return last, n, true
}

// readChunk is how many records the next Read takes: a record holds one
// request, from one completion to 500 (5,000 for an import), so the count
// is what fills the rows left at the completions per record seen in this
// batch so far, or in the last one. MaxBytes bounds the Read whatever the
// count.
func (f *Follower) readChunk(rowsLeft, rows, records int) int {
	if records > 0 && rows > 0 {
		f.perRecord = max(1, rows/records)
	}
	return min(max(1, rowsLeft/f.perRecord), 1024)
}

// Pending is the number of log records not yet handled.
func (f *Follower) Pending() uint64 { return f.r.Pending() }

// Close stops the follower once it has handled what is in the log, or at
// the first batch that fails while stopping, or when ctx ends. Nothing is
// lost either way: what is not handled stays in the log for the next start,
// and Close says so in the log.
func (f *Follower) Close(ctx context.Context) error {
	f.stop()
	select {
	case <-f.done:
	case <-ctx.Done():
		f.cancel()
		<-f.done
	}
	if n := f.r.Pending(); n > 0 {
		f.log.Warn("stopped with durable log records not yet handled; they are kept for the next start", "records", n)
	}
	return nil
}
