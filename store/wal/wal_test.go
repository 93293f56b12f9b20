package wal

import (
	"context"
	"errors"
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func appendN(t *testing.T, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := l.Append(context.Background(), []byte(fmt.Sprintf("record-%06d", i))); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
	}
}

func readAll(t *testing.T, r *Reader) []string {
	t.Helper()
	var got []string
	for r.Pending() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		es, err := r.Read(ctx, 100, 1<<20)
		cancel()
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for _, e := range es {
			got = append(got, string(e.Data))
		}
		if err := r.Commit(es[len(es)-1].Index); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	return got
}

func TestAppendReadAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	l := open(t, Config{Dir: dir})
	a, _ := l.Reader("clickhouse")
	b, _ := l.Reader("rules")
	appendN(t, l, 0, 10)
	// a reads and commits 4; b reads 10 but commits nothing.
	es, err := a.Read(context.Background(), 4, 1<<20)
	if err != nil || len(es) != 4 {
		t.Fatalf("Read = %d entries, %v; want 4, nil", len(es), err)
	}
	if err := a.Commit(es[3].Index); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(context.Background(), 100, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open(t, Config{Dir: dir})
	defer l.Close()
	a, _ = l.Reader("clickhouse")
	b, _ = l.Reader("rules")
	if got := readAll(t, a); len(got) != 6 || got[0] != "record-000004" {
		t.Errorf("clickhouse after restart read %v; want records 4..9", got)
	}
	if got := readAll(t, b); len(got) != 10 || got[0] != "record-000000" {
		t.Errorf("rules after restart read %d records starting %q; want all 10 (nothing committed)", len(got), got)
	}
}

func TestGroupCommitSharesFsync(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir()})
	defer l.Close()
	const writers, each = 32, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := l.Append(context.Background(), []byte(fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := l.LastIndex(); got != writers*each {
		t.Fatalf("LastIndex = %d; want %d", got, writers*each)
	}
	// 32 writers at once share fsyncs: fewer commits than appends.
	var m dto.Metric
	l.m.commits.Write(&m)
	if commits := m.GetCounter().GetValue(); commits >= writers*each {
		t.Errorf("%v commits for %d appends from %d writers; want them shared", commits, writers*each, writers)
	}
	r, _ := l.Reader("x")
	seen := map[string]bool{}
	for _, s := range readAll(t, r) {
		if seen[s] {
			t.Fatalf("record %q read twice", s)
		}
		seen[s] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("read %d distinct records; want %d", len(seen), writers*each)
	}
}

func TestFullRefusesAndFrees(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir(), MaxBytes: 4096, SegmentBytes: 512})
	defer l.Close()
	r, _ := l.Reader("only")
	rec := make([]byte, 100)
	var n int
	for {
		_, err := l.Append(context.Background(), rec)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n > 100 {
			t.Fatal("Append never answered ErrFull")
		}
	}
	if n == 0 {
		t.Fatal("nothing fit")
	}
	readAll(t, r) // commits everything: the log empties
	if _, err := l.Append(context.Background(), rec); err != nil {
		t.Fatalf("Append after the reader caught up = %v; want nil", err)
	}
}

func TestSegmentsDeletedOnlyWhenEveryReaderPassed(t *testing.T) {
	dir := t.TempDir()
	l := open(t, Config{Dir: dir, SegmentBytes: 256})
	defer l.Close()
	fast, _ := l.Reader("fast")
	slow, _ := l.Reader("slow")
	appendN(t, l, 0, 200)
	before := countSegments(t, dir)
	if before < 10 {
		t.Fatalf("%d segments; the test wants many", before)
	}
	readAll(t, fast)
	if got := countSegments(t, dir); got != before {
		t.Errorf("segments after only the fast reader passed = %d; want %d kept for the slow one", got, before)
	}
	got := readAll(t, slow)
	if len(got) != 200 || got[0] != "record-000000" {
		t.Errorf("slow reader read %d records from %q; want all 200", len(got), got[0])
	}
	if after := countSegments(t, dir); after > 1 {
		t.Errorf("segments after both passed = %d; want at most the tail", after)
	}
}

func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	l := open(t, Config{Dir: dir})
	appendN(t, l, 0, 3)
	l.Close()
	starts, _ := segmentStarts(dir)
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%020d", starts[len(starts)-1])), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{50, 'p', 'a', 'r'}) // a length of 50 with 3 bytes behind it
	f.Close()

	l = open(t, Config{Dir: dir})
	defer l.Close()
	r, _ := l.Reader("r")
	if got := readAll(t, r); len(got) != 3 {
		t.Fatalf("after repair read %v; want the 3 whole records", got)
	}
	appendN(t, l, 3, 1)
	if got := readAll(t, r); len(got) != 1 || got[0] != "record-000003" {
		t.Fatalf("after repair and append read %v; want record-000003", got)
	}
}

func TestCorruptRecordIsReported(t *testing.T) {
	dir := t.TempDir()
	l := open(t, Config{Dir: dir})
	appendN(t, l, 0, 3)
	l.Close()
	starts, _ := segmentStarts(dir)
	path := filepath.Join(dir, fmt.Sprintf("%020d", starts[0]))
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0xff // flip a byte inside the second record
	os.WriteFile(path, b, 0o640)

	l = open(t, Config{Dir: dir})
	defer l.Close()
	r, _ := l.Reader("r")
	es, err := r.Read(context.Background(), 10, 1<<20)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read error = %v; want ErrCorrupt", err)
	}
	good := 0
	for _, e := range es {
		if e.Data != nil {
			good++
		}
	}
	if len(es) != 3 || good != 2 {
		t.Fatalf("Read = %d entries, %d good; want 3 entries, 2 good", len(es), good)
	}
}

func TestReadWaitsForAppend(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir()})
	defer l.Close()
	r, _ := l.Reader("r")
	got := make(chan string, 1)
	go func() {
		es, err := r.Read(context.Background(), 10, 1<<20)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(es[0].Data)
	}()
	appendN(t, l, 7, 1)
	select {
	case s := <-got:
		if s != "record-000007" {
			t.Fatalf("Read = %q; want record-000007", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after an Append")
	}
}

func countSegments(t *testing.T, dir string) int {
	t.Helper()
	s, err := segmentStarts(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(s)
}

func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 32, 128} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			l, err := Open(Config{Dir: b.TempDir()}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := make([]byte, 1024) // as store/spool's BenchmarkEnqueueParallel, for comparison
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			b.SetParallelism(max(1, writers/2)) // 2 cores here
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(context.Background(), rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func TestScanSeesEveryRecordWithoutMovingCursors(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir()})
	defer l.Close()
	r, _ := l.Reader("r")
	appendN(t, l, 0, 5)
	var got []string
	if err := l.Scan(func(_ uint64, d []byte) error { got = append(got, string(d)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[4] != "record-000004" {
		t.Errorf("Scan saw %v; want records 0..4", got)
	}
	if p := r.Pending(); p != 5 {
		t.Errorf("reader pending after Scan = %d; want 5", p)
	}
}

// Readers read at once: each over many segments, so they load segments
// into the library's cache at the same time. (The library loads a segment
// under a shared lock; unserialised, two readers corrupt its cache and
// panic or read the wrong record.)
func TestReadersReadConcurrently(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir(), SegmentBytes: 256})
	defer l.Close()
	const n = 4000
	appendN(t, l, 0, n)
	var wg sync.WaitGroup
	for k := range 4 {
		r, err := l.Reader(fmt.Sprintf("r%d", k))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := 0; i < n; {
				es, err := r.Read(context.Background(), 1+k, 1<<20)
				if err != nil {
					t.Errorf("reader %d: %v", k, err)
					return
				}
				for _, e := range es {
					if want := fmt.Sprintf("record-%06d", i); string(e.Data) != want {
						t.Errorf("reader %d: record %d = %q; want %q", k, e.Index, e.Data, want)
						return
					}
					i++
				}
			}
		})
	}
	wg.Wait()
}

// Skip passes over what is unread, waits for more when nothing is, and
// leaves Read at the first record appended after it; the cursor moves only
// with Commit.
func TestSkipPassesOverUnread(t *testing.T) {
	l := open(t, Config{Dir: t.TempDir()})
	defer l.Close()
	r, _ := l.Reader("r")
	appendN(t, l, 0, 5)
	if es, err := r.Read(context.Background(), 2, 1<<20); err != nil || len(es) != 2 {
		t.Fatalf("Read = %d records, %v; want 2", len(es), err)
	}
	n, last, err := r.Skip(context.Background())
	if err != nil || n != 3 || last != 5 {
		t.Fatalf("Skip = %d, %d, %v; want 3 records through index 5", n, last, err)
	}
	if p := r.Pending(); p != 5 {
		t.Errorf("Pending after Skip = %d; want 5 until a Commit", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := r.Skip(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Skip with nothing unread = %v; want it to wait until ctx ends", err)
	}
	appendN(t, l, 5, 1)
	if err := r.Commit(last); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 1 || got[0] != "record-000005" {
		t.Errorf("read after Skip = %q; want the one record appended after it", got)
	}
}
