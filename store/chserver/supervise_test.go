package chserver

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tally-analytics/tally/store/backoff"
)

func requireClickHouse(t *testing.T) {
	t.Helper()
	if _, _, err := Find(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

func quick(dir string, t *testing.T) SuperviseConfig {
	return SuperviseConfig{Config: Config{Dir: dir, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))},
		Backoff: backoff.Policy{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}, MaxFailures: 3}
}

// A server that dies is started again on the same port, with its data.
func TestSupervisorRestartsOnSamePort(t *testing.T) {
	requireClickHouse(t)
	ctx := context.Background()
	s, err := Supervise(ctx, quick(t.TempDir(), t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	port := s.Port()
	exec1(t, s.DSN(), "CREATE TABLE default.kept (n UInt32) ENGINE = MergeTree ORDER BY n")
	exec1(t, s.DSN(), "INSERT INTO default.kept (n) SELECT 7")

	first := s.Current()
	first.Kill()
	deadline := time.Now().Add(60 * time.Second)
	for s.Current() == first {
		if time.Now().After(deadline) {
			t.Fatal("the server was not restarted within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.Port() != port || s.Current().Port() != port {
		t.Errorf("restarted on port %d; want %d", s.Current().Port(), port)
	}
	var n uint32
	if err := open(t, s.DSN()).QueryRow(ctx, "SELECT n FROM default.kept").Scan(&n); err != nil || n != 7 {
		t.Errorf("after the restart: %d, %v; want 7", n, err)
	}
	select {
	case err := <-s.Failed():
		t.Errorf("Failed reported %v after a successful restart", err)
	default:
	}
}

// When the server cannot be brought back, the supervisor says so, and
// tally exits on it.
func TestSupervisorGivesUp(t *testing.T) {
	requireClickHouse(t)
	dir := t.TempDir()
	s, err := Supervise(context.Background(), quick(dir, t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	broken := filepath.Join(t.TempDir(), "clickhouse-server")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.cfg.Binary = broken // every restart now fails at once
	s.Current().Kill()
	select {
	case err := <-s.Failed():
		t.Logf("supervisor gave up: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the supervisor did not give up within 60s")
	}
}

// The port is kept under the data dir: the next start uses it again.
func TestSupervisorKeepsPortAcrossStarts(t *testing.T) {
	requireClickHouse(t)
	dir := t.TempDir()
	s, err := Supervise(context.Background(), quick(dir, t))
	if err != nil {
		t.Fatal(err)
	}
	port := s.Port()
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err = Supervise(context.Background(), quick(dir, t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if s.Port() != port {
		t.Errorf("second start on port %d; want the saved %d", s.Port(), port)
	}
	if got := s.ClientCommand("tally"); got != "clickhouse-client --port "+itoa(port)+" --database tally" {
		t.Errorf("ClientCommand = %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
