package main

import (
	"testing"
	"time"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/rules"
	"github.com/tally-analytics/tally/rules/salesforce"
)

// enabledAt stands in for the rules engine's states.
type enabledAt map[string]time.Time

func (e enabledAt) EnabledAt(rule string) (time.Time, bool) {
	t, ok := e[rule]
	return t, ok
}

func TestConsoleRulesFromConfigAndEngine(t *testing.T) {
	off := false
	since := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	cfg := &config.File{
		Destinations: []rules.Destination{{Name: "meta", Type: rules.TypeMetaCAPI}, {Name: "crm", Type: salesforce.Type}},
		Rules: []rules.Rule{
			{Name: "leads", When: rules.When{Event: "form_submitted", Events: []string{"signed_up"}},
				Forward: rules.Forward{To: "meta", EventName: "Lead", MirrorInBrowser: true}},
			{Name: "stages", Enabled: &off, When: rules.When{Event: "stage_changed"},
				Forward: rules.Forward{To: "meta", EventNameFrom: &rules.EventNameFrom{Property: "stage"}}},
			{Name: "tasks", When: rules.When{Event: "form_submitted"}, Forward: rules.Forward{To: "crm"}},
		},
	}
	got := consoleRules(cfg, enabledAt{"leads": since})
	if len(got) != 3 {
		t.Fatalf("%d rules; want 3", len(got))
	}
	l, s := got[0], got[1]
	if !l.Enabled || !l.EnabledAt.Equal(since) || l.DestinationType != rules.TypeMetaCAPI || !l.Mirror || l.ForwardedName != "Lead" ||
		len(l.Events) != 2 || l.Events[0] != "form_submitted" || l.Events[1] != "signed_up" {
		t.Errorf("leads = %+v; want enabled since %v, meta_capi, mirrored, Lead, both events", l, since)
	}
	if s.Enabled || s.ForwardedName != "from stage" {
		t.Errorf("stages = %+v; want disabled, its name from the stage property", s)
	}
	if tk := got[2]; tk.Enabled || tk.DestinationType != salesforce.Type || tk.ForwardedName != salesforce.ItemName {
		t.Errorf("tasks = %+v; want a salesforce rule forwarding Tasks, not enabled in the engine", tk)
	}
}
