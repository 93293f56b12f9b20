package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/deliver"
)

// Config is what the engine needs from tally.yaml and the deployment.
type Config struct {
	Rules        []Rule
	Destinations []Destination
	Definitions  []ingest.Definition
	// DataDir holds the engine's state file (StateFile): when each rule was
	// enabled. Required unless State is set.
	DataDir string
	// State keeps the enabled-at times instead of the file under DataDir
	// (several collectors share them in ClickHouse).
	State StateStore
	// Replay forwards imported completions, and completions received before
	// a rule was enabled, too. It is for a deliberate replay run only: Meta
	// still refuses events older than 7 days.
	Replay bool
}

// Forwarder takes a mapped item for delivery (deliver.Forwarder). Enqueue
// returns once the item is durable, or an error (the outbox is full).
type Forwarder interface {
	Enqueue(ctx context.Context, destination string, o deliver.Origin, it deliver.Item) error
}

// DeliveryLog records the outcomes the engine decides itself: a match
// skipped for consent becomes a deliveries row with status skipped_consent
// (deliver.Forwarder records the rest through the same log). Record must
// not block for long: it runs on the write path.
type DeliveryLog interface {
	Record(ds []deliver.Delivery)
}

// Engine decides, for each accepted completion, which rules forward it,
// maps it, and hands the event to the Forwarder. It starts no goroutines.
// Its rules are one compiled set behind an atomic pointer: Reload swaps
// in a new set whole, so a batch is decided by the old set or the new,
// never by a mix.
type Engine struct {
	set    atomic.Pointer[ruleSet]
	state  StateStore
	fwd    Forwarder
	dlog   DeliveryLog
	log    *slog.Logger
	replay bool // Config.Replay: imports and pre-enable completions forward too
	dedupe *dedupeMemory
	now    func() time.Time

	// reloadMu makes reloads one at a time (Write never takes it).
	reloadMu sync.Mutex

	outcomes *prometheus.CounterVec
}

// ruleSet is one compiled config: the enabled rules with their enabled-at
// times.
type ruleSet struct {
	rules []*active
}

// active is an enabled rule with the time it was enabled.
type active struct {
	*compiled
	enabledAt time.Time
}

// NewEngine compiles the rules (a config that fails Check is an error),
// loads the state file and records the enabled-at time of every rule that
// is newly enabled or changed, then saves the state before returning: a
// rule forwards nothing under an enabled-at time that is not on disk.
// reg may be nil.
func NewEngine(cfg Config, fwd Forwarder, dlog DeliveryLog, log *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if cfg.State == nil {
		if cfg.DataDir == "" {
			return nil, errors.New("rules engine: data dir is required for the rules state")
		}
		cfg.State = fileState{path: filepath.Join(cfg.DataDir, StateFile)}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{state: cfg.State, fwd: fwd, dlog: dlog, log: log, replay: cfg.Replay, now: time.Now,
		dedupe: newDedupeMemory(defaultDedupeKeys),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_rule_matches_total",
			Help: "Completions matched by a rule, by rule and outcome (enqueued, skipped_consent, skipped_duplicate, unmapped, invalid, enqueue_failed).",
		}, []string{"rule", "outcome"}),
	}
	if err := e.Reload(cfg); err != nil {
		return nil, err
	}
	if reg != nil {
		if err := reg.Register(e.outcomes); err != nil {
			return nil, fmt.Errorf("register rules metrics: %w", err)
		}
	}
	return e, nil
}

// Reload compiles cfg's rules and destinations and, when they check, makes
// them the engine's rules at once; on error the rules in force stay. A
// rule keeps its enabled-at time while its when and forward are
// unchanged; a rule that is new, changed, or enabled again after being
// disabled forwards only completions received from now on. cfg.State,
// DataDir and Replay are the engine's own and ignored here.
func (e *Engine) Reload(cfg Config) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	rules, errs := compile(cfg.Rules, cfg.Destinations, cfg.Definitions)
	if len(errs) > 0 {
		es := make([]error, len(errs))
		for i, e := range errs {
			es[i] = e
		}
		return fmt.Errorf("rules config: %w", errors.Join(es...))
	}
	st, err := e.state.LoadRuleStates()
	if err != nil {
		return err
	}
	now := e.now().UTC()
	next := map[string]RuleState{}
	changed := false
	var enabled []*compiled
	for _, r := range rules {
		if !r.rule.IsEnabled() {
			continue
		}
		h, err := ruleHash(&r.rule)
		if err != nil {
			return err
		}
		rec, ok := st[r.name]
		if !ok || rec.Hash != h {
			rec = RuleState{Hash: h, EnabledAt: now}
			changed = true
			e.log.Info("rule enabled: forwards completions received from now on", "rule", r.name, "destination", r.dest.Name, "enabled_at", now)
		}
		next[r.name] = rec
		enabled = append(enabled, r)
	}
	// Rules removed or disabled are forgotten: enabling one again starts
	// from that moment.
	for name := range st {
		if _, ok := next[name]; !ok {
			changed = true
			e.log.Info("rule disabled", "rule", name)
		}
	}
	if changed {
		if err := e.state.SaveRuleStates(next); err != nil {
			return err
		}
		// Read back: a collector that saved the same rule a moment earlier
		// wins, so every collector forwards from the same time.
		if next, err = e.state.LoadRuleStates(); err != nil {
			return err
		}
	}
	set := &ruleSet{}
	for _, r := range enabled {
		set.rules = append(set.rules, &active{compiled: r, enabledAt: next[r.name].EnabledAt})
	}
	e.set.Store(set)
	return nil
}

// rules is the rule set in force.
func (e *Engine) rules() []*active { return e.set.Load().rules }

// Idle reports whether no rule is enabled: then Write does nothing, and
// its caller may skip decoding what it would offer.
func (e *Engine) Idle() bool { return len(e.rules()) == 0 }

// EnabledAt returns when the named rule was enabled (in its current form).
func (e *Engine) EnabledAt(rule string) (time.Time, bool) {
	for _, r := range e.rules() {
		if r.name == rule {
			return r.enabledAt, true
		}
	}
	return time.Time{}, false
}

// Write offers accepted completions to every enabled rule (ingest.Sink).
// Bots are never forwarded; imports only on a replay. A match without ads
// consent, or failing the rule's consent gate, is recorded as skipped, and
// so is a duplicate within the rule's dedupe window; a match whose value
// of event_name_from is not mapped is counted (unmapped); an event Meta
// would refuse (no event_source_url on a website event, …) is recorded as
// failed and not enqueued. Every match is tried even when one Enqueue
// fails; the failures are returned joined (each wrapping the Forwarder's
// error, e.g. the spool's ErrFull). A caller that retries the completion
// may enqueue the other matches again: Meta deduplicates repeats by event
// id, and the dedupe window knows a retried event by its id.
func (e *Engine) Write(ctx context.Context, cs []ingest.Completion) error {
	_, err := e.write(ctx, cs, "", e.replay, e.fwd)
	return err
}

// Replay offers history to the named rule only, as a deliberate replay:
// completions received before the rule was enabled, and imports, are
// forwarded too (Meta still refuses events older than 7 days, which
// the Meta destination records as expired), through fwd. It returns how many
// completions the rule queued for forwarding (a match skipped for consent
// or as a duplicate is not counted), and ErrUnknownRule for a rule that is
// not enabled.
func (e *Engine) Replay(ctx context.Context, rule string, cs []ingest.Completion, fwd Forwarder) (int, error) {
	if _, ok := e.EnabledAt(rule); !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownRule, rule)
	}
	return e.write(ctx, cs, rule, true, fwd)
}

// ErrUnknownRule: Replay names no enabled rule.
var ErrUnknownRule = errors.New("no enabled rule of that name")

// RuleEvents are the events the named enabled rule listens to (none when
// there is no such rule).
func (e *Engine) RuleEvents(rule string) []string {
	for _, r := range e.rules() {
		if r.name == rule {
			evs := append([]string(nil), r.rule.When.Events...)
			if r.rule.When.Event != "" {
				evs = append(evs, r.rule.When.Event)
			}
			return evs
		}
	}
	return nil
}

// Matching names the enabled rules whose when holds for c (whether they
// then forward it depends on consent, bots, dedupe and when it was
// received); the console shows them beside each completion.
func (e *Engine) Matching(c *ingest.Completion) []string {
	var out []string
	for _, r := range e.rules() {
		if r.matches(c) {
			out = append(out, r.name)
		}
	}
	return out
}

func (e *Engine) write(ctx context.Context, cs []ingest.Completion, only string, replay bool, fwd Forwarder) (int, error) {
	matched := 0
	rules := e.rules()
	var errs []error
	var skipped []deliver.Delivery
	skip := func(r *active, c *ingest.Completion, name string, st string, msg string, payload []byte) {
		e.outcomes.WithLabelValues(r.name, st).Inc()
		if e.dlog == nil {
			return
		}
		if name == "" {
			name = r.forwardName(c)
		}
		skipped = append(skipped, deliver.Delivery{EventID: c.EventID, Rule: r.name, Destination: r.dest.Name,
			ForwardedName: name, SourceEvent: c.EventName, EventTime: c.OccurredAt, Status: st,
			Message: msg, At: e.now().UTC(), Payload: string(payload)})
	}
	for i := range cs {
		c := &cs[i]
		if c.Enrichment.IsBot {
			continue
		}
		if c.Source == ingest.SourceImport && !replay {
			continue
		}
		for _, r := range rules {
			if only != "" && r.name != only {
				continue
			}
			if !replay && c.ReceivedAt.Before(r.enabledAt) {
				continue
			}
			if !r.matches(c) {
				continue
			}
			if msg := consentFailure(r.compiled, c); msg != "" {
				skip(r, c, "", StatusSkippedConsent, msg, nil)
				continue
			}
			items, refused := r.kind().mapItems(r.compiled, c, e.now())
			if len(items)+len(refused) == 0 {
				e.outcomes.WithLabelValues(r.name, "unmapped").Inc()
				continue
			}
			if first, dup := e.dedupe.seen(r.compiled, c); dup {
				name := ""
				if len(items) > 0 {
					name = items[0].Name
				}
				skip(r, c, name, StatusSkippedDuplicate, fmt.Sprintf("duplicate of event %s within %s by %s", first, r.rule.Dedupe.Within, strings.Join(r.rule.Dedupe.By, ", ")), nil)
				continue
			}
			for _, rf := range refused {
				skip(r, c, rf.item.Name, rf.status, "not sent: "+rf.message, rf.item.Payload)
			}
			enqueued := false
			for _, it := range items {
				if err := fwd.Enqueue(ctx, r.dest.Name, deliver.Origin{Rule: r.name, Source: c.EventName}, it); err != nil {
					e.outcomes.WithLabelValues(r.name, "enqueue_failed").Inc()
					errs = append(errs, fmt.Errorf("forward event %s by rule %q: %w", c.EventID, r.name, err))
					continue
				}
				enqueued = true
				e.outcomes.WithLabelValues(r.name, "enqueued").Inc()
			}
			if enqueued {
				matched++
				e.dedupe.remember(r.compiled, c)
			}
		}
	}
	if len(skipped) > 0 {
		e.dlog.Record(skipped)
	}
	return matched, errors.Join(errs...)
}

// StatusSkippedDuplicate is recorded for a match inside its rule's dedupe
// window of an earlier forwarded one.
const StatusSkippedDuplicate = "skipped_duplicate"

// StatusSkippedConsent is recorded for a match whose consent is missing.
const StatusSkippedConsent = "skipped_consent"

// consentFailure says which consent gate c fails for r, or "" when none.
// The visitor's ads consent gates the ad platforms' destinations only.
func consentFailure(r *compiled, c *ingest.Completion) string {
	if r.kind().ads && !c.Consent.Ads {
		return "no ads consent"
	}
	if !r.consentOK(c) {
		return fmt.Sprintf("consent property %s is not %q", r.rule.Forward.Consent.Property, r.rule.Forward.Consent.Equals)
	}
	return ""
}
