package chserver

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func TestFind(t *testing.T) {
	dir := t.TempDir()
	exe := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	single, debian := exe("clickhouse"), exe("clickhouse-server")
	notExe := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	onPath := func(found ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, f := range found {
				if filepath.Base(f) == name {
					return f, nil
				}
			}
			return "", exec.ErrNotFound
		}
	}
	tests := []struct {
		name       string
		lookPath   func(string) (string, error)
		candidates []string
		wantPath   string
		wantArgs   string
	}{
		{"single binary preferred", onPath(debian, single), nil, single, "server"},
		{"debian package on PATH", onPath(debian), nil, debian, ""},
		{"not on PATH, in a known dir", onPath(), []string{notExe, debian}, debian, ""},
		{"single binary in a known dir", onPath(), []string{single}, single, "server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, args, err := find(tt.lookPath, tt.candidates)
			if err != nil {
				t.Fatalf("find: %v", err)
			}
			if path != tt.wantPath || strings.Join(args, " ") != tt.wantArgs {
				t.Errorf("find = %s %q; want %s %q", path, args, tt.wantPath, tt.wantArgs)
			}
		})
	}
}

func TestFindNotInstalled(t *testing.T) {
	_, _, err := find(func(string) (string, error) { return "", exec.ErrNotFound }, []string{filepath.Join(t.TempDir(), "clickhouse-server")})
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("find error = %v; want ErrNotInstalled", err)
	}
	if !strings.Contains(err.Error(), InstallCommand) {
		t.Errorf("find error = %q; want it to name %q", err, InstallCommand)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	// A "server" that complains and exits stands for a real one that cannot
	// start: the error must say so promptly and carry its output.
	bin := filepath.Join(t.TempDir(), "clickhouse-server")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'DB::Exception: cannot lock status file' >&2\nexit 76\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Config{Dir: t.TempDir(), Binary: bin, StartTimeout: 30 * time.Second})
	if err == nil {
		t.Fatal("Start succeeded with a binary that exits at once")
	}
	for _, want := range []string{"exited", "cannot lock status file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error = %q; want it to contain %q", err, want)
		}
	}
}

// TestRestartKeepsData starts a real server, writes a row, stops it, starts
// it again on the same Dir and reads the row back. It also shows the server
// starts as the current user (root on the development machines).
func TestRestartKeepsData(t *testing.T) {
	if _, _, err := Find(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))

	s1, err := Start(ctx, Config{Dir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, s1) })
	exec1(t, s1.DSN(), "CREATE TABLE default.kept (n UInt32) ENGINE = MergeTree ORDER BY n")
	exec1(t, s1.DSN(), "INSERT INTO default.kept (n) SELECT 42")
	stop(t, s1)
	select {
	case <-s1.Exited():
	default:
		t.Error("Exited() not closed after Stop")
	}
	if err := s1.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v; want nil", err)
	}
	if _, err := open(t, s1.DSN()).Query(ctx, "SELECT 1"); err == nil {
		t.Error("server still answers after Stop")
	}

	s2, err := Start(ctx, Config{Dir: dir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, s2) })
	conn := open(t, s2.DSN())
	var n uint32
	if err := conn.QueryRow(ctx, "SELECT n FROM default.kept").Scan(&n); err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if n != 42 {
		t.Errorf("n after restart = %d; want 42", n)
	}
	// Loopback only: the config must not open other interfaces or ports.
	conf, err := os.ReadFile(filepath.Join(dir, "config.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(conf), "<listen_host>"); got != 1 || !strings.Contains(string(conf), "<listen_host>127.0.0.1</listen_host>") {
		t.Errorf("config listens on %d hosts, want only 127.0.0.1:\n%s", got, conf)
	}
	if strings.Contains(string(conf), "http_port") {
		t.Errorf("config opens an HTTP port:\n%s", conf)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "metadata")); errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no data under %s/data", dir)
	}
}

func exec1(t *testing.T, dsn, q string) {
	t.Helper()
	conn := open(t, dsn)
	defer conn.Close() // an open connection delays the server's shutdown
	if err := conn.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func open(t *testing.T, dsn string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func stop(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// A server that does not start says why in the error's first line: the
// last exception in its log, not only the stack trace that ends it.
func TestLastException(t *testing.T) {
	log := "2026.11.28 <Information> Application: starting\n" +
		"2026.11.28 <Error> Application: DB::Exception: Replica /clickhouse/tables/01/events/replicas/r1 appears to be already active.\n" +
		"0. clickhouse-server(StackTrace::StackTrace()+0x16)\n1. clickhouse-server(DB::Exception::Exception()+0x20)\n"
	if got := lastException(log); !strings.Contains(got, "appears to be already active") {
		t.Errorf("lastException = %q; want the exception's message line", got)
	}
	if got := lastException("0. frame\n1. frame\n"); got != "" {
		t.Errorf("lastException of a log without one = %q; want empty", got)
	}
}
