package console

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/store"
)

// Store answers the console's reads of ClickHouse (store.ConsoleReader).
type Store interface {
	Rejections(ctx context.Context, limit int) ([]ingest.Rejection, error)
	Truncated(ctx context.Context, now time.Time, limit int) ([]ingest.Completion, error)
	EventCounts(ctx context.Context, now time.Time) (map[string]store.EventCount, error)
	OutcomeCounts(ctx context.Context, since time.Time) (map[string]map[string]uint64, error)
	Deliveries(ctx context.Context, rule string, since time.Time, limit int) ([]store.Delivery, error)
	MirrorReports(ctx context.Context, events []string, since time.Time) ([]store.MirrorReport, error)
}

// Rule is a configured rule as the console shows it.
type Rule struct {
	Name        string
	Events      []string
	Destination string
	// DestinationType is the destination's type (meta_capi, …); the
	// deduplication view is for meta_capi rules.
	DestinationType string
	ForwardedName   string
	Mirror          bool // mirror_in_browser
	Enabled         bool
	EnabledAt       time.Time // when it was enabled in its current form
}

// LogState is the durable log and how far each of its readers is behind.
type LogState struct {
	Bytes, MaxBytes int64
	LastIndex       uint64
	Readers         []ReaderState
}

// ReaderState is one reader of the durable log (ClickHouse, the rules).
type ReaderState struct {
	Name      string
	Committed uint64 // the first record it has not finished (every one before it is done)
	Pending   uint64 // records it has yet to finish: its lag
}

// Fill is how full the log is, 0 to 1.
func (s LogState) Fill() float64 {
	if s.MaxBytes <= 0 {
		return 0
	}
	return float64(s.Bytes) / float64(s.MaxBytes)
}

// Config is what the console reads. Every function is called per page
// view; a nil one leaves its part of the page out.
type Config struct {
	Live        *Live
	Store       Store
	Definitions func() []ingest.Definition
	Rules       func() []Rule
	Health      func() []deliver.Health
	Durable     func() LogState
	Log         *slog.Logger
	// Now is the clock (tests set it); nil is time.Now.
	Now func() time.Time
}

// Console serves the pages under /console (the live stream itself is
// served by the admin listener from Live).
type Console struct {
	cfg   Config
	pages map[string]*template.Template
	mux   *http.ServeMux
}

//go:embed assets
var assets embed.FS

// pageNames are the console's pages, in the navigation's order; "" is the
// live page at /console.
var pageNames = []struct{ path, title string }{
	{"", "Live"}, {"rejections", "Rejections"}, {"events", "Events"}, {"rules", "Rules"},
	{"destinations", "Destinations"}, {"dedup", "Deduplication"},
}

// New builds the console.
func New(cfg Config) *Console {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	funcs := template.FuncMap{"pct": pct, "ts": ts, "join": strings.Join}
	for _, p := range pageNames {
		file := p.path
		if file == "" {
			file = "live"
		}
		c.pages[p.path] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+file+".html"))
	}
	static, _ := fs.Sub(assets, "assets")
	c.mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /console", c.page("", c.live))
	c.mux.HandleFunc("GET /console/rejections", c.page("rejections", c.rejections))
	c.mux.HandleFunc("GET /console/events", c.page("events", c.events))
	c.mux.HandleFunc("GET /console/rules", c.page("rules", c.rules))
	c.mux.HandleFunc("GET /console/destinations", c.page("destinations", c.destinations))
	c.mux.HandleFunc("GET /console/dedup", c.page("dedup", c.dedup))
	return c
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// view is what the layout renders: the page's data, and the problems met
// while reading it (ClickHouse down shows as a note, not a broken page).
type view struct {
	Title, Active string
	Problems      []string
	Data          any
}

// NavItems lists the navigation for the layout.
func (v view) NavItems() []map[string]any {
	out := make([]map[string]any, len(pageNames))
	for i, n := range pageNames {
		href := "/console"
		if n.path != "" {
			href += "/" + n.path
		}
		out[i] = map[string]any{"Href": href, "Title": n.title, "Active": n.path == v.Active}
	}
	return out
}

// page wraps a page's reader: it renders what read returns, with the
// problems it noted.
func (c *Console) page(name string, read func(r *http.Request, problem func(error)) any) http.HandlerFunc {
	title := ""
	for _, p := range pageNames {
		if p.path == name {
			title = p.title
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		v := view{Title: title, Active: name}
		v.Data = read(r, func(err error) {
			if err != nil {
				v.Problems = append(v.Problems, err.Error())
			}
		})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := c.pages[name].Execute(w, v); err != nil {
			c.cfg.Log.Warn("console page", "page", name, "err", err)
		}
	}
}

// readCtx bounds a page's reads: a slow ClickHouse makes a page with a note,
// not one that never comes. It does not derive from the request's context:
// behind fiber's adaptor that is fasthttp's RequestCtx, whose Done races
// with the listener's shutdown.
func readCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (c *Console) live(*http.Request, func(error)) any {
	var events []string
	for _, d := range c.definitions() {
		events = append(events, d.Name)
	}
	return events
}

const (
	listLimit     = 100
	deliveryLimit = 10
)

func (c *Console) rejections(_ *http.Request, problem func(error)) any {
	ctx, cancel := readCtx()
	defer cancel()
	var (
		rejs   []ingest.Rejection
		truncs []ingest.Completion
		err    error
	)
	if c.cfg.Store != nil {
		rejs, err = c.cfg.Store.Rejections(ctx, listLimit)
		problem(err)
		truncs, err = c.cfg.Store.Truncated(ctx, c.cfg.Now(), listLimit)
		problem(err)
	}
	return map[string]any{"Rejections": rejs, "Truncated": truncs}
}

func (c *Console) definitions() []ingest.Definition {
	if c.cfg.Definitions == nil {
		return nil
	}
	return c.cfg.Definitions()
}

// eventRow is one definition with its recent counts.
type eventRow struct {
	Def       ingest.Definition
	Hour, Day uint64
}

func (c *Console) events(_ *http.Request, problem func(error)) any {
	ctx, cancel := readCtx()
	defer cancel()
	counts := map[string]store.EventCount{}
	if c.cfg.Store != nil {
		got, err := c.cfg.Store.EventCounts(ctx, c.cfg.Now())
		problem(err)
		if got != nil {
			counts = got
		}
	}
	var rows []eventRow
	for _, d := range c.definitions() {
		n := counts[d.Name]
		rows = append(rows, eventRow{Def: d, Hour: n.Hour, Day: n.Day})
	}
	return rows
}

// ruleView is one rule with its outcomes of the last day and its newest
// deliveries.
type ruleView struct {
	Rule
	Outcomes   []outcomeCount
	Deliveries []store.Delivery
}

type outcomeCount struct {
	Status string
	N      uint64
}

// window is how far back the rules and deduplication pages look.
const window = 24 * time.Hour

func (c *Console) rules(r *http.Request, problem func(error)) any {
	ctx, cancel := readCtx()
	defer cancel()
	only := r.URL.Query().Get("rule")
	limit := deliveryLimit
	if only != "" {
		limit = listLimit
	}
	since := c.cfg.Now().Add(-window)
	var counts map[string]map[string]uint64
	if c.cfg.Store != nil {
		var err error
		counts, err = c.cfg.Store.OutcomeCounts(ctx, since)
		problem(err)
	}
	var out []ruleView
	for _, rule := range c.ruleList() {
		if only != "" && rule.Name != only {
			continue
		}
		v := ruleView{Rule: rule}
		for st, n := range counts[rule.Name] {
			v.Outcomes = append(v.Outcomes, outcomeCount{st, n})
		}
		slices.SortFunc(v.Outcomes, func(a, b outcomeCount) int { return strings.Compare(a.Status, b.Status) })
		if c.cfg.Store != nil {
			ds, err := c.cfg.Store.Deliveries(ctx, rule.Name, since, limit)
			problem(err)
			v.Deliveries = ds
		}
		out = append(out, v)
	}
	return out
}

func (c *Console) ruleList() []Rule {
	if c.cfg.Rules == nil {
		return nil
	}
	return c.cfg.Rules()
}

func (c *Console) destinations(*http.Request, func(error)) any {
	var (
		health []deliver.Health
		state  LogState
	)
	if c.cfg.Health != nil {
		health = c.cfg.Health()
	}
	if c.cfg.Durable != nil {
		state = c.cfg.Durable()
	}
	return map[string]any{"Health": health, "Log": state}
}

// dedupView is one Meta rule's deduplication.
type dedupView struct {
	Rule
	Dedup
	// Partial: the window held more outcomes or reports than one read
	// takes, so the counts are of the newest only.
	Partial bool
}

// reportLookback is how much earlier than the window's deliveries their
// completions are looked for.
const reportLookback = 7 * 24 * time.Hour

// dedupLimit bounds the outcomes one rule's deduplication reads: a day of
// conversions on a busy site.
const dedupLimit = 10_000

func (c *Console) dedup(_ *http.Request, problem func(error)) any {
	ctx, cancel := readCtx()
	defer cancel()
	since := c.cfg.Now().Add(-window)
	var out []dedupView
	for _, rule := range c.ruleList() {
		if rule.DestinationType != rules.TypeMetaCAPI {
			continue
		}
		v := dedupView{Rule: rule}
		if c.cfg.Store != nil {
			ds, err := c.cfg.Store.Deliveries(ctx, rule.Name, since, dedupLimit)
			problem(err)
			// The completions of the window's deliveries may have happened
			// up to a week earlier (Meta takes events 7 days old).
			reports, err := c.cfg.Store.MirrorReports(ctx, rule.Events, since.Add(-reportLookback))
			problem(err)
			v.Dedup = dedupOf(rule.Name, since, ds, reports)
			v.Partial = len(ds) >= dedupLimit || len(reports) >= store.MaxMirrorReports
		}
		out = append(out, v)
	}
	return out
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }

func ts(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
