package rules

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/deliver"
)

// fakeForwarder records what is enqueued; err, when set, fails Enqueue for
// that rule.
type fakeForwarder struct {
	sent []enqueued
	fail map[string]error
}

type enqueued struct {
	dest, rule string
	ev         capi.Event // the item decoded as a Meta event
	it         deliver.Item
}

func (f *fakeForwarder) Enqueue(_ context.Context, dest string, o deliver.Origin, it deliver.Item) error {
	rule := o.Rule
	var ev capi.Event
	if err := json.Unmarshal(it.Payload, &ev); err != nil {
		return err
	}
	if err := f.fail[rule]; err != nil {
		return err
	}
	f.sent = append(f.sent, enqueued{dest, rule, ev, it})
	return nil
}

type fakeSkips struct{ got []deliver.Delivery }

func (f *fakeSkips) Record(ds []deliver.Delivery) { f.got = append(f.got, ds...) }

func newTestEngine(t *testing.T, dir string, cfg Config) (*Engine, *fakeForwarder, *fakeSkips) {
	t.Helper()
	cfg.DataDir = dir
	if cfg.Destinations == nil {
		cfg.Destinations = testDests()
	}
	if cfg.Definitions == nil {
		cfg.Definitions = testDefs()
	}
	fwd, skips := &fakeForwarder{}, &fakeSkips{}
	e, err := NewEngine(cfg, fwd, skips, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e, fwd, skips
}

// liveCompletion is testCompletion received now.
func liveCompletion() ingest.Completion {
	c := testCompletion()
	c.OccurredAt = time.Now().UTC()
	c.ReceivedAt = c.OccurredAt
	return c
}

func TestEngineForwards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, fwd, skips := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{testRule()}})
		time.Sleep(time.Second)
		c := liveCompletion()
		other := liveCompletion()
		other.Props = []ingest.Prop{{Name: "form_id", Value: "newsletter"}, {Name: "ads_consent", Value: "yes"}}
		if err := e.Write(context.Background(), []ingest.Completion{c, other}); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if len(fwd.sent) != 1 {
			t.Fatalf("enqueued %d events; want 1 (the newsletter form does not match)", len(fwd.sent))
		}
		got := fwd.sent[0]
		r := compileOne(t, testRule())
		if got.dest != "meta_shop" || got.rule != "contact_form_lead" || !reflect.DeepEqual(got.ev, r.Event(&c)) {
			t.Errorf("Enqueue(%s, %s, %+v); want meta_shop, contact_form_lead, %+v", got.dest, got.rule, got.ev, r.Event(&c))
		}
		if got.ev.EventID != c.EventID {
			t.Errorf("event_id %q; want the completion's %q", got.ev.EventID, c.EventID)
		}
		if len(skips.got) != 0 {
			t.Errorf("skips = %+v; want none", skips.got)
		}
		var m dto.Metric
		if err := e.outcomes.WithLabelValues("contact_form_lead", "enqueued").Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
			n := m.GetCounter().GetValue()
			t.Errorf("enqueued counter = %v; want 1", n)
		}
	})
}

func TestEngineDoesNotForward(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(c *ingest.Completion)
		replay bool
		want   int
	}{
		{"bot", func(c *ingest.Completion) { c.Enrichment.IsBot = true }, false, 0},
		{"bot on replay", func(c *ingest.Completion) { c.Enrichment.IsBot = true }, true, 0},
		{"import", func(c *ingest.Completion) { c.Source = ingest.SourceImport }, false, 0},
		{"import on replay", func(c *ingest.Completion) { c.Source = ingest.SourceImport }, true, 1},
		{"received before the rule was enabled", func(c *ingest.Completion) { c.ReceivedAt = c.ReceivedAt.Add(-2 * time.Second) }, false, 0},
		{"received before the rule was enabled, on replay", func(c *ingest.Completion) { c.ReceivedAt = c.ReceivedAt.Add(-2 * time.Second) }, true, 1},
		{"received when the rule was enabled", func(c *ingest.Completion) { c.ReceivedAt = c.ReceivedAt.Add(-time.Second) }, false, 1},
		{"api", func(c *ingest.Completion) { c.Source = ingest.SourceAPI }, false, 1},
		{"other event", func(c *ingest.Completion) { c.EventName = "order_placed" }, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, fwd, _ := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{testRule()}, Replay: tc.replay})
				time.Sleep(time.Second)
				c := liveCompletion()
				tc.edit(&c)
				if err := e.Write(context.Background(), []ingest.Completion{c}); err != nil {
					t.Fatal(err)
				}
				if len(fwd.sent) != tc.want {
					t.Errorf("enqueued %d; want %d", len(fwd.sent), tc.want)
				}
			})
		})
	}
}

func TestEngineConsent(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *ingest.Completion)
		msg  string
	}{
		{"no ads consent", func(c *ingest.Completion) { c.Consent.Ads = false }, "no ads consent"},
		{"consent property says no", func(c *ingest.Completion) { c.Props[0].Value = "no" }, "ads_consent"},
		{"consent property missing", func(c *ingest.Completion) { c.Props = c.Props[1:] }, "ads_consent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, fwd, skips := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{testRule()}})
				c := liveCompletion()
				tc.edit(&c)
				if err := e.Write(context.Background(), []ingest.Completion{c}); err != nil {
					t.Fatal(err)
				}
				if len(fwd.sent) != 0 {
					t.Errorf("enqueued %d; want 0", len(fwd.sent))
				}
				want := deliver.Delivery{EventID: c.EventID, Rule: "contact_form_lead", Destination: "meta_shop", ForwardedName: "Lead", SourceEvent: "form_submitted",
					EventTime: c.OccurredAt, Status: StatusSkippedConsent, At: time.Now().UTC()}
				if len(skips.got) != 1 {
					t.Fatalf("skips = %+v; want one", skips.got)
				}
				got := skips.got[0]
				msg := got.Message
				got.Message = ""
				if got != want || !strings.Contains(msg, tc.msg) {
					t.Errorf("skip = %+v (%q); want %+v (%q)", got, msg, want, tc.msg)
				}
			})
		})
	}
	// Consent gate values compare like is_equal_to: case does not matter.
	synctest.Test(t, func(t *testing.T) {
		e, fwd, _ := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{testRule()}})
		c := liveCompletion()
		c.Props[0].Value = "YES"
		if err := e.Write(context.Background(), []ingest.Completion{c}); err != nil || len(fwd.sent) != 1 {
			t.Errorf("Write(ads_consent YES) = %v, enqueued %d; want nil, 1", err, len(fwd.sent))
		}
	})
}

func TestEngineEnqueueFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		second := testRule()
		second.Name = "second"
		second.Forward.EventName = "Contact"
		e, fwd, _ := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{testRule(), second}})
		full := errors.New("spool full")
		fwd.fail = map[string]error{"contact_form_lead": full}
		err := e.Write(context.Background(), []ingest.Completion{liveCompletion()})
		if !errors.Is(err, full) {
			t.Errorf("Write = %v; want it to wrap %v", err, full)
		}
		if len(fwd.sent) != 1 || fwd.sent[0].rule != "second" {
			t.Errorf("enqueued %+v; want the second rule's event despite the first failing", fwd.sent)
		}
	})
}

func TestEngineDisabledRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRule()
		r.Enabled = ptr(false)
		e, fwd, _ := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{r}})
		if err := e.Write(context.Background(), []ingest.Completion{liveCompletion()}); err != nil {
			t.Fatal(err)
		}
		if len(fwd.sent) != 0 {
			t.Errorf("disabled rule enqueued %d; want 0", len(fwd.sent))
		}
		if e.BrowserRules("shop") != nil {
			t.Errorf("BrowserRules with only a disabled rule = %v; want nil", e.BrowserRules("shop"))
		}
	})
}

func TestEnabledAtPersists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := testRule()
		e, _, _ := newTestEngine(t, dir, Config{Rules: []Rule{r}})
		first, ok := e.EnabledAt(r.Name)
		if !ok || !first.Equal(time.Now()) {
			t.Fatalf("EnabledAt = %v, %v; want now (%v)", first, ok, time.Now())
		}

		// A restart keeps the time.
		time.Sleep(time.Hour)
		e, _, _ = newTestEngine(t, dir, Config{Rules: []Rule{r}})
		if got, _ := e.EnabledAt(r.Name); !got.Equal(first) {
			t.Errorf("after restart EnabledAt = %v; want %v", got, first)
		}
		// The state file holds the original time.
		b, err := os.ReadFile(filepath.Join(dir, StateFile))
		if err != nil {
			t.Fatal(err)
		}
		var st state
		if err := json.Unmarshal(b, &st); err != nil || !st.Rules[r.Name].EnabledAt.Equal(first) {
			t.Errorf("state file = %s (%v); want %s enabled at %v", b, err, r.Name, first)
		}

		// Changing the rule's when or forward makes it newly enabled.
		time.Sleep(time.Hour)
		changed := r
		changed.Forward.EventName = "Contact"
		e, _, _ = newTestEngine(t, dir, Config{Rules: []Rule{changed}})
		second, _ := e.EnabledAt(r.Name)
		if !second.Equal(time.Now()) {
			t.Errorf("after an edit EnabledAt = %v; want now (%v)", second, time.Now())
		}

		// Disabling forgets it; enabling again starts from then.
		time.Sleep(time.Hour)
		off := changed
		off.Enabled = ptr(false)
		e, _, _ = newTestEngine(t, dir, Config{Rules: []Rule{off}})
		if _, ok := e.EnabledAt(r.Name); ok {
			t.Error("disabled rule has an EnabledAt")
		}
		time.Sleep(time.Hour)
		e, _, _ = newTestEngine(t, dir, Config{Rules: []Rule{changed}})
		if got, _ := e.EnabledAt(r.Name); !got.Equal(time.Now()) {
			t.Errorf("re-enabled EnabledAt = %v; want now (%v)", got, time.Now())
		}
		// No temporary files are left behind.
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Errorf("data dir holds %d entries; want only %s", len(ents), StateFile)
		}
	})
}

func TestNewEngineErrors(t *testing.T) {
	r := testRule()
	r.Forward.To = "nowhere"
	if _, err := NewEngine(Config{Rules: []Rule{r}, Destinations: testDests(), Definitions: testDefs(), DataDir: t.TempDir()}, &fakeForwarder{}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "rules[0].forward.to") {
		t.Errorf("NewEngine(bad rule) = %v; want an error naming rules[0].forward.to", err)
	}
	if _, err := NewEngine(Config{Rules: []Rule{testRule()}, Destinations: testDests(), Definitions: testDefs()}, &fakeForwarder{}, nil, nil, nil); err == nil {
		t.Error("NewEngine without a data dir = nil error; want one")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(Config{Rules: []Rule{testRule()}, Destinations: testDests(), Definitions: testDefs(), DataDir: dir}, &fakeForwarder{}, nil, nil, nil); err == nil {
		t.Error("NewEngine with a corrupt state file = nil error; want one")
	}
}

func TestBrowserRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notMirrored := testRule()
		notMirrored.Name = "server_only"
		notMirrored.Forward.MirrorInBrowser = false
		blogOnly := testRule()
		blogOnly.Name = "blog_only"
		blogOnly.When.Sites = []string{"blog"}
		custom := testRule()
		custom.Name = "custom"
		custom.Forward.EventName = "QuoteRequested"
		custom.Forward.Value = &Value{Fixed: ptr(10.0)}
		custom.Forward.Consent = nil
		custom.When.Where = []Filter{{Property: "plan", Op: OpAnyOf, Values: []string{"pro", "team"}}}
		e, _, _ := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{testRule(), notMirrored, blogOnly, custom}})
		got, err := json.Marshal(e.BrowserRules("shop"))
		if err != nil {
			t.Fatal(err)
		}
		want := `[{"r":"contact_form_lead","e":["form_submitted"],"w":[{"p":"form_id","t":"s","o":"eq","v":["contact"]}],` +
			`"n":"Lead","v":{"p":"deal_amount","d":50},"$":"EUR","g":{"p":"ads_consent","t":"s","o":"eq","v":["yes"]}},` +
			`{"r":"custom","e":["form_submitted"],"w":[{"p":"plan","t":"e","o":"in","v":["pro","team"],"x":["free","pro","team"]}],` +
			`"n":"QuoteRequested","c":true,"v":{"f":10},"$":"EUR"}]`
		if string(got) != want {
			t.Errorf("BrowserRules(shop) =\n%s\nwant\n%s", got, want)
		}
		if got, _ := json.Marshal(e.BrowserRules("blog")); !strings.Contains(string(got), `"blog_only"`) {
			t.Errorf("BrowserRules(blog) = %s; want it to hold blog_only", got)
		}
	})
}

func TestBrowserCodes(t *testing.T) {
	seen := map[string]bool{}
	for _, op := range allOps {
		c := browserOps[op]
		if c == "" || seen[c] {
			t.Errorf("operation %s has browser code %q (missing or taken)", op, c)
		}
		seen[c] = true
	}
	for typ := range opsByType {
		if c := browserTypes[typ]; c == "" || seen[c] {
			t.Errorf("type %s has browser code %q (missing or taken)", typ, c)
		} else {
			seen[c] = true
		}
	}
}

// The Forwarder this engine is wired to in production.
var _ Forwarder = (*deliver.Forwarder)(nil)

// countForwarder accepts everything and counts it.
type countForwarder struct{ n int }

func (f *countForwarder) Enqueue(context.Context, string, deliver.Origin, deliver.Item) error {
	f.n++
	return nil
}

// BenchmarkEngineWrite: one matching completion per op through one rule,
// hashing the shared user data (the cost per forwarded completion).
func BenchmarkEngineWrite(b *testing.B) {
	fwd := &countForwarder{}
	e, err := NewEngine(Config{Rules: []Rule{testRule()}, Destinations: testDests(), Definitions: testDefs(), DataDir: b.TempDir()},
		fwd, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	cs := []ingest.Completion{liveCompletion()}
	cs[0].ReceivedAt = time.Now().Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Write(context.Background(), cs); err != nil {
			b.Fatal(err)
		}
	}
	if fwd.n != b.N {
		b.Fatalf("enqueued %d of %d", fwd.n, b.N)
	}
}

// The engine is a Sink for the collector's fan-out.
var _ ingest.Sink = (*Engine)(nil)

// memState is a StateStore shared by engines in one test, as rule_state is
// by collectors.
type memState struct{ m map[string]RuleState }

func (s *memState) LoadRuleStates() (map[string]RuleState, error) {
	out := map[string]RuleState{}
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

func (s *memState) SaveRuleStates(rs map[string]RuleState) error {
	s.m = map[string]RuleState{}
	for k, v := range rs {
		s.m[k] = v
	}
	return nil
}

// A second collector starting later with the same rules forwards from the
// first one's enabled-at time, not its own.
func TestEnginesShareEnabledAt(t *testing.T) {
	st := &memState{}
	cfg := func() Config {
		return Config{Rules: []Rule{testRule()}, Destinations: testDests(), Definitions: testDefs(), State: st}
	}
	first, err := NewEngine(cfg(), &fakeForwarder{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	second, err := NewEngine(cfg(), &fakeForwarder{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := testRule().Name
	a, okA := first.EnabledAt(name)
	b, okB := second.EnabledAt(name)
	if !okA || !okB || !a.Equal(b) {
		t.Errorf("rule %s enabled at %v (first) and %v (second); want the same", name, a, b)
	}
}
