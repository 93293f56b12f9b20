package store

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store/backoff"
	"github.com/tally-analytics/tally/store/wal"
)

// LogWriterConfig tunes the events writer. Zero values mean the defaults.
type LogWriterConfig struct {
	// FlushRows is the most rows in one INSERT; 0 means 10,000. ClickHouse
	// wants few, large inserts: each makes a part per partition it touches,
	// two files per column (the events table has some 40 columns), which
	// are merged and deleted later. On this project's 2-core ext4 test
	// machine, creating those files was at times most of ClickHouse's CPU
	// during an import (perf: ext4 inode allocation); 20,000-row INSERTs
	// cost the server 7.0–9.7 s of CPU per million imported rows in three
	// runs, 10,000-row ones 6.8–15.8 s in four. But a batch is held in memory as
	// decoded completions (about 1.7 KB a row, by estimate), and with 20,000 rows,
	// serve under its 120 MB soft memory limit ran its GC nearly
	// continuously at 512 connections sending batches (peak RSS 157 MB,
	// 132,000 completions/s, against 140 MB and 213,000 with 10,000).
	FlushRows int
	// FlushBytes bounds the log records behind one INSERT; 0 means 4 MiB
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
	// Persons, when set, writes what is derived from a batch for lookups
	// by person (Inserter.InsertPersons) alongside the batch's events
	// INSERT, on its own connection; a failure of either retries the batch.
	// In the batches a crash may have left half-written, it is written
	// first and for every completion, including those whose events rows
	// are already stored (its tables absorb repeats).
	Persons func(ctx context.Context, cs []ingest.Completion) error
	// Skip drops completions before they are written (see FollowConfig).
	Skip func(index uint64, c *ingest.Completion) bool
	// StorageIP turns the client IP as received (the log keeps it whole,
	// for forwards) into what the row stores; nil stores it as received.
	StorageIP func(string) string
}

// CompletionInsertFunc stores completions in the events table in one
// INSERT, such as (*Inserter).InsertCompletions.
type CompletionInsertFunc func(ctx context.Context, cs []ingest.Completion) error

// ExistingFunc reports which of the completions are already in the events
// table, as keys made by eventKey. LogWriter asks it only for the records a
// crash may have left inserted but not committed.
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
	handle := func(ctx context.Context, cs []ingest.Completion, through uint64) error {
		if cfg.StorageIP != nil {
			for i := range cs {
				cs[i].Client.IP = cfg.StorageIP(cs[i].Client.IP)
			}
		}
		persons := cfg.Persons
		if !recovered {
			// Batches are handed in log order: every batch until the one
			// reaching lastIndex may hold rows a crash left stored.
			if persons != nil {
				if err := persons(ctx, cs); err != nil {
					m.flushErrors.Inc()
					return err
				}
				persons = nil
			}
			have, err := existing(ctx, cs)
			if err != nil {
				return err
			}
			kept := cs[:0]
			for i := range cs {
				if !have[eventKey(cs[i].EventName, cs[i].EventID)] {
					kept = append(kept, cs[i])
				}
			}
			if skipped := len(cs) - len(kept); skipped > 0 {
				log.Info("events writer: skipped completions already stored before a restart", "rows", skipped)
			}
			cs = kept
		}
		start := time.Now()
		var perr error
		var wg sync.WaitGroup
		if persons != nil {
			wg.Go(func() { perr = persons(ctx, cs) })
		}
		err := insert(ctx, cs)
		wg.Wait()
		m.flushDuration.Observe(time.Since(start).Seconds())
		if err = cmp.Or(err, perr); err != nil {
			m.flushErrors.Inc()
			if existing != nil {
				// Either INSERT may have been stored whole though it
				// failed (or the other one did): the retry asks which rows
				// are there, as after a crash.
				recovered, lastIndex = false, max(lastIndex, through)
			}
			return err
		}
		m.written.Add(float64(len(cs)))
		recovered = recovered || through >= lastIndex
		return nil
	}
	f := Follow(FollowConfig{Name: "events writer", MaxRows: cfg.FlushRows, MaxBytes: cfg.FlushBytes, MaxAge: cfg.FlushAge, Backoff: cfg.Backoff, Skip: cfg.Skip},
		r, handle, log, corrupt)
	return &LogWriter{Follower: f, corrupt: corrupt}
}

// eventKey identifies a completion the way the events table does.
func eventKey(eventName, eventID string) string { return eventName + "\x1f" + eventID }
