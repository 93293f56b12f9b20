package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/snippet"
	"github.com/tally-analytics/tally/store"
)

// Reload: SIGHUP (sent by "tally reload") makes serve re-read its config
// and check it exactly as "tally check" does. On success the event
// definitions (their typed views, the collector's catalog), the rules,
// the destinations' settings (token, pixel, test code, version, URL) and
// the per-site tracker scripts (capture triggers, mirror rules) change;
// on any problem nothing changes and every problem is logged with its
// place. A destination added gets its outbox at once; a removed one's
// outbox stays on disk (see deliver.Forwarder.SetDestinations). Other sections
// (listen, clickhouse, sites, tokens, durable_log, geoip, …) take effect
// at the next restart; a reload says which of them differ.

// pidFile is where serve writes its process id, for "tally reload".
const pidFile = "tally.pid"

// reloadCmd checks the config the way serve will, then signals the
// running tally (its pid from data_dir) to reload it.
func reloadCmd(args []string, stdout, stderr io.Writer) error {
	fs, path := commonFlags("reload", stderr)
	cfg, err := loadFromFlags(fs, path, args)
	if err != nil {
		return err // the problems are printed; the running tally is not asked
	}
	pf := cfg.DataPath(pidFile)
	b, err := os.ReadFile(pf)
	if err != nil {
		return fmt.Errorf("read %s (is tally serve running with this data_dir?): %w", pf, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("%s does not hold a process id", pf)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal tally (pid %d from %s): %w", pid, pf, err)
	}
	fmt.Fprintf(stdout, "%s: ok; asked tally (pid %d) to reload it: its log says what changed\n", *path, pid)
	return nil
}

// writePidFile records this process for "tally reload"; remove undoes it.
func writePidFile(cfg *config.File) (remove func(), err error) {
	pf := cfg.DataPath(pidFile)
	if err := os.MkdirAll(filepath.Dir(pf), 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(pf, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o640); err != nil {
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	return func() { os.Remove(pf) }, nil
}

// scriptSwitch serves the tracker scripts of the config in force; a reload
// swaps in a whole new set (ingest.ScriptSource).
type scriptSwitch struct {
	b atomic.Pointer[snippet.Builder]
}

func (s *scriptSwitch) Script(site string) (ingest.Script, bool) { return s.b.Load().Script(site) }

// reloader re-applies a config to a running server. Reloads run one at a
// time; the config in force is read without waiting for one.
type reloader struct {
	mu  sync.Mutex
	cfg atomic.Pointer[config.File] // in force
}

// reload re-reads the config at path and applies it to s; an error means
// the config in force is unchanged.
func (s *server) reload(ctx context.Context, path string) error {
	s.reloads.mu.Lock()
	defer s.reloads.mu.Unlock()
	started := time.Now()
	next, err := loadConfig(path)
	if err != nil {
		return err
	}
	cur := s.reloads.cfg.Load()
	var senders []deliver.Destination
	if !reflect.DeepEqual(next.Destinations, cur.Destinations) {
		if senders, err = rules.OpenDestinations(next.Destinations, s.httpClient); err != nil {
			return err
		}
	}
	rcfg := rules.Config{Rules: next.Rules, Destinations: next.Destinations, Definitions: next.Events}
	scripts, err := snippet.NewBuilder(snippet.Config{Sites: cur.Sites, Definitions: next.Events,
		EventPath: cur.Collector.EventPath, Mirrors: browserRulesOf(rcfg)})
	if err != nil {
		return err
	}
	if senders != nil {
		// Destinations first, so a rule naming a new one finds its outbox.
		// A rule of the old config naming a removed one may meet it gone
		// for a moment: its batch is retried and the new rules hold.
		if err := s.forwarder.SetDestinations(senders); err != nil {
			return err
		}
	}
	// Under the schema lock, as at start: collectors sharing a database
	// replace views and record rules' enabled-at times one at a time. Typed
	// views come first: a completion of a new event is accepted (the
	// catalog, below) only once its view exists.
	release, err := store.LockSchema(ctx, s.conn, s.db, cur.ClickHouse.Cluster, s.log)
	if err != nil {
		return err
	}
	err = store.SyncViewsOn(ctx, s.conn, s.db, cur.ClickHouse.Cluster, next.Events)
	if err != nil {
		err = fmt.Errorf("update typed views: %w", err)
	} else {
		err = s.engine.Reload(rcfg)
	}
	release()
	if err != nil {
		return err
	}

	s.collector.Catalog().Replace(next.Events)
	s.scripts.b.Store(scripts)
	applied := *cur
	applied.Events, applied.Rules, applied.Destinations = next.Events, next.Rules, next.Destinations
	s.reloads.cfg.Store(&applied)
	if s.ch != nil {
		next.ClickHouse.DSN = cur.ClickHouse.DSN // the managed server's, set at start
	}
	s.log.Info("config reloaded", "config", path, "events", len(next.Events), "rules", len(next.Rules),
		"restart_needed_for", restartOnly(cur, next), "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// browserRulesOf returns the mirror rules of rcfg per site, compiled apart
// from the engine so the scripts can be built before the engine swaps.
func browserRulesOf(rcfg rules.Config) func(site string) any {
	return func(site string) any { return rules.BrowserRulesOf(rcfg, site) }
}

// restartOnly lists the top-level sections that differ but apply only at
// a restart.
func restartOnly(cur, next *config.File) []string {
	a, b := *cur, *next
	a.Events, a.Rules, b.Events, b.Rules = nil, nil, nil, nil
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	for i := 0; i < t.NumField(); i++ {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			out = append(out, name)
		}
	}
	return out
}

// logReloadError logs every problem of a refused reload, each with its
// place in the file.
func (s *server) logReloadError(path string, err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			s.log.Error("reload refused: config problem", "problem", p.String())
		}
		s.log.Error("reload refused: the config in force is unchanged", "config", path, "problems", len(ps))
		return
	}
	s.log.Error("reload refused: the config in force is unchanged", "config", path, "err", err)
}
