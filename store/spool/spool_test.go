package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func open(t testing.TB, cfg Config) *Spool {
	t.Helper()
	s, err := Open(cfg, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func keys(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

func TestEnqueueLeaseAckRetry(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	s := open(t, Config{Path: path})
	t0 := time.Now()

	added, err := s.Enqueue(ctx, []Item{
		{Key: "a", Payload: []byte("A")},
		{Key: "b", Payload: []byte("B"), NotBefore: t0.Add(time.Hour)},
		{Key: "c", Payload: []byte("C")},
		{Key: "a", Payload: []byte("A2")}, // repeated within the call
	})
	if err != nil || added != 3 {
		t.Fatalf("Enqueue = %d, %v; want 3, nil", added, err)
	}
	added, err = s.Enqueue(ctx, []Item{{Key: "c", Payload: []byte("C2")}})
	if err != nil || added != 0 {
		t.Fatalf("Enqueue(duplicate) = %d, %v; want 0, nil", added, err)
	}
	if n, b := s.Len(); n != 3 || b != 6 {
		t.Errorf("Len = %d, %d; want 3 items, 6 bytes", n, b)
	}

	got, err := s.Lease(10, t0)
	if err != nil {
		t.Fatal(err)
	}
	if k := strings.Join(keys(got), ","); k != "a,c" {
		t.Fatalf("Lease = %s; want a,c (b is not due)", k)
	}
	if string(got[0].Payload) != "A" || string(got[1].Payload) != "C" {
		t.Errorf("payloads = %q, %q; want the first enqueued", got[0].Payload, got[1].Payload)
	}
	if again, _ := s.Lease(10, t0); len(again) != 0 {
		t.Errorf("second Lease = %v; want nothing while a and c are leased", keys(again))
	}
	if next, ok := s.NextDue(); !ok || !next.Equal(t0.Add(time.Hour).Truncate(0)) {
		t.Errorf("NextDue = %v, %v; want %v", next, ok, t0.Add(time.Hour))
	}

	if err := s.Ack([]string{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Retry([]Retry{{Key: "c", NotBefore: t0.Add(2 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Lease(10, t0.Add(90*time.Minute))
	if k := strings.Join(keys(got), ","); k != "b" {
		t.Fatalf("Lease(+90m) = %s; want b", k)
	}
	if err := s.Defer([]Retry{{Key: "b", NotBefore: t0.Add(150 * time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Lease(10, t0.Add(119*time.Minute)); len(got) != 0 {
		t.Fatalf("Lease(+119m) = %v; want nothing (b deferred, c retried)", keys(got))
	}
	got, _ = s.Lease(10, t0.Add(150*time.Minute))
	if k := strings.Join(keys(got), ","); k != "c,b" {
		t.Fatalf("Lease(+150m) = %s; want c,b in due order", k)
	}
	s.Release(keys(got))
	got, _ = s.Lease(10, t0.Add(3*time.Hour))
	if k := strings.Join(keys(got), ","); k != "c,b" {
		t.Fatalf("Lease(+3h) = %s; want c,b", k)
	}
	// Retry counts an attempt, Defer does not.
	if got[0].Attempts != 1 || got[1].Attempts != 0 {
		t.Errorf("attempts = %d, %d; want 1, 0", got[0].Attempts, got[1].Attempts)
	}

	// Everything not acknowledged survives a reopen, leases do not.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, []Item{{Key: "z"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v; want ErrClosed", err)
	}
	s2 := open(t, Config{Path: path})
	got, _ = s2.Lease(10, t0.Add(3*time.Hour))
	if k := strings.Join(keys(got), ","); k != "c,b" {
		t.Fatalf("Lease after reopen = %s; want c,b", k)
	}
	if got[0].Attempts != 1 || !got[0].NotBefore.Equal(t0.Add(2*time.Hour).Truncate(0)) || got[0].EnqueuedAt.IsZero() {
		t.Errorf("c after reopen = %+v; want 1 attempt, not before +2h, an enqueue time", got[0])
	}
	if n, b := s2.Len(); n != 2 || b != 4 {
		t.Errorf("Len after reopen = %d, %d; want 2, 4", n, b)
	}
}

func TestFull(t *testing.T) {
	ctx := context.Background()
	s := open(t, Config{Path: filepath.Join(t.TempDir(), "q.db"), MaxItems: 3, MaxBytes: 100})
	if _, err := s.Enqueue(ctx, []Item{{Key: "a"}, {Key: "b"}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Enqueue(ctx, []Item{{Key: "c"}, {Key: "d"}})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Enqueue beyond MaxItems = %v; want ErrFull", err)
	}
	if n, _ := s.Len(); n != 2 {
		t.Errorf("Len = %d; want 2 (a refused call stores nothing)", n)
	}
	if !s.Full(0.6) || s.Full(0.7) {
		t.Errorf("Full(0.6), Full(0.7) = %v, %v; want true, false at 2 of 3", s.Full(0.6), s.Full(0.7))
	}
	if _, err := s.Enqueue(ctx, []Item{{Key: "a"}}); err != nil {
		t.Errorf("Enqueue(duplicate) when nearly full = %v; want nil", err)
	}
	if _, err := s.Enqueue(ctx, []Item{{Key: "big", Payload: make([]byte, 100)}}); !errors.Is(err, ErrFull) {
		t.Errorf("Enqueue beyond MaxBytes = %v; want ErrFull", err)
	}
	leased, _ := s.Lease(10, time.Now())
	if err := s.Ack(keys(leased)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, []Item{{Key: "c"}, {Key: "d"}, {Key: "e"}}); err != nil {
		t.Errorf("Enqueue after Ack freed room = %v; want nil", err)
	}
}

func TestConcurrentEnqueueGroupCommit(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "q.db")}, discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// Every key is enqueued by two writers: stored once.
				k := fmt.Sprintf("k%d-%d", w/2, i)
				if _, err := s.Enqueue(ctx, []Item{{Key: k, Payload: []byte(k)}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n, _ := s.Len(); n != writers/2*each {
		t.Errorf("Len = %d; want %d", n, writers/2*each)
	}
	got, _ := s.Lease(10_000, time.Now())
	if len(got) != writers/2*each {
		t.Errorf("Lease = %d items; want %d", len(got), writers/2*each)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			vals[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if vals["tally_spool_enqueued_total"] != writers/2*each || vals["tally_spool_duplicates_total"] != writers/2*each || vals["tally_spool_items"] != writers/2*each {
		t.Errorf("metrics = %v; want %d enqueued, %d duplicates, %d items", vals, writers/2*each, writers/2*each, writers/2*each)
	}
}

// TestCrashChild is the child side of TestSurvivesKill: it enqueues from
// several goroutines and reports each acknowledged key on stdout until it
// is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("TALLY_SPOOL_CRASH_PATH")
	if path == "" {
		t.Skip("child process of TestSurvivesKill")
	}
	s, err := Open(Config{Path: path}, discard(), nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("g%d-%06d", g, i)
				if _, err := s.Enqueue(context.Background(), []Item{{Key: k, Payload: []byte("payload " + k)}}); err != nil {
					fmt.Println("error", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(out, "ack", k)
				out.Flush() // one write(2) per line: in the pipe before the next enqueue
				mu.Unlock()
			}
		}()
	}
	select {}
}

func TestSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "TALLY_SPOOL_CRASH_PATH="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatalf("child: %s", line)
		}
		if k, ok := strings.CutPrefix(line, "ack "); ok {
			acked[k] = true
		}
		if len(acked) == 400 {
			// SIGKILL while the goroutines are mid-commit.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	_, _ = io.Copy(io.Discard, stdout) // lines written before the kill landed
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child exit = %v; want killed by SIGKILL", err)
	}
	if len(acked) < 400 {
		t.Fatalf("child acknowledged %d items; want at least 400", len(acked))
	}

	s := open(t, Config{Path: path})
	got, err := s.Lease(1_000_000, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, it := range got {
		stored[it.Key] = string(it.Payload)
	}
	missing := 0
	for k := range acked {
		if p, ok := stored[k]; !ok || p != "payload "+k {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged items lost or damaged after SIGKILL", missing, len(acked))
	}
	if n, _ := s.Len(); n != len(got) {
		t.Errorf("Len = %d; want %d (counters consistent with items)", n, len(got))
	}
	t.Logf("child acknowledged %d items before SIGKILL; spool holds %d", len(acked), len(got))
}

func BenchmarkEnqueueParallel(b *testing.B) {
	s := open(b, Config{Path: filepath.Join(b.TempDir(), "q.db"), MaxItems: 10_000_000, MaxBytes: 1 << 34})
	payload := make([]byte, 1024)
	var mu sync.Mutex
	n := 0
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			k := fmt.Sprintf("k%d", n)
			mu.Unlock()
			if _, err := s.Enqueue(context.Background(), []Item{{Key: k, Payload: payload}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
