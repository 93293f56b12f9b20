package store

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/backoff"
	"github.com/tally-analytics/tally/store/wal"
)

// LogWriterConfig tunes the events writer. Zero values mean the defaults.
type LogWriterConfig struct {
	// FlushRows is the most rows in one INSERT; 0 means 40,000. ClickHouse
	// wants few, large inserts: each makes a part per partition it touches,
	// two files per column (the events table has some 40 columns), which
	// are merged and deleted later, and the writer's person rows make a
	// part of their own. BenchmarkImport (tally serve and tally import as
	// processes, 1M rows) stored 89–118k rows/s when the writer made
	// 10,000-row INSERTs of batches decoded whole, and 120–167k with
	// 40,000-row ones of batches held as log records and decoded once, a
	// block at a time, as they are sent (2 and 7 runs). 80,000-row INSERTs stored
	// no faster (tally import against serve: 110–126k rows/s against
	// 130–148k in the same sitting) and held 138 MB of RSS against 120–123.
	// FlushBytes bounds the records a batch holds.
	FlushRows int
	// FlushBytes bounds the log records behind one INSERT; 0 means 16 MiB
	// (see FollowConfig.MaxBytes).
	FlushBytes int
	// FlushAge is the longest a row waits for its batch to fill; 0 means 1 s,
	// so an analyst sees an event about a second after it is accepted, and a
	// quiet site still makes at most one insert per second.
	FlushAge time.Duration
	// Backoff spaces retries of a failed insert; zero means 100 ms to 10 s:
	// a restarted server is noticed within 10 s, and an outage costs at
	// most one insert attempt per 5–10 s.
	Backoff backoff.Policy
	// Persons, when set, starts writing what is derived from a batch for
	// lookups by person (Inserter.StartPersonRows). It is handed each
	// block as the events INSERT encodes it, and sends its rows at once,
	// on another connection; a failure of either retries the batch. In
	// the batches a crash may have left half-written, they are written
	// first and for every completion, including those whose events rows
	// are already stored (their tables absorb repeats).
	Persons func(ctx context.Context) PersonSink
	// Skip drops completions before they are written (see FollowConfig).
	Skip func(index uint64, c *ingest.Completion) bool
	// StorageIP turns the client IP as received (the log keeps it whole,
	// for forwards) into what the row stores; nil stores it as received.
	StorageIP func(string) string
	// Start, when set, is used instead of the insert function outside
	// recovery: it returns once a batch's last block is sent, so the
	// writer reads and sends the next batch while ClickHouse stores the
	// last one's part (18.16 writes a part at its INSERT's end), on two
	// cores the writer's decoding and encoding beside the server's
	// sorting and writing. At most two batches are in flight; the cursor
	// moves past a batch once it and those before it are stored.
	Start StartInsertFunc
}

// StartInsertFunc is a CompletionInsertFunc that returns once every block
// is sent, with wait to end the INSERT and return its outcome, such as
// (*Inserter).StartBlocks.
type StartInsertFunc func(ctx context.Context, blocks Blocks) (wait func() error, err error)

// Default batch bounds of the events writer (LogWriterConfig).
// DefaultFlushRows is also the batch the benchmarks insert straight into
// ClickHouse to compare with: the raw rate is measured with the INSERTs
// tally itself makes.
const (
	DefaultFlushRows  = 40_000
	defaultFlushBytes = 16 << 20
)

// CompletionInsertFunc stores completions in the events table in one
// INSERT, such as (*Inserter).InsertBlocks.
type CompletionInsertFunc func(ctx context.Context, blocks Blocks) error

// ExistingFunc reports which of the completions are already in the events
// table, as keys made by eventKey. LogWriter asks it only for the records a
// crash may have left inserted but not committed, a block at a time.
type ExistingFunc func(ctx context.Context, cs []ingest.Completion) (map[string]bool, error)

// LogWriter copies the durable log into the events table: a Follower of
// the log's "clickhouse" reader whose batches are INSERTs; the cursor moves
// only after an INSERT succeeded.
//
// Exactly once: after a crash the records between the committed cursor and
// the log's end at start may already be in ClickHouse (inserted, not yet
// committed). For those, the writer asks ExistingFunc which event ids are
// there and skips them, so a restart adds no duplicate row. The retry of a
// batch whose INSERT failed asks the same: a failed INSERT may still have
// been stored.
type LogWriter struct {
	*Follower
	corrupt prometheus.Counter
}

// NewLogWriter starts a writer reading r; lastIndex is the log's last index
// at start (wal.Log.LastIndex), the end of what a crash may have left
// half-done. Close stops it. reg may be nil.
func NewLogWriter(cfg LogWriterConfig, r *wal.Reader, lastIndex uint64, insert CompletionInsertFunc, existing ExistingFunc,
	log *slog.Logger, reg prometheus.Registerer) *LogWriter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics(reg, "events")
	corrupt := prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_log_records_corrupt_total",
		Help: "Durable log records skipped by the events writer because they did not decode."})
	if reg != nil {
		_ = reg.Register(corrupt)
	}
	recovered := lastIndex == 0 || existing == nil
	var started uint64 // the last record of the batches started
	// failed notes a batch that failed: its retry, and the retries of
	// those after it, ask which rows are stored (every batch started may
	// have been, whole or in part).
	failed := func() {
		m.flushErrors.Inc()
		if existing != nil {
			recovered, lastIndex = false, max(lastIndex, started)
		}
	}
	start := func(ctx context.Context, recs *Records, through uint64) (func() error, error) {
		started = max(started, through)
		recovering := !recovered
		all := Blocks(recs.Blocks)
		persons := cfg.Persons
		var have map[string]bool // events rows already stored
		if !recovered {
			// Batches are handed in log order: every batch until the one
			// reaching lastIndex may hold rows a crash left stored.
			if persons != nil {
				if err := writePersons(persons(ctx), all); err != nil {
					failed()
					return nil, err
				}
				persons = nil
			}
			have = map[string]bool{}
			err := all(insertBlockRows, func(cs []ingest.Completion) error {
				found, err := existing(ctx, cs)
				for k := range found {
					have[k] = true
				}
				return err
			})
			if err != nil {
				return nil, err
			}
			if len(have) > 0 {
				log.Info("events writer: skipped completions already stored before a restart", "rows", len(have))
			}
		}
		// The events rows: those not stored yet, with the IP as StorageIP
		// makes it (the person rows are derived from every completion as
		// read).
		var written int
		blocks := mapBlocks(all, func(c *ingest.Completion) bool {
			if len(have) > 0 && have[eventKey(c.EventName, c.EventID)] {
				return false
			}
			if cfg.StorageIP != nil {
				c.Client.IP = cfg.StorageIP(c.Client.IP)
			}
			written++
			return true
		})
		begin := time.Now()
		var personsDone chan error // the person rows' INSERT, once ending
		var sink PersonSink
		if persons != nil {
			// One decoding of the batch serves both: each block the events
			// INSERT encodes also gives its person rows, sent at once, and
			// once the last block is sent both INSERTs end while
			// ClickHouse stores their parts.
			sink = persons(ctx)
			events := blocks
			blocks = func(n int, fn func([]ingest.Completion) error) error {
				err := events(n, func(cs []ingest.Completion) error {
					if err := sink.Add(cs); err != nil {
						return err
					}
					return fn(cs)
				})
				if err == nil && personsDone == nil {
					personsDone = make(chan error, 1)
					go func() { personsDone <- sink.End() }()
				}
				return err
			}
		}
		// Outside recovery, with Start, the INSERT ends after this returns.
		var wait func() error
		var err error
		if cfg.Start != nil && recovered {
			wait, err = cfg.Start(ctx, blocks)
		} else {
			err = insert(ctx, blocks)
		}
		if sink != nil && personsDone == nil {
			if err == nil {
				// The insert stored the batch without going through its
				// blocks: its person rows are written apart, while recs is
				// still there.
				err = writePersons(sink, all)
			} else {
				sink.Abort()
			}
		}
		end := func() error {
			if err == nil && wait != nil {
				err = wait()
			}
			var perr error
			if personsDone != nil {
				perr = <-personsDone
			}
			m.flushDuration.Observe(time.Since(begin).Seconds())
			if err = cmp.Or(err, perr); err != nil {
				// Either INSERT may have been stored whole though it
				// failed (or the other one did): the retry asks which rows
				// are there, as after a crash.
				failed()
				return err
			}
			m.written.Add(float64(written))
			// Only a batch started while recovering ends the recovery: one
			// started before a failure was noted must not (the failed
			// batch and those after it are read again, and asked after).
			if recovering && through >= lastIndex {
				recovered = true
			}
			return nil
		}
		if wait == nil {
			return nil, end()
		}
		return end, nil
	}
	f := FollowStarts(FollowConfig{Name: "events writer", MaxRows: orDefault(cfg.FlushRows, DefaultFlushRows),
		MaxBytes: orDefault(cfg.FlushBytes, defaultFlushBytes), MaxAge: cfg.FlushAge, Backoff: cfg.Backoff, Skip: cfg.Skip},
		r, start, log, corrupt)
	return &LogWriter{Follower: f, corrupt: corrupt}
}

// writePersons writes the person rows of every completion blocks hands.
func writePersons(sink PersonSink, blocks Blocks) error {
	if err := blocks(insertBlockRows, sink.Add); err != nil {
		sink.Abort()
		return err
	}
	return sink.End()
}

// mapBlocks hands on the completions of blocks that keep returns true for;
// keep may change a completion.
func mapBlocks(blocks Blocks, keep func(c *ingest.Completion) bool) Blocks {
	return func(n int, fn func([]ingest.Completion) error) error {
		return blocks(n, func(cs []ingest.Completion) error {
			if kept := compact(cs, keep); len(kept) > 0 {
				return fn(kept)
			}
			return nil
		})
	}
}

// eventKey identifies a completion the way the events table does.
func eventKey(eventName, eventID string) string { return eventName + "\x1f" + eventID }
