package chserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	// SIGKILL from outside, as the OOM killer would: not through Stop or
	// Kill, so the exit is one nobody asked for.
	if err := syscall.Kill(first.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A real process restarts here, so this polls with a deadline.
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
	bin, args, _ := Find()
	dir := t.TempDir()
	// The binary is a script that runs the real server until a file says
	// it is broken, then exits at once, as a server whose disk went bad would.
	broken := filepath.Join(dir, "broken")
	script := filepath.Join(dir, "clickhouse-wrapper")
	body := fmt.Sprintf("#!/bin/sh\n[ -e %q ] && exit 3\nexec %q %s \"$@\"\n", broken, bin, strings.Join(args, " "))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := quick(filepath.Join(dir, "ch"), t)
	cfg.Binary = script
	s, err := Supervise(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if err := os.WriteFile(broken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.Current().cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// 3 attempts with waits of at most 50+100+200 ms, each failing at once.
	select {
	case err := <-s.Failed():
		if !strings.Contains(err.Error(), "after 3 restarts") {
			t.Errorf("Failed() = %v; want it to say after 3 restarts", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the supervisor did not give up within 60s")
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop after giving up = %v; want nil", err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("second Stop = %v; want nil", err)
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
	if got := readPort(filepath.Join(dir, portFile)); got != port {
		t.Errorf("port file = %d; want %d", got, port)
	}
	if got := s.ClientCommand("tally"); got != "clickhouse-client --port "+itoa(port)+" --database tally" {
		t.Errorf("ClientCommand = %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A saved port that another program holds at start is replaced by a new
// one, which is saved.
func TestSupervisorReplacesTakenPort(t *testing.T) {
	requireClickHouse(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	if err := os.WriteFile(filepath.Join(dir, portFile), []byte(itoa(taken)+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := Supervise(context.Background(), quick(dir, t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if s.Port() == taken {
		t.Fatalf("started on the taken port %d", taken)
	}
	if got := readPort(filepath.Join(dir, portFile)); got != s.Port() {
		t.Errorf("port file = %d; want the new port %d", got, s.Port())
	}
	exec1(t, s.DSN(), "SELECT 1")
}

// A server that comes back but dies again within Window each time is a
// crash loop: it ends in Failed like restarts that fail.
func TestSupervisorGivesUpOnCrashLoop(t *testing.T) {
	requireClickHouse(t)
	s, err := Supervise(context.Background(), quick(t.TempDir(), t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	deadline := time.Now().Add(60 * time.Second)
	for kills := 1; ; kills++ {
		cur := s.Current()
		if err := syscall.Kill(cur.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// A real process restarts here, so this polls with a deadline.
		for s.Current() == cur {
			select {
			case err := <-s.Failed():
				if kills != 4 { // MaxFailures 3: three restarts, then give up
					t.Errorf("gave up after %d kills; want 4 (%v)", kills, err)
				}
				return
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %d kills: neither restarted nor gave up within 60s", kills)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
