package main

import (
	"time"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/console"
	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/rules/salesforce"
	"github.com/tally-analytics/tally/store"
)

// newConsole builds the console on what s runs: the config in force (a
// reload shows at the next page view), the rules engine's states, the
// forwarder's health, the durable log and its readers, and ClickHouse.
func (s *server) newConsole() *console.Console {
	return console.New(console.Config{
		Live:  s.live,
		Store: store.NewConsoleReader(s.conn, s.db),
		Definitions: func() []ingest.Definition {
			return s.config().Events
		},
		Rules: func() []console.Rule {
			return consoleRules(s.config(), s.engine)
		},
		Health: func() []deliver.Health { return s.forwarder.Health() },
		Durable: func() console.LogState {
			st := console.LogState{LastIndex: s.wal.LastIndex()}
			st.Bytes, st.MaxBytes = s.wal.Size()
			for _, r := range []interface {
				Name() string
				Committed() uint64
				Pending() uint64
			}{s.chReader, s.rulesReader} {
				st.Readers = append(st.Readers, console.ReaderState{Name: r.Name(), Committed: r.Committed(), Pending: r.Pending()})
			}
			return st
		},
		Log: s.log,
	})
}

// config is the config in force.
func (s *server) config() *config.File { return s.reloads.cfg.Load() }

// consoleRules lists the configured rules with their state in the engine.
func consoleRules(cfg *config.File, engine interface {
	EnabledAt(rule string) (time.Time, bool)
}) []console.Rule {
	types := map[string]string{}
	for _, d := range cfg.Destinations {
		types[d.Name] = d.Type
	}
	out := make([]console.Rule, 0, len(cfg.Rules))
	for _, r := range cfg.Rules {
		cr := console.Rule{Name: r.Name, Events: r.When.Events, Destination: r.Forward.To, DestinationType: types[r.Forward.To],
			ForwardedName: r.Forward.EventName, Mirror: r.Forward.MirrorInBrowser}
		if r.When.Event != "" {
			cr.Events = append([]string{r.When.Event}, cr.Events...)
		}
		switch {
		case r.Forward.EventNameFrom != nil:
			cr.ForwardedName = "from " + r.Forward.EventNameFrom.Property
		case cr.DestinationType == salesforce.Type:
			cr.ForwardedName = salesforce.ItemName
		}
		cr.EnabledAt, cr.Enabled = engine.EnabledAt(r.Name)
		out = append(out, cr)
	}
	return out
}
