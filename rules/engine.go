package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/capi"
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

// Forwarder takes a mapped event for delivery (capi.Forwarder). Enqueue
// returns once the event is durable, or an error (the spool is full).
type Forwarder interface {
	Enqueue(ctx context.Context, destination string, o capi.Origin, ev capi.Event) error
}

// DeliveryLog records the outcomes the engine decides itself: a match
// skipped for consent becomes a deliveries row with status skipped_consent
// (capi.Forwarder records the rest through the same log). Record must not
// block for long: it runs on the write path.
type DeliveryLog interface {
	Record(ds []capi.Delivery)
}

// Engine decides, for each accepted completion, which rules forward it,
// maps it, and hands the event to the Forwarder. It starts no goroutines.
type Engine struct {
	rules  []*active
	fwd    Forwarder
	dlog   DeliveryLog
	replay bool // Config.Replay: imports and pre-enable completions forward too

	outcomes *prometheus.CounterVec
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
	rules, errs := compile(cfg.Rules, cfg.Destinations, cfg.Definitions)
	if len(errs) > 0 {
		es := make([]error, len(errs))
		for i, e := range errs {
			es[i] = e
		}
		return nil, fmt.Errorf("rules config: %w", errors.Join(es...))
	}
	e := &Engine{fwd: fwd, dlog: dlog, replay: cfg.Replay,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_rule_matches_total",
			Help: "Completions matched by a rule, by rule and outcome (enqueued, skipped_consent, enqueue_failed).",
		}, []string{"rule", "outcome"}),
	}
	if reg != nil {
		if err := reg.Register(e.outcomes); err != nil {
			return nil, fmt.Errorf("register rules metrics: %w", err)
		}
	}

	st, err := cfg.State.LoadRuleStates()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	next := map[string]RuleState{}
	changed := false
	var enabled []*compiled
	for _, r := range rules {
		if !r.rule.IsEnabled() {
			continue
		}
		h, err := ruleHash(&r.rule)
		if err != nil {
			return nil, err
		}
		rec, ok := st[r.name]
		if !ok || rec.Hash != h {
			rec = RuleState{Hash: h, EnabledAt: now}
			changed = true
			log.Info("rule enabled: forwards completions received from now on", "rule", r.name, "destination", r.dest.Name, "enabled_at", now)
		}
		next[r.name] = rec
		enabled = append(enabled, r)
	}
	// Rules removed or disabled are forgotten: enabling one again starts
	// from that moment.
	for name := range st {
		if _, ok := next[name]; !ok {
			changed = true
			log.Info("rule disabled", "rule", name)
		}
	}
	if changed {
		if err := cfg.State.SaveRuleStates(next); err != nil {
			return nil, err
		}
		// Read back: a collector that saved the same rule a moment earlier
		// wins, so every collector forwards from the same time.
		if next, err = cfg.State.LoadRuleStates(); err != nil {
			return nil, err
		}
	}
	for _, r := range enabled {
		e.rules = append(e.rules, &active{compiled: r, enabledAt: next[r.name].EnabledAt})
	}
	return e, nil
}

// Idle reports whether no rule is enabled: then Write does nothing, and
// its caller may skip decoding what it would offer.
func (e *Engine) Idle() bool { return len(e.rules) == 0 }

// EnabledAt returns when the named rule was enabled (in its current form).
func (e *Engine) EnabledAt(rule string) (time.Time, bool) {
	for _, r := range e.rules {
		if r.name == rule {
			return r.enabledAt, true
		}
	}
	return time.Time{}, false
}

// Write offers accepted completions to every enabled rule (ingest.Sink).
// Bots are never forwarded; imports only on a replay. A match without ads
// consent, or failing the rule's consent gate, is recorded as skipped. Every
// match is tried even when one Enqueue fails; the failures are returned
// joined (each wrapping the Forwarder's error, e.g. the spool's ErrFull).
// A caller that retries the completion may enqueue the other matches again:
// Meta deduplicates repeats by event id.
func (e *Engine) Write(ctx context.Context, cs []ingest.Completion) error {
	var errs []error
	var skipped []capi.Delivery
	for i := range cs {
		c := &cs[i]
		if c.Enrichment.IsBot {
			continue
		}
		if c.Source == ingest.SourceImport && !e.replay {
			continue
		}
		for _, r := range e.rules {
			if !e.replay && c.ReceivedAt.Before(r.enabledAt) {
				continue
			}
			if !r.matches(c) {
				continue
			}
			if msg := consentFailure(r.compiled, c); msg != "" {
				e.outcomes.WithLabelValues(r.name, string(capi.StatusSkippedConsent)).Inc()
				if e.dlog != nil {
					skipped = append(skipped, capi.Delivery{EventID: c.EventID, Rule: r.name, Destination: r.dest.Name,
						EventName: r.rule.Forward.EventName, SourceEvent: c.EventName, EventTime: c.OccurredAt, Status: capi.StatusSkippedConsent,
						Message: msg, At: time.Now().UTC()})
				}
				continue
			}
			if err := e.fwd.Enqueue(ctx, r.dest.Name, capi.Origin{Rule: r.name, Source: c.EventName}, r.Event(c)); err != nil {
				e.outcomes.WithLabelValues(r.name, "enqueue_failed").Inc()
				errs = append(errs, fmt.Errorf("forward event %s by rule %q: %w", c.EventID, r.name, err))
				continue
			}
			e.outcomes.WithLabelValues(r.name, "enqueued").Inc()
		}
	}
	if len(skipped) > 0 {
		e.dlog.Record(skipped)
	}
	return errors.Join(errs...)
}

// consentFailure says which consent gate c fails for r, or "" when none.
func consentFailure(r *compiled, c *ingest.Completion) string {
	if !c.Consent.Ads {
		return "no ads consent"
	}
	if !r.consentOK(c) {
		return fmt.Sprintf("consent property %s is not %q", r.rule.Forward.Consent.Property, r.rule.Forward.Consent.Equals)
	}
	return ""
}
