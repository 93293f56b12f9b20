package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/console"
	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/ingest/enrich"
	"github.com/tally-analytics/tally/rules"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/snippet"
	"github.com/tally-analytics/tally/store"
	"github.com/tally-analytics/tally/store/chserver"
	"github.com/tally-analytics/tally/store/wal"
)

// defaultMemoryLimit is the Go runtime's soft memory limit for serve, unless
// GOMEMLIMIT sets another: at full load tally holds about 60 MB live (the
// duplicate filter's 25 MB, the log's in-memory segments, one ClickHouse
// batch and one rules batch), and the limit makes the collector return
// garbage before the heap doubles past that. It is soft: a larger live heap
// still works, at more GC cost.
const defaultMemoryLimit = 120 << 20

// shutdownTimeout bounds the whole stop sequence: in-flight requests, the
// last ClickHouse flush and the forwarders' last attempt.
const shutdownTimeout = 30 * time.Second

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs, path := commonFlags("serve", stderr)
	cfg, err := loadFromFlags(fs, path, args)
	if err != nil {
		return err
	}
	log := newLogger(stderr)
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	srv, err := startServer(ctx, cfg, serverOptions{Log: log})
	if err != nil {
		return err
	}
	demo := ""
	if cfg.Demo {
		demo = "http://" + srv.Addr() + "/demo"
	}
	log.Info("tally is serving", "addr", "http://"+srv.Addr(), "admin", "http://"+srv.AdminAddr(), "console", "http://"+srv.AdminAddr()+"/console",
		"demo", demo, "config", *path)
	// RELOAD: SIGHUP re-reads the config (reload.go).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if removePid, err := writePidFile(cfg); err != nil {
		log.Warn("tally reload will not find this process", "err", err)
	} else {
		defer removePid()
	}
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping: signal received")
			break wait
		case err := <-srv.Failed():
			log.Error("stopping: a component failed", "err", err)
			break wait
		case <-hup:
			if err := srv.reload(ctx, *path); err != nil {
				srv.logReloadError(*path, err)
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return srv.Close(sctx)
}

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := commonFlags("migrate", stderr)
	print := fs.Bool("print", false, "print the schema's statements for this config (e.g. to create the tables on a new shard) instead of running them")
	cfg, err := loadFromFlags(fs, path, args)
	if err != nil {
		return err
	}
	if *print {
		// Every statement is idempotent (IF NOT EXISTS): running them again
		// creates only what a server lacks.
		fmt.Fprint(stdout, strings.Join(store.SchemaDDLOn(cfg.ClickHouse.DatabaseName(), cfg.ClickHouse.Cluster), ";\n\n")+";\n")
		return nil
	}
	log := newLogger(stderr)
	conn, stop, err := openClickHouse(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	db := cfg.ClickHouse.DatabaseName()
	if err := applySchema(ctx, conn, db, cfg, log, nil); err != nil {
		return err
	}
	v, err := store.SchemaVersion(ctx, conn, db)
	if err != nil {
		return err
	}
	log.Info("schema is current", "database", db, "version", v, "views", len(cfg.Events))
	return nil
}

func snippetCmd(args []string, stdout, stderr io.Writer) error {
	fs, path := commonFlags("snippet", stderr)
	site := fs.String("site", "", "site id from the config (default: the config's only site)")
	origin := fs.String("origin", "", "where tally is reached from the site, e.g. https://shop.example.com (default: https://<the site's first domain>, or tally's own http listener for a local domain)")
	cfg, err := loadFromFlags(fs, path, args)
	if err != nil {
		return err
	}
	if *site == "" && len(cfg.Sites) == 1 {
		*site = cfg.Sites[0].ID
	}
	for _, s := range cfg.Sites {
		if s.ID != *site {
			continue
		}
		o := *origin
		if o == "" {
			o = defaultOrigin(s.Domains[0], cfg.Listen)
		}
		fmt.Fprint(stdout, snippet.Tags(s.ID, o))
		return nil
	}
	ids := make([]string, len(cfg.Sites))
	for i, s := range cfg.Sites {
		ids[i] = s.ID
	}
	return fmt.Errorf("-site %q is not in %s (sites: %v)", *site, *path, ids)
}

// defaultOrigin is where a site's pages reach tally when -origin is not
// given. A public domain reaches it over https through the site's reverse
// proxy (tally itself serves plain http). A local domain (localhost, a
// loopback address) is a developer's machine: it reaches tally's own
// listener directly, on the listen port.
func defaultOrigin(domain, listen string) string {
	ip := net.ParseIP(domain)
	if domain != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "https://" + domain
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		port = defaultPort
	}
	return "http://" + net.JoinHostPort(domain, port)
}

// defaultPort is the public listener's port when the config names none.
const defaultPort = "8080"

// serverOptions are what tests change about a server.
type serverOptions struct {
	Log *slog.Logger
	// Listen and AdminListen override the config's listen addresses (tests
	// use 127.0.0.1:0).
	Listen, AdminListen string
	// FlushAge overrides the writer's flush age (tests shorten it).
	FlushAge time.Duration
	// Forwarder tunes delivery (tests shorten backoff and linger).
	Forwarder deliver.Config
	// HTTPClient sends to destinations; nil means a default client.
	HTTPClient *http.Client
}

// server is a running tally: every component, started in dependency order
// and stopped in reverse.
type server struct {
	log         *slog.Logger
	ch          *chserver.Supervisor // nil when clickhouse.dsn points elsewhere
	conn        driver.Conn
	db          string
	wal         *wal.Log
	chReader    *wal.Reader
	rulesReader *wal.Reader
	erasures    *store.Erasures
	identities  *rules.Identities
	eraser      *store.Eraser
	writer      *store.LogWriter
	rulesFeed   *store.Follower
	rejects     *store.RejectionWriter
	delivers    *store.DeliveryWriter
	enricher    *enrich.Enricher
	forwarder   *deliver.Forwarder
	pipeline    *ingest.Pipeline
	collector   *ingest.Collector
	ln          net.Listener
	admin       *ingest.Admin
	live        *console.Live
	// The retention job: stopRetention ends it, retentionDone says it has.
	stopRetention func()
	retentionDone chan struct{}
	adminLn       net.Listener
	failed        chan error

	// What a reload changes (reload.go).
	engine     *rules.Engine
	scripts    scriptSwitch
	reloads    reloader
	httpClient *http.Client // the destinations' (nil: the default)
}

// startServer brings tally up: ClickHouse (managed or given), schema and
// views, writers, enrichment, the forwarding outbox and rules engine, the
// tracker builds and the collector, and binds the listener before it
// returns. On error everything already started is stopped.
func startServer(ctx context.Context, cfg *config.File, opt serverOptions) (_ *server, err error) {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{log: log, failed: make(chan error, 4), db: cfg.ClickHouse.DatabaseName()}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			s.Close(sctx)
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	step := time.Now()
	if s.ch, err = startManagedClickHouse(ctx, cfg, log); err != nil {
		return nil, err
	}
	if s.ch != nil {
		// A managed server that dies is restarted (completions wait in the
		// durable log); one that cannot be brought back stops tally.
		go func() {
			select {
			case err := <-s.ch.Failed():
				s.failed <- err
			case <-ctx.Done():
			}
		}()
	}
	if s.conn, err = store.OpenOn(ctx, cfg.ClickHouse.DSN, cfg.ClickHouse.Cluster); err != nil {
		return nil, err
	}
	inserter := store.NewInserter(s.conn, s.db)
	s.rejects = store.NewRejectionWriter(store.RejectionWriterConfig{}, inserter.InsertRejections, log, reg)
	s.delivers = store.NewDeliveryWriter(inserter.InsertDeliveries, log, reg)
	// Outcomes go to the deliveries table and to the console's watchers.
	// The live stream asks the engine and the enricher only once they run.
	s.live = console.NewLive(console.LiveConfig{
		Matching:  func(c *ingest.Completion) []string { return s.engine.Matching(c) },
		StorageIP: func(ip string) string { return s.enricher.StorageIP(ip) },
	})
	dlog := deliveryLogs{s.delivers, s.live}
	var (
		engine *rules.Engine
		outbox *outboxBatch
	)
	if err = applySchema(ctx, s.conn, s.db, cfg, log, func() error {
		dests, err := rules.OpenDestinations(cfg.Destinations, opt.HTTPClient)
		if err != nil {
			return err
		}
		fwdCfg := opt.Forwarder
		fwdCfg.Dir = cfg.DataPath("outbox")
		if s.forwarder, err = deliver.NewForwarder(fwdCfg, dests, dlog, log, reg); err != nil {
			return err
		}
		outbox = &outboxBatch{fwd: s.forwarder}
		// The rules' enabled-at times: the state file of this collector, or,
		// on a cluster, the rule_state table every collector shares.
		var ruleState rules.StateStore
		if cfg.ClickHouse.Cluster != "" {
			ruleState = sharedRuleState{store.NewRuleStates(ctx, s.conn, s.db)}
		}
		engine, err = rules.NewEngine(rules.Config{Rules: cfg.Rules, Destinations: cfg.Destinations, Definitions: cfg.Events,
			DataDir: cfg.DataPath(), State: ruleState}, outbox, dlog, log, reg)
		return err
	}); err != nil {
		return nil, err
	}
	log.Info("clickhouse ready", "database", s.db, "managed", s.ch != nil, "took", time.Since(step).Round(time.Millisecond))

	// The durable log, and its two readers, registered before either can
	// commit so neither loses records to the other's truncation.
	logCfg := cfg.DurableLog
	logCfg.Dir = cfg.DataPath("log")
	if s.wal, err = wal.Open(logCfg, log, reg); err != nil {
		return nil, err
	}
	chReader, err := s.wal.Reader("clickhouse")
	if err != nil {
		return nil, err
	}
	rulesReader, err := s.wal.Reader("rules")
	if err != nil {
		return nil, err
	}
	s.chReader, s.rulesReader = chReader, rulesReader
	s.identities = rules.NewIdentities(0)
	if s.erasures, err = store.OpenErasures(cfg.DataPath("erasures.json")); err != nil {
		return nil, err
	}
	if err := s.erasures.Prune(min(chReader.Committed(), rulesReader.Committed())); err != nil {
		return nil, err
	}
	size, maxSize := s.wal.Size()
	log.Info("durable log open", "dir", logCfg.Dir, "bytes", size, "max_bytes", maxSize,
		"pending_clickhouse", chReader.Pending(), "pending_rules", rulesReader.Pending())

	dedup := store.NewDeduper(store.DeduperConfig{})
	step = time.Now()
	n, err := dedup.Warm(ctx, s.conn, s.db, 7*24*time.Hour)
	if err != nil {
		return nil, err
	}
	// Completions in the log may not be in ClickHouse yet (a crash, an
	// outage): they are known too, so a client's retry is not taken twice.
	inLog := 0
	if err := s.wal.Scan(func(_ uint64, data []byte) error {
		cs, err := store.DecodeRecord(nil, data)
		for i := range cs {
			dedup.FirstSeen(cs[i].EventName, cs[i].EventID)
		}
		inLog += len(cs)
		if err != nil {
			log.Warn("duplicate filter: skipped a log record that does not decode", "err", err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	log.Info("duplicate filter warmed", "keys", n, "from_log", inLog, "took", time.Since(step).Round(time.Millisecond))

	if s.enricher, err = enrich.New(enrich.Config{GeoIP: cfg.GeoIP, Privacy: cfg.Privacy}, log); err != nil {
		return nil, err
	}

	scripts, err := snippet.NewBuilder(snippet.Config{Sites: cfg.Sites, Definitions: cfg.Events,
		EventPath: cfg.Collector.EventPath, Mirrors: engine.BrowserRules})
	if err != nil {
		return nil, err
	}
	s.engine, s.httpClient = engine, opt.HTTPClient
	s.reloads.cfg.Store(cfg)
	s.scripts.b.Store(scripts)

	// The log's readers: ClickHouse and the rules engine, each at its own
	// pace, neither on the request path.
	s.writer = store.NewLogWriter(store.LogWriterConfig{FlushAge: opt.FlushAge, StorageIP: s.enricher.StorageIP, Persons: inserter.StartPersonRows, Start: inserter.StartBlocks,
		Skip: s.erasures.Drop},
		chReader, s.wal.LastIndex(), inserter.InsertBlocks, inserter.Existing, log, reg)
	s.rulesFeed = store.Follow(store.FollowConfig{Name: "rules engine", MaxRows: rulesBatchRows, MaxAge: rulesBatchAge, Idle: engine.Idle, Skip: s.erasures.Drop},
		rulesReader, func(ctx context.Context, cs []ingest.Completion, _ uint64) error {
			outbox.reset()
			if err := engine.Write(ctx, cs); err != nil {
				return err
			}
			return outbox.flush(ctx)
		}, log, nil)

	// Enrichment, then the user data the visitor gave earlier (identify
	// traits are not kept in the browser; see rules.Identities).
	enrichment := func(c *ingest.Completion) {
		s.enricher.Enrich(c)
		s.identities.FillOne(c)
	}
	s.pipeline = ingest.NewPipeline(ingest.PipelineConfig{Sink: store.NewLogSink(s.wal), Dedup: dedup, Enrich: enrichment,
		Observe: s.live.Observe, Log: log, Registerer: reg})
	s.collector, err = ingest.NewCollector(ingest.Config{
		CollectorConfig: cfg.Collector,
		Sites:           cfg.Sites,
		Tokens:          cfg.APITokens,
		Definitions:     cfg.Events,
		Pipeline:        s.pipeline,
		OnIdentify:      s.identities.Learn,
		Rejections:      s.rejects,
		Reader:          store.NewReader(s.conn, s.db),
		// Imports go through their own pipeline: the same log and
		// enrichment, and a duplicate filter of their own (the row
		// numbers accepted of each file, as ranges) beside the events
		// table, so a million imported rows never push live event ids out
		// of the collector's.
		Import: ingest.ImportConfig{
			Pipeline: ingest.NewPipeline(ingest.PipelineConfig{Sink: store.NewLogSink(s.wal), Enrich: s.enricher.Enrich, Observe: s.live.Observe, Log: log}),
			Filter:   store.NewImportFilter(s.conn, s.db),
		},
		Scripts:    &s.scripts,
		Ready:      s.ready,
		Pages:      demoPages(cfg),
		Log:        log,
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	listen := opt.Listen
	if listen == "" {
		listen = cfg.Listen
	}
	if listen == "" {
		listen = ":" + defaultPort
	}
	if s.ln, err = net.Listen("tcp", listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", listen, err)
	}
	go func() {
		if err := s.collector.App().Listener(s.ln); err != nil {
			s.failed <- fmt.Errorf("http server: %w", err)
		}
	}()

	// Retention, enforced once a day (18.16 has no TTL).
	rctx, stopRetention := context.WithCancel(context.Background())
	s.retentionDone = make(chan struct{})
	s.stopRetention = stopRetention
	go func() {
		defer close(s.retentionDone)
		store.NewRetention(cfg.Retention, s.conn, s.db, cfg.ClickHouse.Cluster, log).Run(rctx)
	}()

	// Operators' endpoints on their own listener (loopback by default).
	s.eraser = store.NewEraser(s.conn, s.db, cfg.ClickHouse.Cluster)
	s.admin = ingest.NewAdmin(ingest.AdminConfig{Ready: s.ready, Warnings: s.warnings, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Erase: s.erase, Replay: s.replay, Console: s.newConsole(), ConsoleStream: s.live, Tokens: cfg.APITokens})
	adminAddr := opt.AdminListen
	if adminAddr == "" {
		adminAddr = cfg.AdminAddr()
	}
	if s.adminLn, err = net.Listen("tcp", adminAddr); err != nil {
		return nil, fmt.Errorf("listen on admin_listen %s: %w", adminAddr, err)
	}
	go func() {
		if err := s.admin.App().Listener(s.adminLn); err != nil {
			s.failed <- fmt.Errorf("admin http server: %w", err)
		}
	}()
	return s, nil
}

// Addr is the address the collector listens on.
func (s *server) Addr() string { return s.ln.Addr().String() }

// AdminAddr is the address of the operators' listener.
func (s *server) AdminAddr() string { return s.adminLn.Addr().String() }

// Failed reports a component that stopped on its own.
func (s *server) Failed() <-chan error { return s.failed }

// readyHighWater is the durable log's and the outboxes' fill at which tally
// reports not ready: at 90% a load balancer has time to shift traffic
// before appends are refused.
const readyHighWater = 0.9

func (s *server) ready(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	if fill := s.wal.Fill(); fill >= readyHighWater {
		return fmt.Errorf("durable log %.0f%% full (ClickHouse or the rules engine is behind)", fill*100)
	}
	if full := s.forwarder.Backlogged(readyHighWater); len(full) > 0 {
		return fmt.Errorf("forwarding outbox above %.0f%% for %v", readyHighWater*100, full)
	}
	return nil
}

// warnings are the destinations an operator must look at: paused ones
// (their credentials are refused; their events wait in the outbox) and
// failing ones. They do not make tally unready: completions are still
// accepted and kept.
func (s *server) warnings() []string {
	var out []string
	for _, h := range s.forwarder.Health() {
		switch h.State {
		case deliver.StatePaused:
			out = append(out, fmt.Sprintf("destination %s (%s) paused since %s: %s; %d events wait in its outbox; fix its credentials and run tally reload",
				h.Destination, h.Type, h.Since.UTC().Format(time.RFC3339), h.Reason, h.Backlog))
		case deliver.StateRetrying:
			out = append(out, fmt.Sprintf("destination %s (%s) failing since %s: %s; %d events wait in its outbox",
				h.Destination, h.Type, h.Since.UTC().Format(time.RFC3339), h.Reason, h.Backlog))
		}
	}
	return out
}

// Close stops intake first, then drains every queue into ClickHouse and the
// outbox, then stops ClickHouse, each step under ctx, logging its duration.
func (s *server) Close(ctx context.Context) error {
	var errs []error
	stop := func(name string, f func(context.Context) error) {
		t := time.Now()
		if err := f(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
		}
		s.log.Info("stopped", "component", name, "took", time.Since(t).Round(time.Millisecond))
	}
	if s.collector != nil {
		stop("http", s.collector.Shutdown)
	}
	if s.admin != nil {
		stop("admin http", s.admin.Shutdown)
	}
	if s.stopRetention != nil {
		stop("retention", func(context.Context) error { s.stopRetention(); <-s.retentionDone; return nil })
	}
	// What the log holds and the readers have not reached stays in the log
	// for the next start when the deadline passes first.
	if s.writer != nil {
		stop("events writer", s.writer.Close)
	}
	if s.rulesFeed != nil {
		stop("rules engine", s.rulesFeed.Close)
	}
	if s.forwarder != nil {
		stop("forwarder", s.forwarder.Close)
	}
	if s.wal != nil {
		stop("durable log", func(context.Context) error { return s.wal.Close() })
	}
	if s.rejects != nil {
		stop("rejection writer", s.rejects.Close)
	}
	if s.delivers != nil {
		stop("delivery writer", s.delivers.Close)
	}
	if s.enricher != nil {
		stop("enrichment", func(context.Context) error { return s.enricher.Close() })
	}
	if s.conn != nil {
		stop("clickhouse connection", func(context.Context) error { return s.conn.Close() })
	}
	if s.ch != nil {
		stop("managed clickhouse", s.ch.Stop)
	}
	return errors.Join(errs...)
}

// startManagedClickHouse starts the local ClickHouse server under
// data_dir/clickhouse when clickhouse.dsn is empty, supervised (restarted
// on the same port if it dies), and points the config at it. It returns nil
// when a DSN is configured.
func startManagedClickHouse(ctx context.Context, cfg *config.File, log *slog.Logger) (*chserver.Supervisor, error) {
	if cfg.ClickHouse.DSN != "" {
		return nil, nil
	}
	ch, err := chserver.Supervise(ctx, chserver.SuperviseConfig{Config: chserver.Config{Dir: cfg.DataPath("clickhouse"), Log: log}})
	if err != nil {
		return nil, err
	}
	cfg.ClickHouse.DSN = ch.DSN()
	log.Info("managed clickhouse: query it with", "command", ch.ClientCommand(cfg.ClickHouse.DatabaseName()), "port", ch.Port())
	return ch, nil
}

// applySchema brings the database to the current schema and the typed
// views to the configured events.
// Collectors sharing a database take the schema lock first, so one at a
// time migrates, replaces views and records when its rules were enabled
// (then, which may be nil, runs under the lock too).
func applySchema(ctx context.Context, conn store.Conn, db string, cfg *config.File, log *slog.Logger, then func() error) error {
	release, err := store.LockSchema(ctx, conn, db, cfg.ClickHouse.Cluster, log)
	if err != nil {
		return err
	}
	defer release()
	if err := store.MigrateOn(ctx, conn, db, cfg.ClickHouse.Cluster); err != nil {
		return err
	}
	if err := store.SyncViewsOn(ctx, conn, db, cfg.ClickHouse.Cluster, cfg.Events); err != nil {
		return err
	}
	if then != nil {
		return then()
	}
	return nil
}

// openClickHouse connects to the configured server, or starts the managed
// one for the duration of a command; stop closes both.
func openClickHouse(ctx context.Context, cfg *config.File, log *slog.Logger) (conn driver.Conn, stop func(), err error) {
	ch, err := startManagedClickHouse(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	stopCH := func() {
		if ch != nil {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			ch.Stop(sctx)
		}
	}
	if conn, err = store.OpenOn(ctx, cfg.ClickHouse.DSN, cfg.ClickHouse.Cluster); err != nil {
		stopCH()
		return nil, nil, err
	}
	return conn, func() { conn.Close(); stopCH() }, nil
}

// replayWindow is how far back a replay reaches: Meta refuses events older
// than 7 days; the hour absorbs clock skew and time in the outbox.
const replayWindow = 7*24*time.Hour - time.Hour

// replay deliberately forwards stored history to one rule: the completions
// of its events since r.Since (never earlier than replayWindow ago), read
// back from ClickHouse. Rows keep neither ads consent nor the user data
// beyond email, so browser completions are not replayed, and API and import
// completions go with what the row has (see store.History).
func (s *server) replay(ctx context.Context, r ingest.ReplayRequest) (any, error) {
	events := s.engine.RuleEvents(r.Rule)
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: %q is not an enabled rule", ingest.ErrReplayInput, r.Rule)
	}
	since, earliest := r.Since.UTC(), time.Now().UTC().Add(-replayWindow)
	clamped := since.Before(earliest)
	if clamped {
		since = earliest
	}
	out := &outboxBatch{fwd: s.forwarder}
	read, matched := 0, 0
	err := store.History(ctx, s.conn, s.db, events, since, 1000, func(cs []ingest.Completion) error {
		out.reset()
		n, err := s.engine.Replay(ctx, r.Rule, cs, out)
		if err != nil {
			return err
		}
		read, matched = read+len(cs), matched+n
		return out.flush(ctx)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("replayed history to a rule", "rule", r.Rule, "since", since, "read", read, "forwarded", matched)
	return map[string]any{"rule": r.Rule, "since": since, "since_clamped_to_7_days": clamped, "read": read, "forwarded": matched}, nil
}

// eraseWait bounds how long an erasure waits for the log's readers to
// pass what the log held when it was asked (normally a second or two; long
// only when ClickHouse is down, and then the erasure is answered 503 and
// should be asked again: the log's part of it already holds).
const eraseWait = time.Minute

// erase removes a person everywhere tally keeps them: the durable log (its
// readers drop the person's completions it still holds), ClickHouse (events
// through every visitor id their email was seen with, their deliveries,
// rejections naming them, identity links), the forwarding outbox and the
// debug completions the console keeps. The audit row and the log line name
// the person by a hash only.
func (s *server) erase(ctx context.Context, r ingest.EraseRequest) (any, error) {
	p := store.Person{Emails: []string{r.Email}, VisitorIDs: []string{r.VisitorID}, ExternalIDs: []string{r.ExternalID}}.Normalize()
	if p.Empty() {
		return nil, fmt.Errorf("%w: give email, visitor_id or external_id", ingest.ErrEraseInput)
	}
	subject := p.Subject()
	p, err := s.eraser.Resolve(ctx, p)
	if err != nil {
		return nil, err
	}
	through := s.wal.LastIndex()
	dropped, err := s.erasures.Add(p, through)
	if err != nil {
		return nil, err
	}
	// The person's rows reach ClickHouse and the outbox only through the
	// log's readers: once both have passed what the log held, the deletes
	// below see every row there is.
	wctx, cancel := context.WithTimeout(ctx, eraseWait)
	defer cancel()
	for min(s.chReader.Committed(), s.rulesReader.Committed()) <= through {
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("erasure registered for the durable log, but ClickHouse has not caught up within %v; ask again to finish it", eraseWait)
		case <-time.After(20 * time.Millisecond):
		}
	}
	ids, err := s.eraser.EventIDs(ctx, p)
	if err != nil {
		return nil, err
	}
	// The outbox first (and no outcome recorded for an attempt in flight),
	// then the delivery rows waiting to be written: the deletes below must
	// come after every row they are to delete.
	idSet := make(map[string]bool, len(ids))
	for _, id := range ids {
		idSet[id] = true
	}
	n, err := s.forwarder.Erase(idSet)
	if err != nil {
		return nil, err
	}
	if err := s.delivers.Drain(wctx); err != nil {
		return nil, err
	}
	counts, err := s.eraser.Erase(ctx, p, ids)
	if err != nil {
		return nil, err
	}
	counts.Outbox, counts.Log = uint64(n), dropped()
	s.identities.Forget(func(visitor string, id ingest.Identity) bool {
		return p.Matches(&ingest.Completion{VisitorID: visitor, Identity: id})
	})
	s.live.Forget(p.Matches)
	if err := s.eraser.Record(ctx, subject, counts); err != nil {
		return nil, err
	}
	if err := s.erasures.Prune(min(s.chReader.Committed(), s.rulesReader.Committed())); err != nil {
		s.log.Warn("prune pending erasures", "err", err)
	}
	s.log.Info("erased a person", "subject_sha256", subject, "events", counts.Events, "rejections", counts.Rejections,
		"deliveries", counts.Deliveries, "identities", counts.Identities, "outbox", counts.Outbox, "log", counts.Log)
	return counts, nil
}

// The rules engine reads the log in batches of at most 1,000 completions
// or 200 ms: a matching conversion reaches the outbox within about 0.2 s,
// and the outbox's fsync is shared by the whole batch.
const (
	rulesBatchRows = 1000
	rulesBatchAge  = 200 * time.Millisecond
)

// outboxBatch collects what the rules engine forwards from one batch of the
// log, and puts it in the forwarder's outbox with one transaction per
// destination. It is used by the rules reader's goroutine only.
type outboxBatch struct {
	fwd     *deliver.Forwarder
	pending []deliver.Queued
}

// Enqueue implements rules.Forwarder: it only collects.
func (o *outboxBatch) Enqueue(_ context.Context, destination string, origin deliver.Origin, it deliver.Item) error {
	o.pending = append(o.pending, deliver.Queued{Destination: destination, Origin: origin, Item: it})
	return nil
}

func (o *outboxBatch) reset() { clear(o.pending); o.pending = o.pending[:0] }

func (o *outboxBatch) flush(ctx context.Context) error {
	if len(o.pending) == 0 {
		return nil
	}
	return o.fwd.EnqueueBatch(ctx, o.pending)
}

// sharedRuleState adapts store's rule_state table to rules.StateStore.
type sharedRuleState struct{ t *store.RuleStates }

func (s sharedRuleState) LoadRuleStates() (map[string]rules.RuleState, error) {
	st, err := s.t.Load()
	if err != nil {
		return nil, err
	}
	out := make(map[string]rules.RuleState, len(st))
	for k, v := range st {
		out[k] = rules.RuleState(v)
	}
	return out, nil
}

func (s sharedRuleState) SaveRuleStates(rs map[string]rules.RuleState) error {
	in := make(map[string]store.RuleState, len(rs))
	for k, v := range rs {
		in[k] = store.RuleState(v)
	}
	return s.t.Save(in)
}

// deliveryLogs records delivery outcomes in each of its logs.
type deliveryLogs []deliver.DeliveryLog

func (ls deliveryLogs) Record(ds []deliver.Delivery) {
	for _, l := range ls {
		l.Record(ds)
	}
}

// demoPages serves the demo page for the first site at /demo, when the
// config turns it on.
func demoPages(cfg *config.File) map[string][]byte {
	if !cfg.Demo || len(cfg.Sites) == 0 {
		return nil
	}
	return map[string][]byte{"/demo": snippet.DemoPage(cfg.Sites[0].ID)}
}
