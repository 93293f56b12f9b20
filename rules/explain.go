package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/deliver"
)

// Verdict is what one rule would do with one completion (tally rules test).
type Verdict struct {
	Rule        string
	Destination Destination // with defaults; zero when the rule does not compile
	Enabled     bool
	Match       bool
	// Reason says why the rule does not forward: the first condition that
	// fails, or the consent gate, or an unmapped event name.
	Reason string
	// Events are the events the rule would enqueue, exactly as they would
	// be sent; Invalid holds, per event, why Meta would refuse it ("" when
	// it would be sent).
	Events  []capi.Event
	Invalid []string
	// Items are what a rule to another destination type (salesforce,
	// webhook) would enqueue, and Refused why a mapped one would not be
	// sent ("status: message").
	Items   []deliver.Item
	Refused []string
}

// Explain runs every rule of cfg over c as the Engine would, without the
// enabled-at times, the dedupe window or a forwarder, and says for each
// whether it matches and what it would send. A config that fails Check
// is an error.
func Explain(cfg Config, c *ingest.Completion, now time.Time) ([]Verdict, error) {
	rules, errs := compile(cfg.Rules, cfg.Destinations, cfg.Definitions)
	if len(errs) > 0 {
		return nil, fmt.Errorf("rules config: %d problems; run tally check", len(errs))
	}
	var out []Verdict
	for _, r := range rules {
		v := Verdict{Rule: r.name, Destination: r.dest, Enabled: r.rule.IsEnabled()}
		v.Reason = r.whyNot(c)
		if v.Reason == "" {
			if msg := consentFailure(r, c); msg != "" {
				v.Reason = msg
			}
		}
		if v.Reason == "" && c.Enrichment.IsBot {
			v.Reason = "the user agent is a bot's: bots are never forwarded"
		}
		if v.Reason == "" && c.Source == ingest.SourceImport {
			v.Reason = "imported completions are forwarded only by a replay"
		}
		if v.Reason == "" && !r.kind().ads {
			items, refused := r.kind().mapItems(r, c, now)
			v.Items = items
			for _, rf := range refused {
				v.Refused = append(v.Refused, rf.status+": "+rf.message)
			}
		} else if v.Reason == "" {
			v.Events = r.mapped(c)
			if len(v.Events) == 0 {
				val, _ := c.Prop(r.rule.Forward.EventNameFrom.Property)
				v.Reason = fmt.Sprintf("event_name_from: %s %q is not in the map", r.rule.Forward.EventNameFrom.Property, val)
			}
		}
		v.Match = v.Reason == ""
		for i := range v.Events {
			msg := ""
			if err := capi.Validate(&v.Events[i], now); err != nil {
				msg = err.Error()
			}
			v.Invalid = append(v.Invalid, msg)
		}
		out = append(out, v)
	}
	return out, nil
}

// whyNot says which condition of the rule's when c fails, or "".
func (r *compiled) whyNot(c *ingest.Completion) string {
	if !slices.Contains(r.events, c.EventName) {
		return fmt.Sprintf("event %s is not %s", c.EventName, strings.Join(r.events, " or "))
	}
	if s := r.rule.When.Sites; len(s) > 0 && !slices.Contains(s, c.Site) {
		return fmt.Sprintf("site %q is not %s", c.Site, strings.Join(s, " or "))
	}
	look := func(f *filter) (string, bool) { return lookup(c, f) }
	for i, f := range r.where {
		if v, ok := look(f); !f.match(v, ok) {
			return fmt.Sprintf("where[%d]: %s does not hold (%s)", i, f.describe(), valueText(f.prop, v, ok))
		}
	}
	if len(r.any) > 0 && !matchFilters(nil, r.any, look) {
		var parts []string
		for g, fs := range r.any {
			for i, f := range fs {
				if v, ok := look(f); !f.match(v, ok) {
					parts = append(parts, fmt.Sprintf("any[%d].where[%d]: %s (%s)", g, i, f.describe(), valueText(f.prop, v, ok)))
					break
				}
			}
		}
		return "no any group holds: " + strings.Join(parts, "; ")
	}
	return ""
}

func valueText(name, v string, ok bool) string {
	if !ok || v == "" {
		return name + " is unknown"
	}
	return fmt.Sprintf("%s is %q", name, v)
}
