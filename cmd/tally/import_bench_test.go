package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
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
	"github.com/tally-analytics/tally/ingest/enrich"
	"github.com/tally-analytics/tally/store"
	"github.com/tally-analytics/tally/store/chtest"
)

// BenchmarkImport imports a generated CSV of TALLY_BENCH_IMPORT_ROWS rows
// (default 1,000,000: an email, a time, three properties and hs_page_url;
// ~90 bytes a row) the way it runs in production: `tally serve` and
// `tally import` are processes of their own, serve under its default soft
// memory limit. In the same run it inserts the rows the import stores with
// clickhouse-go straight into an events table (store.DefaultFlushRows a
// batch, as tally's events writer), once before the import and once after
// it, so the rates share the machine's state. Each phase starts when the
// server has no merge running: an INSERT made while the last phase's parts
// merge is measured slower. It reports:
//
//	accepted-rows/s  rows acknowledged by POST /imports (durable in the
//	                 log): the import command's run
//	stored-rows/s    rows in ClickHouse (events), from the start
//	raw-rows/s       the mean of the two direct inserts' rates of the
//	                 rows the import stores (see importedRows; the import
//	                 ran between them; on an ext4 disk without a journal,
//	                 the rate of either swings up to 3× with the files
//	                 deleted in the minutes before: see the README)
//	raw-before-rows/s, raw-after-rows/s  each of them
//	stored/raw-%     stored-rows/s over raw-rows/s
//	raw-constant-rows/s, stored/raw-constant-%  the same for a direct
//	                 insert of near-constant rows (constantRows),
//	                 the baseline this benchmark used before
//	serve-peak-rss-MB  the serve process's peak RSS while importing
//	serve-cpu-s      the CPU time serve used until every row was stored
//	clickhouse-cpu-s-import, clickhouse-cpu-s-raw  the CPU time the test's
//	                 ClickHouse server used until every imported row was
//	                 stored, and during a direct insert (the mean of the
//	                 two); not reported against an existing server (EnvDSN)
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
	cpu := cpuTime(b, proc.PID)
	rawRows := importedRows(b, cfgPath, csvPath)
	chCPU := func() float64 { return 0 }
	if pid := chtest.ServerPid(); pid != 0 {
		chCPU = cpuTime(b, pid)
	}

	for b.Loop() {
		ch0 := chCPU()
		rawBefore := timeRawInserts(b, rawRows)
		chRaw := chCPU() - ch0
		waitForMerges(b, conn)
		// The peak RSS from here on (Linux: 5 in clear_refs resets VmHWM).
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", proc.PID), []byte("5"), 0); err != nil {
			b.Fatal(err)
		}
		cpu0, ch0 := cpu(), chCPU()
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
			// From the parts' metadata: counting the rows themselves, 20
			// times a second, would take a share of the server measured.
			if err := conn.QueryRow(context.Background(), "SELECT sum(rows) FROM system.parts WHERE database = ? AND table = 'events' AND active", db).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n >= uint64(rows) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		stored := time.Since(start)
		cpuUsed, chImport := cpu()-cpu0, chCPU()-ch0
		st, err := proc.NewStatus()
		if err != nil {
			b.Fatal(err)
		}

		waitForMerges(b, conn)
		ch0 = chCPU()
		rawAfter := timeRawInserts(b, rawRows)
		chRaw = (chRaw + chCPU() - ch0) / 2
		raw := (rawBefore + rawAfter) / 2
		waitForMerges(b, conn)
		constant := timeRawInserts(b, constantRows(rows))
		b.ReportMetric(rawBefore, "raw-before-rows/s")
		b.ReportMetric(rawAfter, "raw-after-rows/s")
		b.ReportMetric(float64(rows)/accepted.Seconds(), "accepted-rows/s")
		b.ReportMetric(float64(rows)/stored.Seconds(), "stored-rows/s")
		b.ReportMetric(raw, "raw-rows/s")
		b.ReportMetric(100*float64(rows)/stored.Seconds()/raw, "stored/raw-%")
		b.ReportMetric(constant, "raw-constant-rows/s")
		b.ReportMetric(100*float64(rows)/stored.Seconds()/constant, "stored/raw-constant-%")
		b.ReportMetric(float64(st.VmHWM)/1e6, "serve-peak-rss-MB")
		b.ReportMetric(cpuUsed, "serve-cpu-s")
		if chtest.ServerPid() != 0 {
			b.ReportMetric(chImport, "clickhouse-cpu-s-import")
			b.ReportMetric(chRaw, "clickhouse-cpu-s-raw")
		}
	}
}

// cpuTime returns a function giving the CPU time process pid has used.
func cpuTime(b *testing.B, pid int) func() float64 {
	proc, err := procfs.NewProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	return func() float64 {
		st, err := proc.Stat()
		if err != nil {
			b.Fatal(err)
		}
		return st.CPUTime()
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

// importedRows returns the rows an import of csvPath stores, for a direct
// insert (timeRawInserts) to compare with: each row read by the import's
// CSV reader (the same event ids, properties and times) and enriched as
// serve enriches it. The config and the file are read once; each call of
// the function returned reads the rows again.
func importedRows(b *testing.B, cfgPath, csvPath string) func(yield func(ingest.Completion)) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	body, err := os.ReadFile(csvPath)
	if err != nil {
		b.Fatal(err)
	}
	en, err := enrich.New(enrich.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { en.Close() })
	cat, chunk := ingest.NewCatalog(cfg.Events), ingest.CSVChunk{FileHash: sha256.Sum256(body), FirstRow: 1, FirstLine: 2}
	return func(yield func(ingest.Completion)) {
		x, err := ingest.NewCSVReader(cat, "viewed_car", bytes.NewReader(body), chunk, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		for {
			r, err := x.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil || len(r.Errors) > 0 {
				b.Fatalf("row %d: %v %v", r.Row, err, r.Errors)
			}
			en.Enrich(&r.Completion)
			yield(r.Completion)
		}
	}
}

// constantRows returns rows rows alike but for their ids, emails (50,000
// of them), URLs and times: the raw baseline before the import's own rows
// were used. Such rows compress far better than real ones, so ClickHouse
// stores them faster.
func constantRows(rows int) func(yield func(ingest.Completion)) {
	start := time.Now()
	t0 := start.Add(-365 * 24 * time.Hour)
	return func(yield func(ingest.Completion)) {
		for k := range rows {
			yield(ingest.Completion{EventID: strconv.Itoa(k), EventName: "viewed_car", Source: ingest.SourceImport,
				OccurredAt: t0.Add(time.Duration(k) * 30 * time.Second), ReceivedAt: start, Identity: ingest.Identity{Email: fmt.Sprintf("person%d@example.com", k%50_000)},
				Page:  ingest.Page{URL: "https://shop.example.com/cars/" + strconv.Itoa(k)},
				Props: []ingest.Prop{{Name: "condition", Value: "used"}, {Name: "make", Value: "volvo"}, {Name: "year", Value: "2020"}}})
		}
	}
}

// timeRawInserts inserts the completions rows yields straight into a fresh
// events table with clickhouse-go, store.DefaultFlushRows an INSERT (the
// INSERTs tally's events writer makes at most), and returns the rows/s of
// the encoding and INSERTs alone (producing the rows is not timed).
func timeRawInserts(b *testing.B, rows func(yield func(ingest.Completion))) float64 {
	dsn := chtest.DSN(b)
	db := chtest.Database(b, dsn)
	conn := chtest.Open(b, dsn)
	ctx := context.Background()
	if err := store.Migrate(ctx, conn, db); err != nil {
		b.Fatal(err)
	}
	in := store.NewInserter(conn, db)
	cs := make([]ingest.Completion, 0, store.DefaultFlushRows)
	var batch store.EventBatch
	var took time.Duration
	n := 0
	insert := func() {
		start := time.Now()
		batch.Reset()
		batch.Encode(cs)
		if err := in.InsertEvents(ctx, &batch); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		n += len(cs)
		cs = cs[:0]
	}
	rows(func(c ingest.Completion) {
		cs = append(cs, c)
		if len(cs) == cap(cs) {
			insert()
		}
	})
	if len(cs) > 0 {
		insert()
	}
	return float64(n) / took.Seconds()
}
