package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/backoff"
)

// ErrClosed is returned by a writer's Write after Close has begun.
var ErrClosed = errors.New("store writer closed")

// queueConfig is the batching shape shared by the writers (see doc.go).
type queueConfig struct {
	table     string
	flushRows int
	flushAge  time.Duration
	maxRows   int // 0: no bound in rows
	// maxBytes bounds the queue by the memory its items hold, as size
	// measures them; 0: no bound in bytes.
	maxBytes   int64
	size       func(any) int
	minBackoff time.Duration
	maxBackoff time.Duration
	// diagnostics marks a table whose rows are a record of what happened
	// (rejections, deliveries), not customer data: at Close, once an insert
	// fails, the rest is dropped, counted and logged at once rather than
	// retried until the deadline, and Close reports no error for it.
	diagnostics bool
}

// chunk is one future INSERT: at most flushRows items, in arrival order.
type chunk[T any] struct {
	items []T
	bytes int64
	start time.Time // when the first item arrived; the age a flush waits for
}

// queue is a bounded FIFO of items flushed in chunks by one goroutine, on
// size or age, one chunk at a time, retrying a failed chunk until it is sent
// or Close's deadline passes.
type queue[T any] struct {
	cfg       queueConfig
	send      func(ctx context.Context, items []T) error
	log       *slog.Logger
	m         *metrics
	onWritten func(rows int)

	mu     sync.Mutex
	chunks []*chunk[T]
	spare  *chunk[T] // one emptied chunk kept to reuse its memory
	queued int       // accepted rows not yet written or dropped, in flight included
	bytes  int64     // what those rows hold, by cfg.size
	closed bool

	kick   chan struct{} // wakes run: a chunk filled, the first arrived, or Close
	ctx    context.Context
	cancel context.CancelFunc // called when Close's deadline passes
	done   chan struct{}

	// Owned by the run goroutine.
	failing bool
	lost    int // rows given up at Close's deadline
}

func newQueue[T any](cfg queueConfig, send func(context.Context, []T) error, log *slog.Logger, m *metrics, onWritten func(int)) *queue[T] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &queue[T]{cfg: cfg, send: send, log: log.With("table", cfg.table), m: m, onWritten: onWritten,
		kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go q.run()
	return q
}

// offer queues items. With partial false it takes all or, when they would
// push the queue past maxRows, none (ingest.ErrFull); with partial true it
// takes what fits and returns how many.
func (q *queue[T]) offer(items []T, partial bool) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, ErrClosed
	}
	n, bytes := len(items), int64(0)
	if q.cfg.maxRows > 0 {
		if room := q.cfg.maxRows - q.queued; n > room {
			if !partial {
				return 0, ingest.ErrFull
			}
			n = max(room, 0)
		}
	}
	if q.cfg.size != nil {
		for i := range items[:n] {
			sz := int64(q.cfg.size(items[i]))
			if q.cfg.maxBytes > 0 && q.bytes+bytes+sz > q.cfg.maxBytes {
				if !partial {
					return 0, ingest.ErrFull
				}
				n = i
				break
			}
			bytes += sz
		}
	}
	wake := len(q.chunks) == 0 && n > 0
	rest := items[:n]
	for len(rest) > 0 {
		last := len(q.chunks) - 1
		if last < 0 || len(q.chunks[last].items) >= q.cfg.flushRows {
			q.chunks = append(q.chunks, q.newChunk())
			last++
		}
		c := q.chunks[last]
		k := min(len(rest), q.cfg.flushRows-len(c.items))
		if q.cfg.size != nil {
			for i := range rest[:k] {
				c.bytes += int64(q.cfg.size(rest[i]))
			}
		}
		c.items = append(c.items, rest[:k]...)
		rest = rest[k:]
		wake = wake || len(c.items) >= q.cfg.flushRows
	}
	q.queued += n
	q.bytes += bytes
	q.m.queue.Set(float64(q.queued))
	if wake {
		q.wake()
	}
	return n, nil
}

// offerOrDrop queues what fits and counts the rest as dropped; after Close
// nothing is taken. It is the intake of the writers that never block.
func (q *queue[T]) offerOrDrop(items []T) {
	n, _ := q.offer(items, true)
	if dropped := len(items) - n; dropped > 0 {
		q.m.dropped.Add(float64(dropped))
	}
}

func (q *queue[T]) newChunk() *chunk[T] {
	c := q.spare
	q.spare = nil
	if c == nil {
		c = &chunk[T]{}
	}
	c.start = time.Now()
	return c
}

func (q *queue[T]) wake() {
	select {
	case q.kick <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (q *queue[T]) run() {
	defer close(q.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		c, ok := q.next(timer)
		if !ok {
			return
		}
		q.flush(c)
		q.mu.Lock()
		clear(c.items) // let the flushed items be collected
		c.items = c.items[:0]
		q.bytes -= c.bytes
		c.bytes = 0
		q.spare = c
		q.mu.Unlock()
	}
}

// next waits until the first chunk is due (full, old enough, or Close has
// begun) and takes it; it returns false when closed and empty.
func (q *queue[T]) next(timer *time.Timer) (*chunk[T], bool) {
	for {
		q.mu.Lock()
		if q.ctx.Err() != nil { // Close's deadline passed: give up what is left
			for _, c := range q.chunks {
				q.giveUp(len(c.items))
			}
			q.chunks = nil
			q.mu.Unlock()
			return nil, false
		}
		if len(q.chunks) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return nil, false
			}
			<-q.kick
			continue
		}
		c := q.chunks[0]
		wait := q.cfg.flushAge - time.Since(c.start)
		if len(c.items) >= q.cfg.flushRows || q.closed || wait <= 0 {
			q.chunks[0] = nil
			q.chunks = q.chunks[1:]
			q.mu.Unlock()
			return c, true
		}
		q.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-q.kick:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// flush sends one chunk, retrying with capped exponential backoff and
// jitter until it succeeds or Close's deadline passes. Every error is
// retried: the rows are valid by construction (see EventBatch.Encode), so a
// failure is the server's, and giving up would lose acknowledged data.
func (q *queue[T]) flush(c *chunk[T]) {
	n := len(c.items)
	for attempt := 0; ; attempt++ {
		if q.ctx.Err() != nil {
			q.mu.Lock()
			q.giveUp(n)
			q.mu.Unlock()
			return
		}
		begin := time.Now()
		ctx, cancel := context.WithTimeout(q.ctx, insertTimeout)
		err := q.send(ctx, c.items)
		cancel()
		q.m.flushDuration.Observe(time.Since(begin).Seconds())
		if err == nil {
			q.m.written.Add(float64(n))
			if q.failing {
				q.failing = false
				q.log.Info("clickhouse insert recovered", "attempts", attempt+1)
			}
			q.mu.Lock()
			q.queued -= n
			q.m.queue.Set(float64(q.queued))
			q.mu.Unlock()
			if q.onWritten != nil {
				q.onWritten(n)
			}
			return
		}
		q.m.flushErrors.Inc()
		if q.ctx.Err() != nil {
			continue // gives up above
		}
		if q.cfg.diagnostics && q.isClosed() {
			q.mu.Lock()
			q.giveUp(n)
			q.mu.Unlock()
			return
		}
		if !q.failing {
			q.failing = true
			q.log.Error("clickhouse insert failed; retrying with backoff, rows kept", "rows", n, "err", err)
		}
		t := time.NewTimer(backoff.Policy{Min: q.cfg.minBackoff, Max: q.cfg.maxBackoff}.Delay(attempt))
		select {
		case <-t.C:
		case <-q.ctx.Done():
			t.Stop()
		}
	}
}

// insertTimeout bounds one INSERT attempt, so a server that accepts the
// connection and then hangs costs a retry rather than the driver's 5-minute
// read timeout. A 10,000-row batch takes about 0.1 s on a 2-core machine;
// 60 s leaves room for a server busy merging. An attempt that timed out
// after the server had in fact taken the rows is the duplicate the events
// table's ReplacingMergeTree collapses.
const insertTimeout = time.Minute

// giveUp counts n rows as lost at Close's deadline; q.mu is held.
func (q *queue[T]) giveUp(n int) {
	q.lost += n
	q.queued -= n
	q.m.queue.Set(float64(q.queued))
	q.m.dropped.Add(float64(n))
}

func (q *queue[T]) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// close stops intake, lets run drain until ctx ends, then abandons the rest
// and waits for run to return.
func (q *queue[T]) close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
	select {
	case <-q.done:
	case <-ctx.Done():
		q.cancel()
		<-q.done
	}
	q.cancel()
	if q.lost > 0 && q.cfg.diagnostics {
		q.log.Warn("stopped without writing some rows: ClickHouse did not take them at shutdown", "table", q.cfg.table, "rows", q.lost)
		return nil
	}
	if q.lost > 0 {
		return fmt.Errorf("close %s writer: %d rows not written before the deadline: %w", q.cfg.table, q.lost, ctx.Err())
	}
	return nil
}

// depth is the number of accepted rows not yet written.
func (q *queue[T]) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued
}
