package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store"
)

// compare measures, in one run on this machine, what the durable-log
// targets are stated against:
//
//  1. single-completion requests to a no-op fiber handler in a process of
//     its own (the ceiling of an HTTP server on this machine with this
//     tool), then the same to tally;
//  2. clickhouse-go inserting event rows straight into ClickHouse (the
//     storage ceiling), then batches of 500 to tally.
//
// tally must be running at -url with its ClickHouse at -dsn.
func compare(ctx context.Context, o options, dsn string, out io.Writer) error {
	single := o
	single.batch, single.path = 1, "api"
	batched := o
	batched.batch, batched.path = 500, "api"

	// The no-op server the ratio is taken against runs in its own process,
	// as tally does: a server in the load's own process shares its Go
	// scheduler and skips the wakeups across processes that every real
	// server pays. Its in-process rate is printed too, for reference.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	srv, err := startNoop(exe)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "== 1. single-completion requests: no-op fiber handler (its own process)")
	noop := single
	noop.base, noop.pid, noop.server = "http://"+srv.addr, srv.pid(), "no-op server"
	base, err := load(ctx, noop, out)
	srv.stop()
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	app := noopApp()
	go app.Listener(ln)
	fmt.Fprintln(out, "== 1. single-completion requests: no-op fiber handler (inside tally-load, for reference)")
	inproc := single
	inproc.base, inproc.pid = "http://"+ln.Addr().String(), 0
	inBase, err := load(ctx, inproc, out)
	// The load's client keeps its connections open: a plain Shutdown would
	// wait for them forever.
	app.ShutdownWithTimeout(time.Second)
	if err != nil {
		return err
	}
	drain := func() error {
		if o.metrics == "" {
			return nil
		}
		return waitStored(ctx, o.metrics, 2*time.Minute, out)
	}
	if err := drain(); err != nil {
		return err
	}
	fmt.Fprintln(out, "== 1. single-completion requests: tally (durable log)")
	durable, err := load(ctx, single, out)
	if err != nil {
		return err
	}

	if err := drain(); err != nil {
		return err
	}
	fmt.Fprintf(out, "== 2. clickhouse-go inserting event rows directly (%d-row batches)\n", store.DefaultFlushRows)
	raw, err := rawInsert(ctx, dsn, o.n, out)
	if err != nil {
		return err
	}
	if err := drain(); err != nil {
		return err
	}
	fmt.Fprintln(out, "== 2. batches of 500: tally (durable log)")
	batches, err := load(ctx, batched, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nsummary: single requests %.0f/s vs no-op server %.0f/s = %.0f%% (vs no-op inside tally-load %.0f/s = %.0f%%); batches of 500 %.0f completions/s vs raw insert %.0f rows/s = %.0f%%\n",
		durable.requestsPerSec, base.requestsPerSec, 100*durable.requestsPerSec/base.requestsPerSec,
		inBase.requestsPerSec, 100*durable.requestsPerSec/inBase.requestsPerSec,
		batches.completionsPerSec, raw, 100*batches.completionsPerSec/raw)
	return nil
}

// rawInsert inserts n rows shaped like the load's completions into a
// scratch database's events table, store.DefaultFlushRows per INSERT (the
// most tally's events writer puts in one), and returns rows/s.
func rawInsert(ctx context.Context, dsn string, n int, out io.Writer) (float64, error) {
	conn, err := store.Open(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	const db = "tally_load_raw"
	if err := store.Migrate(ctx, conn, db); err != nil {
		return 0, err
	}
	defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
	in := store.NewInserter(conn, db)
	now := time.Now().UTC()
	makes := []string{"volvo", "saab", "audi", "fiat", "kia"}
	cs := make([]ingest.Completion, store.DefaultFlushRows)
	var b store.EventBatch
	start := time.Now()
	done := 0
	for done < n && ctx.Err() == nil {
		size := min(len(cs), n-done)
		for i := range cs[:size] {
			cs[i] = ingest.Completion{EventID: uuid.NewString(), EventName: "viewed_car", Site: "", Source: ingest.SourceAPI,
				OccurredAt: now, ReceivedAt: now, Identity: ingest.Identity{Email: fmt.Sprintf("load%d@example.com", i%997)},
				Props: []ingest.Prop{{Name: "make", Value: makes[i%len(makes)]}, {Name: "year", Value: fmt.Sprint(2000 + i%25)}}}
		}
		b.Reset()
		b.Encode(cs[:size])
		if err := in.InsertEvents(ctx, &b); err != nil {
			return 0, err
		}
		done += size
	}
	rate := float64(done) / time.Since(start).Seconds()
	fmt.Fprintf(out, "inserted %d rows in %.2fs: %.0f rows/s\n", done, time.Since(start).Seconds(), rate)
	return rate, nil
}
