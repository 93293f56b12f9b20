package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/procfs"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store"
	"github.com/tally-analytics/tally/store/chtest"
)

// BenchmarkImport imports a generated CSV of TALLY_BENCH_IMPORT_ROWS rows
// (default 1,000,000: an email, a time, three properties and hs_page_url;
// ~90 bytes a row) the way it runs in production: `tally serve` and
// `tally import` are processes of their own, serve under its default soft
// memory limit. In the same run it inserts as many rows with clickhouse-go
// straight into an events table (store.DefaultFlushRows a batch, as tally's
// events writer), once before the import and once after it, so the rates
// share the machine's state. Each phase starts when the server has no merge
// running: an INSERT made while the last phase's parts merge is measured
// slower. It reports:
//
//	accepted-rows/s  rows acknowledged by POST /imports (durable in the
//	                 log): the import command's run
//	stored-rows/s    rows in ClickHouse (events), from the start
//	raw-rows/s       the mean of the two direct inserts' rates (the import
//	                 ran between them; on an ext4 disk, the rate of either
//	                 swings up to 3× with the file system's state)
//	raw-before-rows/s, raw-after-rows/s  each of them
//	stored/raw-%     stored-rows/s over raw-rows/s
//	serve-peak-rss-MB  the serve process's peak RSS while importing
//	serve-cpu-s      the CPU time serve used until every row was stored
//
// Run: go test ./cmd/tally -run '^$' -bench Import -benchtime 1x
func BenchmarkImport(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("TALLY_BENCH_IMPORT_ROWS")); err == nil && v > 0 {
		rows = v
	}
	dsn := chtest.DSN(b)
	db := chtest.Database(b, dsn)
	conn := chtest.Open(b, dsn)
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "tally.yaml")
	yaml := fmt.Sprintf("listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\ndata_dir: %q\nclickhouse: {dsn: %q, database: %s}\n",
		filepath.Join(dir, "data"), dsn, db) + serveYAML
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	serve := startChild(b, cfgPath)
	bin, err := buildTally()
	if err != nil {
		b.Fatal(err)
	}
	csvPath := filepath.Join(dir, "history.csv")
	writeImportCSV(b, csvPath, rows)
	proc, err := procfs.NewProc(serve.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	cpu := func() float64 {
		st, err := proc.Stat()
		if err != nil {
			b.Fatal(err)
		}
		return st.CPUTime()
	}

	for b.Loop() {
		rawBefore := rawInsertRate(b, rows)
		waitForMerges(b, conn)
		// The peak RSS from here on (Linux: 5 in clear_refs resets VmHWM).
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", proc.PID), []byte("5"), 0); err != nil {
			b.Fatal(err)
		}
		cpu0 := cpu()
		start := time.Now()
		out, err := exec.Command(bin, "import", "-config", cfgPath, "-url", serve.addr, "-token", testAPIToken, "-event", "viewed_car", csvPath).CombinedOutput()
		if err != nil {
			b.Fatalf("tally import: %v\n%s", err, out)
		}
		accepted := time.Since(start)
		if want := fmt.Sprintf("imported   %d ", rows); !strings.Contains(string(out), want) {
			b.Fatalf("tally import did not import every row (want %q):\n%s", want, out)
		}
		for {
			var n uint64
			if err := conn.QueryRow(context.Background(), "SELECT count() FROM `"+db+"`.events WHERE source = 'import'").Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n >= uint64(rows) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		stored := time.Since(start)
		cpuUsed := cpu() - cpu0
		st, err := proc.NewStatus()
		if err != nil {
			b.Fatal(err)
		}

		waitForMerges(b, conn)
		rawAfter := rawInsertRate(b, rows)
		raw := (rawBefore + rawAfter) / 2
		b.ReportMetric(rawBefore, "raw-before-rows/s")
		b.ReportMetric(rawAfter, "raw-after-rows/s")
		b.ReportMetric(float64(rows)/accepted.Seconds(), "accepted-rows/s")
		b.ReportMetric(float64(rows)/stored.Seconds(), "stored-rows/s")
		b.ReportMetric(raw, "raw-rows/s")
		b.ReportMetric(100*float64(rows)/stored.Seconds()/raw, "stored/raw-%")
		b.ReportMetric(float64(st.VmHWM)/1e6, "serve-peak-rss-MB")
		b.ReportMetric(cpuUsed, "serve-cpu-s")
	}
}

// waitForMerges returns when the server runs no merge (or after a minute).
func waitForMerges(b *testing.B, conn driver.Conn) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.merges").Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	b.Log("merges still running after a minute")
}

// writeImportCSV writes rows rows for viewed_car, oldest first over the
// past year, as an export sorted by time would be.
func writeImportCSV(b *testing.B, path string, rows int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "email,occurred_at,make,year,condition,hs_page_url")
	start := time.Now().Add(-365 * 24 * time.Hour).UnixMilli()
	step := int64(365*24*time.Hour/time.Millisecond) / int64(rows)
	makes := []string{"volvo", "saab", "audi", "bmw"}
	for i := range rows {
		fmt.Fprintf(w, "person%d@example.com,%d,%s,%d,%s,https://shop.example.com/cars/%d\n",
			i%50_000, start+int64(i)*step, makes[i%4], 1990+i%35, []string{"new", "used"}[i%2], i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// rawInsertRate inserts rows completions like the benchmark's straight
// into a fresh events table, in batches of store.DefaultFlushRows (the
// INSERTs tally's events writer makes at most), and returns rows/s.
func rawInsertRate(b *testing.B, rows int) float64 {
	dsn := chtest.DSN(b)
	db := chtest.Database(b, dsn)
	conn := chtest.Open(b, dsn)
	ctx := context.Background()
	if err := store.Migrate(ctx, conn, db); err != nil {
		b.Fatal(err)
	}
	in := store.NewInserter(conn, db)
	const batchRows = store.DefaultFlushRows
	cs := make([]ingest.Completion, batchRows)
	var batch store.EventBatch
	start := time.Now()
	t0 := time.Now().Add(-365 * 24 * time.Hour)
	for done := 0; done < rows; done += batchRows {
		n := min(batchRows, rows-done)
		for i := range n {
			k := done + i
			cs[i] = ingest.Completion{EventID: strconv.Itoa(k), EventName: "viewed_car", Source: ingest.SourceImport,
				OccurredAt: t0.Add(time.Duration(k) * 30 * time.Second), ReceivedAt: start, Identity: ingest.Identity{Email: fmt.Sprintf("person%d@example.com", k%50_000)},
				Page:  ingest.Page{URL: "https://shop.example.com/cars/" + strconv.Itoa(k)},
				Props: []ingest.Prop{{Name: "condition", Value: "used"}, {Name: "make", Value: "volvo"}, {Name: "year", Value: "2020"}}}
		}
		batch.Reset()
		batch.Encode(cs[:n])
		if err := in.InsertEvents(ctx, &batch); err != nil {
			b.Fatal(err)
		}
	}
	return float64(rows) / time.Since(start).Seconds()
}
