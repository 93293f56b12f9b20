package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tally-analytics/tally/store/backoff"
)

// portFile keeps the managed server's port under its Dir, so the server
// answers on the same port across restarts of the server and of tally: a
// clickhouse-client command or a dashboard keeps working.
const portFile = "port"

// SuperviseConfig tunes restarts. Zero values mean the defaults.
type SuperviseConfig struct {
	Config
	// Backoff spaces restarts; zero means 1 s to 30 s.
	Backoff backoff.Policy
	// MaxFailures is how many restarts in a row may fail before the
	// supervisor gives up and reports it on Failed; 0 means 5 (with the
	// default backoff, about a minute of trying).
	MaxFailures int
}

// Supervisor runs the managed server and restarts it when it exits without
// being asked, on the same port and data. tally keeps accepting into its
// durable log meanwhile; if the server cannot be brought back, Failed
// reports it and tally exits non-zero.
type Supervisor struct {
	cfg  SuperviseConfig
	log  *slog.Logger
	port int

	mu  sync.Mutex
	cur *Server

	failed chan error
	stop   chan struct{}
	done   chan struct{}
}

// Supervise starts the server on its saved port (a free one the first
// time, saved under cfg.Dir) and watches it. If the saved port is taken by
// another program, a new one is chosen, saved and logged.
func Supervise(ctx context.Context, cfg SuperviseConfig) (*Supervisor, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Backoff = cfg.Backoff.WithDefaults(time.Second, 30*time.Second)
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	s := &Supervisor{cfg: cfg, log: cfg.Log, failed: make(chan error, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create clickhouse dir: %w", err)
	}
	saved := readPort(filepath.Join(cfg.Dir, portFile))
	c := cfg.Config
	c.Port = saved
	srv, err := Start(ctx, c)
	if err != nil && saved != 0 && errors.Is(err, errPortTaken) {
		s.log.Warn("the managed ClickHouse's saved port is taken by another program; choosing a new one", "port", saved)
		c.Port = 0
		srv, err = Start(ctx, c)
	}
	if err != nil {
		return nil, err
	}
	s.cur, s.port = srv, srv.Port()
	if s.port != saved {
		if err := os.WriteFile(filepath.Join(cfg.Dir, portFile), []byte(strconv.Itoa(s.port)+"\n"), 0o640); err != nil {
			srv.Stop(context.Background())
			return nil, fmt.Errorf("save clickhouse port: %w", err)
		}
	}
	go s.watch()
	return s, nil
}

func readPort(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || p <= 0 || p > 65535 {
		return 0
	}
	return p
}

// watch restarts the server whenever it exits unasked.
func (s *Supervisor) watch() {
	defer close(s.done)
	for {
		s.mu.Lock()
		cur := s.cur
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-cur.Exited():
		}
		s.log.Warn("managed ClickHouse exited; restarting it (completions wait in the durable log)", "port", s.port)
		if !s.restart() {
			return
		}
	}
}

// restart brings the server back, with backoff; false means it gave up
// (reported on Failed) or Stop was called.
func (s *Supervisor) restart() bool {
	c := s.cfg.Config
	c.Port = s.port
	var lastErr error
	for attempt := range s.cfg.MaxFailures {
		t := time.NewTimer(s.cfg.Backoff.Delay(attempt))
		select {
		case <-s.stop:
			t.Stop()
			return false
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		srv, err := Start(ctx, c)
		cancel()
		if err == nil {
			s.mu.Lock()
			s.cur = srv
			s.mu.Unlock()
			s.log.Info("managed ClickHouse is back", "port", s.port, "attempt", attempt+1)
			return true
		}
		lastErr = err
		s.log.Error("managed ClickHouse did not restart", "attempt", attempt+1, "of", s.cfg.MaxFailures, "err", err)
	}
	s.failed <- fmt.Errorf("managed ClickHouse could not be restarted after %d attempts: %w", s.cfg.MaxFailures, lastErr)
	return false
}

// DSN is the server's native-protocol DSN; it does not change across
// restarts.
func (s *Supervisor) DSN() string { return fmt.Sprintf("clickhouse://127.0.0.1:%d", s.port) }

// Port is the server's native port on 127.0.0.1.
func (s *Supervisor) Port() int { return s.port }

// ClientCommand is a clickhouse-client command line that opens database on
// the managed server.
func (s *Supervisor) ClientCommand(database string) string {
	return fmt.Sprintf("clickhouse-client --port %d --database %s", s.port, database)
}

// Failed reports the supervisor giving up on the server.
func (s *Supervisor) Failed() <-chan error { return s.failed }

// Current is the running server (tests kill it to see it restarted).
func (s *Supervisor) Current() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Stop ends supervision and stops the server.
func (s *Supervisor) Stop(ctx context.Context) error {
	close(s.stop)
	<-s.done
	return s.Current().Stop(ctx)
}
