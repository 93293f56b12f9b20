package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// supervisor gives up and reports it on Failed; 0 means 5. With the
	// default backoff the waits are about 1+2+4+8+16 s ≈ 31 s (jittered to
	// 15–31 s), plus up to StartTimeout for each attempt that hangs.
	MaxFailures int
	// Window is how long a restarted server must stay up before its
	// restart counts as a success; 0 means 1 minute. A server that becomes
	// ready and dies again within it (a crash loop) adds to the same run
	// of failures, so it ends in Failed instead of restarting forever.
	Window time.Duration
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

	failed   chan error
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Supervise starts the server on its saved port (a free one the first
// time, saved in cfg.Dir/port) and watches it; cfg.Port is ignored. If the
// saved port is taken by another program at this start, a new one is
// chosen, saved and logged: the DSN then differs from the previous run's,
// which matters only to whoever kept it across tally restarts (restarts of
// the server within one Supervise keep the port).
func Supervise(ctx context.Context, cfg SuperviseConfig) (*Supervisor, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Backoff = cfg.Backoff.WithDefaults(time.Second, 30*time.Second)
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	s := &Supervisor{cfg: cfg, log: cfg.Log, failed: make(chan error, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create clickhouse dir: %w", err)
	}
	saved := readPort(filepath.Join(cfg.Dir, portFile))
	if saved != 0 && !portFree(saved) {
		s.log.Warn("the managed ClickHouse's saved port is taken by another program; choosing a new one", "port", saved)
		saved = 0
	}
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
		if saved == 0 && readPort(filepath.Join(cfg.Dir, portFile)) != 0 {
			s.log.Warn("the managed ClickHouse has a new port", "port", s.port)
		}
		if err := os.WriteFile(filepath.Join(cfg.Dir, portFile), []byte(strconv.Itoa(s.port)+"\n"), 0o640); err != nil {
			srv.Stop(context.Background())
			return nil, fmt.Errorf("save clickhouse port: %w", err)
		}
	}
	go s.watch()
	return s, nil
}

// portFree reports whether port can be bound on loopback now. The server
// binds it a moment later, so a program can still take it in between; Start
// then fails with errPortTaken and Supervise picks a new port.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
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

// watch restarts the server whenever it exits unasked. failures counts the
// restarts tried since the server last stayed up for Window: a restart that
// fails counts, and so does one whose server dies again within Window (a
// crash loop). The attempt after MaxFailures of them is not made; Failed
// reports it instead.
func (s *Supervisor) watch() {
	defer close(s.done)
	failures := 0
	readyAt := time.Now()
	for {
		s.mu.Lock()
		cur := s.cur
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-cur.Exited():
		}
		up := time.Since(readyAt)
		if up >= s.cfg.Window {
			failures = 0
		}
		lastErr := fmt.Errorf("exited after %s up: %v", up.Round(time.Millisecond), cur.waitErr)
		s.log.Warn("managed ClickHouse exited; restarting it (completions wait in the durable log)",
			"port", s.port, "up", up.Round(time.Millisecond), "err", cur.waitErr, "failures", failures)
		for {
			if failures >= s.cfg.MaxFailures {
				s.failed <- fmt.Errorf("managed ClickHouse could not be kept running after %d restarts: %w", failures, lastErr)
				return
			}
			srv, err := s.restart(failures)
			failures++
			if errors.Is(err, errStopped) {
				return
			}
			if err == nil {
				s.mu.Lock()
				s.cur = srv
				s.mu.Unlock()
				readyAt = time.Now()
				s.log.Info("managed ClickHouse is ready again", "port", s.port, "attempt", failures)
				break
			}
			lastErr = err
			s.log.Error("managed ClickHouse did not restart", "attempt", failures, "of", s.cfg.MaxFailures, "err", err)
		}
	}
}

var errStopped = errors.New("supervisor stopped")

// restart waits out the backoff for attempt and starts the server on the
// saved port; Stop interrupts both the wait and the start.
func (s *Supervisor) restart(attempt int) (*Server, error) {
	delay := s.cfg.Backoff.Delay(attempt)
	s.log.Info("restarting managed ClickHouse", "in", delay.Round(time.Millisecond), "attempt", attempt+1)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-s.stop:
		return nil, errStopped
	case <-t.C:
	}
	c := s.cfg.Config
	c.Port = s.port
	// Start blocks until the server answers; Stop must not wait for that.
	ctx, cancel := context.WithCancel(context.Background())
	relay := make(chan struct{})
	go func() {
		defer close(relay)
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	srv, err := Start(ctx, c)
	cancel()
	<-relay
	if err != nil {
		select {
		case <-s.stop:
			return nil, errStopped
		default:
		}
	}
	return srv, err // a server started as Stop was called is stopped by it
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

// Stop ends supervision, waits for the watching goroutine and stops the
// server (SIGKILL at ctx's deadline). Calling it again only stops the
// (already stopped) server again, which returns at once.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return s.Current().Stop(ctx)
}
