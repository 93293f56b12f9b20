package chserver

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// InstallCommand installs the ClickHouse server on Debian and Ubuntu.
const InstallCommand = "apt-get update && apt-get install -y clickhouse-server"

// ErrNotInstalled means neither "clickhouse" nor "clickhouse-server" was found.
var ErrNotInstalled = errors.New("clickhouse server is not installed")

// Config says where the server keeps its files.
type Config struct {
	// Dir holds the generated config, the server's log and its data
	// (Dir/data). It is created if missing and may be reused: a server
	// started again on the same Dir sees the data of the previous run.
	Dir string
	// Log receives state changes (starting, ready, stopped, exited).
	Log *slog.Logger
	// Binary is the server executable; empty means search for it (see Find).
	Binary string
	// Port is the native-protocol port on 127.0.0.1; 0 means a free one,
	// chosen at each start.
	Port int
	// ExtraXML is added to the generated config inside its root element: a
	// cluster's <zookeeper>, <remote_servers>, <macros> and
	// <interserver_http_port> (tests start clusters this way).
	ExtraXML string
	// StartTimeout bounds the wait for the first answered query; 0 means
	// 60 s. A fresh server answers in 2–3 s on a 2-core machine; the rest is
	// headroom for a loaded machine and for a restart that loads many parts.
	StartTimeout time.Duration
}

// Server is a running child ClickHouse server.
type Server struct {
	cmd     *exec.Cmd
	port    int
	dir     string
	logPath string
	log     *slog.Logger

	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // the process's exit status; read after exited
	stopped chan struct{} // closed by Stop, so the reaper knows the exit was asked for
}

// candidates are checked after PATH: PATH often lacks /usr/sbin, where
// Debian's package puts clickhouse-server, when tally runs from a user shell
// or a service manager.
func candidates() []string {
	return []string{"/usr/bin/clickhouse", "/usr/local/bin/clickhouse", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"}
}

// Find returns the server executable and the arguments that come before
// --config-file: the official single binary ("clickhouse server") is preferred
// over Debian's "clickhouse-server". It returns an error wrapping
// ErrNotInstalled when neither is found.
func Find() (path string, args []string, err error) {
	return find(exec.LookPath, candidates())
}

func find(lookPath func(string) (string, error), candidates []string) (string, []string, error) {
	for _, name := range []string{"clickhouse", "clickhouse-server"} {
		if p, err := lookPath(name); err == nil {
			return p, serverArgs(p), nil
		}
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, serverArgs(p), nil
		}
	}
	return "", nil, fmt.Errorf("%w: found neither clickhouse nor clickhouse-server on PATH or in /usr/bin, /usr/sbin; install it with: %s", ErrNotInstalled, InstallCommand)
}

// serverArgs: the single binary dispatches on its first argument.
func serverArgs(path string) []string {
	if filepath.Base(path) == "clickhouse" {
		return []string{"server"}
	}
	return nil
}

// Start writes the config, starts the server and waits until it answers
// SELECT 1 on its native port. On failure the error carries the tail of the
// server's log.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("clickhouse dir %q: %w", cfg.Dir, err)
	}
	bin, args := cfg.Binary, serverArgs(cfg.Binary)
	if bin == "" {
		if bin, args, err = Find(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		return nil, fmt.Errorf("create clickhouse dir: %w", err)
	}
	// The free port is found by binding and releasing it, so another process
	// can take it before the server binds; that shows as "Address already in
	// use" in the server's log, and a new port is tried.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		s, err := start(ctx, log, dir, bin, args, cfg.Port, cfg.ExtraXML, timeout)
		if err == nil || attempt == attempts || cfg.Port != 0 || !errors.Is(err, errPortTaken) {
			return s, err
		}
		log.Warn("clickhouse port was taken before the server bound it; retrying", "attempt", attempt)
	}
}

var errPortTaken = errors.New("port already in use")

func start(ctx context.Context, log *slog.Logger, dir, bin string, args []string, port int, extra string, timeout time.Duration) (*Server, error) {
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	confPath := filepath.Join(dir, "config.xml")
	if err := writeConfig(confPath, dir, port, extra); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(bin, append(args, "--config-file="+confPath)...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	begin := time.Now()
	log.Info("starting clickhouse server", "binary", bin, "dir", dir, "port", port)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, port: port, dir: dir, logPath: logPath, log: log,
		exited: make(chan struct{}), stopped: make(chan struct{})}
	go s.reap()

	if err := s.waitReady(ctx, timeout); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(stopCtx)
		// The last 2 KB is mostly a stack trace; the reason is the last
		// exception line before it, looked for further back.
		logText := s.LogTail(256 << 10)
		tail := logText[max(0, len(logText)-2048):]
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		if why := lastException(logText); why != "" {
			err = fmt.Errorf("%w: %s", err, why)
		}
		return nil, fmt.Errorf("clickhouse server (%s, dir %s) did not become ready: %w\n--- tail of %s ---\n%s", bin, dir, err, logPath, tail)
	}
	log.Info("clickhouse server ready", "port", port, "took", time.Since(begin).Round(time.Millisecond))
	return s, nil
}

// reap owns cmd.Wait: it is the one goroutine that learns the exit.
func (s *Server) reap() {
	s.waitErr = s.cmd.Wait()
	close(s.exited)
	select {
	case <-s.stopped:
	default:
		s.log.Error("clickhouse server exited unexpectedly", "err", s.waitErr, "log", s.logPath)
	}
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("server exited: %v", s.waitErr)
		default:
		}
		if lastErr = s.ping(ctx); lastErr == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("server exited: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("no answer to SELECT 1 within %s (last error: %v): %w", timeout, lastErr, ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	opts, err := clickhouse.ParseDSN(s.DSN())
	if err != nil {
		return err
	}
	opts.DialTimeout = time.Second
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	var one uint8
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// DSN is a clickhouse-go native-protocol DSN for the server.
func (s *Server) DSN() string {
	return fmt.Sprintf("clickhouse://127.0.0.1:%d/default?dial_timeout=5s", s.port)
}

// Port is the server's native-protocol port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Pid is the server process's id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Exited is closed when the server process has ended, asked to or not.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Stop sends SIGTERM and waits for the server to exit; at ctx's deadline it
// sends SIGKILL and waits for that. Calling it again returns at once. Close
// client connections first: the server waits for open ones (up to about
// 10 s) before it exits.
func (s *Server) Stop(ctx context.Context) error {
	select {
	case <-s.stopped:
		<-s.exited
		return nil
	default:
		close(s.stopped)
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	begin := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = s.cmd.Process.Kill()
	}
	select {
	case <-s.exited:
		s.log.Info("clickhouse server stopped", "took", time.Since(begin).Round(time.Millisecond))
		return nil
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.log.Warn("clickhouse server killed at the stop deadline", "took", time.Since(begin).Round(time.Millisecond))
		return fmt.Errorf("stop clickhouse server: killed after %s: %w", time.Since(begin).Round(time.Millisecond), ctx.Err())
	}
}

// LogTail returns the last n bytes of the server's log (warnings and errors).
func (s *Server) LogTail(n int64) string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(bytes.TrimSpace(b))
}

// lastException is the last line of log that carries a ClickHouse
// exception's message, or "".
func lastException(log string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "DB::Exception: ") {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// configTemplate is the smallest config both 18.16 and current releases
// start with: <yandex> is the root element both read (<clickhouse> is only
// known to newer ones). Only the native port is opened, on loopback: tally
// talks the native protocol (18.16 rejects clickhouse-go's HTTP settings), and
// every extra port is one more chance of a collision. The one user, default,
// has no password and is reachable from loopback only. The mark cache is cut
// from the 5 GiB default to 512 MiB so a laptop or small VM is not starved.
var configTemplate = template.Must(template.New("config").Parse(`<?xml version="1.0"?>
<!-- Written by tally at every start; edits are overwritten. -->
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <tcp_port>{{.Port}}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <timezone>UTC</timezone>
  <path>{{.Data}}/</path>
  <tmp_path>{{.Data}}/tmp/</tmp_path>
  <user_files_path>{{.Data}}/user_files/</user_files_path>
  <format_schema_path>{{.Data}}/format_schemas/</format_schema_path>
  <mark_cache_size>536870912</mark_cache_size>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <profiles><default></default></profiles>
  <quotas><default></default></quotas>
{{.Extra}}
</yandex>
`))

func writeConfig(path, dir string, port int, extra string) error {
	var b bytes.Buffer
	data := struct {
		Port  int
		Data  string
		Extra string
	}{port, xmlEscape(filepath.Join(dir, "data")), extra}
	if err := configTemplate.Execute(&b, data); err != nil {
		return fmt.Errorf("render clickhouse config: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o640); err != nil {
		return fmt.Errorf("write clickhouse config: %w", err)
	}
	return nil
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Kill ends the server at once with SIGKILL, as a crash or an OOM kill
// would, and waits for it to exit. Tests use it to take a replica down.
func (s *Server) Kill() {
	select {
	case <-s.stopped:
	default:
		close(s.stopped)
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}
