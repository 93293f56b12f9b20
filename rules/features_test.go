package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/deliver"
)

func stageDefs() []ingest.Definition {
	return []ingest.Definition{{Name: "stage_changed", Properties: []ingest.Property{
		{Name: "stage", Type: ingest.TypeEnumeration, Options: []string{"lead", "mql", "sql", "customer"}},
		{Name: "stage_text", Type: ingest.TypeString},
		{Name: "score", Type: ingest.TypeNumber},
		{Name: "order_ref", Type: ingest.TypeString},
		{Name: "sku", Type: ingest.TypeEnumeration, Options: []string{"a1", "b2"}},
		{Name: "vip", Type: ingest.TypeBool},
		{Name: "form_id", Type: ingest.TypeString},
	}}}
}

func stageRule() Rule {
	return Rule{Name: "stages", When: When{Event: "stage_changed"}, Forward: Forward{
		To: "meta_shop", ActionSource: ActionSystemGenerated, Share: []string{ShareEmail},
		EventNameFrom: &EventNameFrom{Property: "stage", Map: map[string]string{"mql": "Lead", "customer": "Purchase"}},
		Value:         &Value{Fixed: ptr(100.0)}, Currency: "EUR",
	}}
}

func stageCompletion(props ...ingest.Prop) ingest.Completion {
	now := time.Now().UTC()
	return ingest.Completion{EventID: "crm-1", EventName: "stage_changed", Source: ingest.SourceAPI, OccurredAt: now, ReceivedAt: now,
		Identity: ingest.Identity{Email: "a@example.com"}, Consent: ingest.Consent{Analytics: true, Ads: true}, Props: props}
}

func counter(t *testing.T, e *Engine, rule, outcome string) float64 {
	t.Helper()
	var m dto.Metric
	if err := e.outcomes.WithLabelValues(rule, outcome).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Each selected stage that the map names forwards one event under its
// name; an unmapped stage forwards nothing and is counted.
func TestEventNameFromProperty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, fwd, _ := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{stageRule()}, Definitions: stageDefs()})
		time.Sleep(time.Second)
		c := stageCompletion(ingest.Prop{Name: "stage", Value: "mql;customer"})
		other := stageCompletion(ingest.Prop{Name: "stage", Value: "sql"})
		other.EventID = "crm-2"
		if err := e.Write(context.Background(), []ingest.Completion{c, other}); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range fwd.sent {
			names = append(names, s.ev.EventName+"/"+s.ev.EventID+"/"+string(s.ev.ActionSource))
		}
		if got, want := strings.Join(names, " "), "Lead/crm-1/system_generated Purchase/crm-1/system_generated"; got != want {
			t.Errorf("forwarded %s; want %s", got, want)
		}
		if n := counter(t, e, "stages", "unmapped"); n != 1 {
			t.Errorf("unmapped = %v; want 1 (stage sql)", n)
		}
	})
}

func TestEventNameFromString(t *testing.T) {
	r := stageRule()
	r.Forward.EventNameFrom = &EventNameFrom{Property: "stage_text", Map: map[string]string{"Opportunity": "Schedule"}}
	cr := compileOne2(t, r)
	c := stageCompletion(ingest.Prop{Name: "stage_text", Value: "OPPORTUNITY"})
	if evs := cr.mapped(&c); len(evs) != 1 || evs[0].EventName != "Schedule" {
		t.Errorf("mapped(OPPORTUNITY) = %+v; want one Schedule (case ignored)", evs)
	}
}

func compileOne2(t *testing.T, r Rule) *compiled {
	t.Helper()
	rs, errs := compile([]Rule{r}, testDests(), stageDefs())
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return rs[0]
}

// custom_data keys keep their types on the wire, custom keys included.
func TestCustomDataFromProperties(t *testing.T) {
	r := stageRule()
	r.Forward.CustomData = []CustomDataField{{Key: "order_id", Property: "order_ref"}, {Key: "content_ids", Property: "sku"},
		{Key: "predicted_ltv", Property: "score"}, {Key: "lead_score", Property: "score"}, {Key: "vip", Property: "vip"}}
	cr := compileOne2(t, r)
	c := stageCompletion(ingest.Prop{Name: "order_ref", Value: "SO-42"}, ingest.Prop{Name: "score", Value: "87.5"},
		ingest.Prop{Name: "sku", Value: "a1;b2"}, ingest.Prop{Name: "stage", Value: "mql"}, ingest.Prop{Name: "vip", Value: "true"})
	b, err := json.Marshal(cr.Event(&c).CustomData)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"content_ids":["a1","b2"],"currency":"EUR","lead_score":87.5,"order_id":"SO-42","predicted_ltv":87.5,"value":100,"vip":true}`
	if string(b) != want {
		t.Errorf("custom_data = %s; want %s", b, want)
	}
	var back capi.CustomData
	if err := json.Unmarshal(b, &back); err != nil || back.Custom["lead_score"] != 87.5 || back.OrderID != "SO-42" {
		t.Errorf("decoded %+v, %v; want the custom key kept", back, err)
	}
}

// A website event without a page URL cannot be sent: it is recorded as
// failed with the payload, not enqueued. As system_generated it goes.
func TestActionSourceValidatedBeforeSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		web := testRule()
		web.Forward.Consent = nil
		crm := web
		crm.Name = "crm"
		crm.Forward.ActionSource = ActionSystemGenerated
		crm.Forward.MirrorInBrowser = false
		e, fwd, skips := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{web, crm}})
		time.Sleep(time.Second)
		c := liveCompletion()
		c.Source = ingest.SourceAPI
		c.Page = ingest.Page{}
		if err := e.Write(context.Background(), []ingest.Completion{c}); err != nil {
			t.Fatal(err)
		}
		if len(fwd.sent) != 1 || fwd.sent[0].rule != "crm" || fwd.sent[0].ev.ActionSource != capi.ActionSystemGenerated {
			t.Errorf("enqueued %+v; want only the crm rule's system_generated event", fwd.sent)
		}
		if len(skips.got) != 1 || skips.got[0].Status != deliver.StatusFailed || skips.got[0].Rule != "contact_form_lead" ||
			skips.got[0].Message != "not sent: event_source_url is required for action_source website" || !strings.Contains(skips.got[0].Payload, `"action_source":"website"`) {
			t.Errorf("deliveries = %+v; want one failed row for the website rule, with its payload", skips.got)
		}
	})
}

// Repeated submissions inside the window forward once; the others get a
// skipped_duplicate row. A retried batch is not a duplicate of itself,
// and after the window the next one forwards.
func TestDedupeWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := testRule()
		r.Dedupe = &Dedupe{By: []string{"email", "form_id"}, Within: 10 * time.Minute}
		e, fwd, skips := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{r}})
		time.Sleep(time.Second)
		sub := func(id, email string) ingest.Completion {
			c := liveCompletion()
			c.EventID, c.Identity.Email = id, email
			return c
		}
		first := sub("e1", "John.Doe@Example.com")
		again := sub("e2", "john.doe@example.com ")
		other := sub("e3", "jane@example.com")
		if err := e.Write(context.Background(), []ingest.Completion{first, again, other, first}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		later := sub("e4", "john.doe@example.com")
		if err := e.Write(context.Background(), []ingest.Completion{later}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range fwd.sent {
			ids = append(ids, s.ev.EventID)
		}
		if got := strings.Join(ids, " "); got != "e1 e3 e1 e4" {
			t.Errorf("forwarded %s; want e1 e3 e1 e4 (e2 repeats e1; e1 again is a retry)", got)
		}
		if len(skips.got) != 1 || skips.got[0].EventID != "e2" || skips.got[0].Status != StatusSkippedDuplicate ||
			skips.got[0].Message != "duplicate of event e1 within 10m0s by email, form_id" {
			t.Errorf("deliveries = %+v; want one skipped_duplicate row for e2", skips.got)
		}
	})
}

// Reload swaps the rules at once; a bad config leaves the old ones; a
// rule toggled off and on again forwards only what arrives after.
func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		r := testRule()
		e, fwd, _ := newTestEngine(t, dir, Config{Rules: []Rule{r}})
		enabled, _ := e.EnabledAt(r.Name)
		time.Sleep(time.Second)
		cfg := Config{Rules: []Rule{r}, Destinations: testDests(), Definitions: testDefs()}

		bad := cfg
		bad.Rules = []Rule{{Name: "broken", When: When{Event: "nope"}}}
		if err := e.Reload(bad); err == nil {
			t.Fatal("Reload(bad) = nil; want the problems")
		}
		if at, ok := e.EnabledAt(r.Name); !ok || !at.Equal(enabled) {
			t.Errorf("after a failed reload EnabledAt = %v, %v; want the old rule at %v", at, ok, enabled)
		}
		if err := e.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		if at, _ := e.EnabledAt(r.Name); !at.Equal(enabled) {
			t.Errorf("an unchanged rule's enabled-at moved from %v to %v on reload", enabled, at)
		}

		off := cfg
		off.Rules = []Rule{r}
		off.Rules[0].Enabled = ptr(false)
		if err := e.Reload(off); err != nil {
			t.Fatal(err)
		}
		whileOff := liveCompletion()
		time.Sleep(time.Second)
		if err := e.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		reenabled, _ := e.EnabledAt(r.Name)
		if !reenabled.After(enabled) {
			t.Errorf("re-enabled at %v; want after the first enable %v", reenabled, enabled)
		}
		after := liveCompletion()
		after.EventID = "after"
		if err := e.Write(context.Background(), []ingest.Completion{whileOff, after}); err != nil {
			t.Fatal(err)
		}
		if len(fwd.sent) != 1 || fwd.sent[0].ev.EventID != "after" {
			t.Errorf("forwarded %+v; want only the completion received after re-enabling", fwd.sent)
		}
	})
}

func TestCheckForwardFeatures(t *testing.T) {
	r := stageRule()
	r.Forward.EventNameFrom.Map["vip"] = "lead"
	r.Forward.CustomData = []CustomDataField{{Key: "num_items", Property: "order_ref"}, {Key: "value", Property: "score"}, {Key: "Bad-Key", Property: "score"}}
	r.Forward.ActionSource = "store"
	r.Dedupe = &Dedupe{By: []string{"email", "colour"}, Within: 0}
	r2 := testRule()
	r2.Name = "mirror_crm"
	r2.Forward.ActionSource = ActionPhoneCall
	defs := append(stageDefs(), testDefs()...)
	var got []string
	for _, e := range Check([]Rule{r, r2}, testDests(), defs) {
		got = append(got, e.Path+": "+e.Message)
	}
	want := []string{
		`rules[0].forward.event_name_from.map.vip: "vip" is not an option of enumeration property "stage" (options: lead, mql, sql, customer)`,
		`rules[0].forward.event_name_from.map.vip: event_name "lead" differs from Meta's standard event "Lead" only by case; Meta's names are case-exact: write Lead`,
		`rules[0].forward.action_source: action_source "store" is not one of website, system_generated, physical_store, phone_call, email, chat, other`,
		`rules[0].forward.custom_data[0].property: custom_data.num_items takes a number property; "order_ref" is string`,
		`rules[0].forward.custom_data[1].key: custom_data key "value" is set by tally (value and currency by forward.value and forward.currency)`,
		`rules[0].forward.custom_data[2].key: custom_data key "Bad-Key" must be 1–50 characters of a-z, 0-9 and _, starting with a letter`,
		`rules[0].dedupe.by[1]: "colour" is neither an identity (email, external_id, phone, visitor_id, object_id), a standard field nor a property of event "stage_changed"`,
		`rules[0].dedupe.within: within must be a duration between 1s and 168h (Meta's 7 days), like 10m`,
		`rules[1].forward.action_source: mirror_in_browser mirrors a website pixel event; action_source must be website (or absent)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Check =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The mirror gets the rule's dedupe window in the shape
// snippet/mirror_dedupe_test.go runs.
func TestBrowserRuleDedupe(t *testing.T) {
	r := testRule()
	r.Dedupe = &Dedupe{By: []string{"email", "form_id"}, Within: 10 * time.Minute}
	e, _, _ := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{r}})
	b, err := json.Marshal(e.BrowserRules("shop"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"d":{"b":[{"k":"email","i":true},{"k":"form_id"}],"w":600000}`; !strings.Contains(string(b), want) {
		t.Errorf("BrowserRules = %s; want it to hold %s", b, want)
	}
	r.Dedupe.By = []string{"visitor_id"}
	errs := Check([]Rule{r}, testDests(), testDefs())
	if len(errs) != 1 || errs[0].Path != "rules[0].dedupe.by[0]" || errs[0].Code != "FIELD_NOT_IN_BROWSER" {
		t.Errorf("Check(mirrored dedupe by visitor_id) = %v; want FIELD_NOT_IN_BROWSER at rules[0].dedupe.by[0]", errs)
	}
}

// Reload while the log reader writes: each batch sees one rule set (run
// with -race).
func TestReloadWhileWriting(t *testing.T) {
	e, _, _ := newTestEngine(t, t.TempDir(), Config{Rules: []Rule{testRule()}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			e.Write(context.Background(), []ingest.Completion{liveCompletion()})
		}
	}()
	for i := 0; i < 20; i++ {
		r := testRule()
		r.Enabled = ptr(i%2 == 0)
		if err := e.Reload(Config{Rules: []Rule{r}, Destinations: testDests(), Definitions: testDefs()}); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// The dedupe memory stays within its bound: expired windows go first.
func TestDedupeMemoryBounded(t *testing.T) {
	r := testRule()
	r.Dedupe = &Dedupe{By: []string{"email"}, Within: time.Minute}
	cr := compileOne(t, r)
	m := newDedupeMemory(10)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 100; i++ {
		c := testCompletion()
		c.EventID, c.Identity.Email, c.OccurredAt = fmt.Sprint("e", i), fmt.Sprintf("p%d@example.com", i), at.Add(time.Duration(i)*time.Second)
		m.remember(cr, &c)
		if len(m.keys) > 10 {
			t.Fatalf("after %d keys the memory holds %d; want at most 10", i+1, len(m.keys))
		}
	}
	c := testCompletion()
	c.EventID, c.Identity.Email, c.OccurredAt = "again", "p99@example.com", at.Add(100*time.Second)
	if first, dup := m.seen(cr, &c); !dup || first != "e99" {
		t.Errorf("seen(p99 again) = %q, %v; want the latest key kept", first, dup)
	}
}
