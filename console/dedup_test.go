package console

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules"
	"github.com/tally-analytics/tally/store"
)

func TestDedupClassifiesEachConversion(t *testing.T) {
	const rule = "lead"
	d := func(id, status string) store.Delivery {
		return store.Delivery{EventID: id, Rule: rule, Status: status}
	}
	since := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r := func(id string, src ingest.Source, mirror ...string) store.MirrorReport {
		return store.MirrorReport{EventID: id, Source: src, Mirror: mirror, ReceivedAt: since.Add(time.Hour)}
	}
	// Outcomes newest first: "retried" was retrying, then sent.
	ds := []store.Delivery{d("both", "sent"), d("retried", "sent"), d("retried", "retrying"), d("api", "sent"), d("queued", "sent"),
		d("nopixel", "sent"), d("failed", "failed"), d("gpc", "skipped_consent"), d("old", "sent")}
	reports := []store.MirrorReport{
		r("both", ingest.SourceBrowser, "lead=sent"), r("retried", ingest.SourceBrowser, "other=queued", "lead=sent"),
		r("api", ingest.SourceAPI), r("queued", ingest.SourceBrowser, "lead=queued"), r("nopixel", ingest.SourceBrowser, "lead=no_pixel"),
		r("failed", ingest.SourceBrowser, "lead=sent"), r("gpc", ingest.SourceBrowser, "*=gpc"),
		r("pending", ingest.SourceBrowser, "lead=sent"), r("unrelated", ingest.SourceBrowser, "other=sent"),
		// Before the window: its outcome, if any, is too.
		{EventID: "earlier", Source: ingest.SourceBrowser, Mirror: []string{"lead=sent"}, ReceivedAt: since.Add(-time.Hour)},
	}
	got := dedupOf(rule, since, ds, reports)
	if got.Both != 2 || got.ServerOnly != 4 || got.BrowserOnly != 2 || got.Neither != 1 {
		t.Errorf("both %d, server only %d, browser only %d, neither %d; want 2, 4, 2, 1", got.Both, got.ServerOnly, got.BrowserOnly, got.Neither)
	}
	if s := got.Share(); s != 0.25 {
		t.Errorf("Share = %v; want 2 of 8 = 0.25", s)
	}
	why := map[string]string{}
	for _, e := range got.Examples {
		why[e.EventID] = e.Kind + ": " + e.Why
	}
	for id, want := range map[string]string{
		"api":     "server only: sent through the api path: no browser",
		"queued":  "server only: the pixel had not loaded yet (lost when the page closed early)",
		"nopixel": "server only: no Meta pixel on the page",
		"old":     "server only: the completion is not in the window (older, or erased)",
		"failed":  "browser only: server: failed",
		"pending": "browser only: no server outcome yet (not matched on the server, a bot, or still queued)",
		"gpc":     "neither: Global Privacy Control",
	} {
		if why[id] != want {
			t.Errorf("%s: %q; want %q", id, why[id], want)
		}
	}
	if _, ok := why["unrelated"]; ok {
		t.Error("a completion the rule neither forwarded nor mirrored is counted")
	}
	if _, ok := why["earlier"]; ok {
		t.Error("a mirrored completion received before the window is counted")
	}
	var ns []int
	for _, r := range got.Reasons {
		ns = append(ns, r.N)
	}
	if !slices.IsSortedFunc(ns, func(a, b int) int { return b - a }) {
		t.Errorf("reasons %v not sorted by count, most first", got.Reasons)
	}
}

func TestReportOf(t *testing.T) {
	m := []string{"a=b=sent", "*=gpc"}
	for rule, want := range map[string]string{"a=b": "sent", "*": "gpc", "a": "", "": ""} {
		if got := reportOf(m, rule); got != want {
			t.Errorf("reportOf(%q, %q) = %q; want %q", m, rule, got, want)
		}
	}
}

// busyStore has a full read of outcomes for every rule.
type busyStore struct{ downStore }

func (busyStore) Deliveries(_ context.Context, rule string, since time.Time, limit int) ([]store.Delivery, error) {
	ds := make([]store.Delivery, limit)
	for i := range ds {
		ds[i] = store.Delivery{EventID: fmt.Sprint("e", i), Rule: rule, Status: "sent", At: since.Add(time.Minute)}
	}
	return ds, nil
}

func (busyStore) MirrorReports(context.Context, []string, time.Time) ([]store.MirrorReport, error) {
	return nil, nil
}

// When a read comes back full, the deduplication page says its counts are
// of the newest only; when it does not, it says nothing of the kind.
func TestDedupSaysWhenCountsArePartial(t *testing.T) {
	rules := func() []Rule {
		return []Rule{{Name: "leads", Events: []string{"form_submitted"}, Destination: "meta", DestinationType: rules.TypeMetaCAPI, Enabled: true}}
	}
	for _, tt := range []struct {
		store Store
		want  bool
	}{{busyStore{}, true}, {downStore{}, false}} {
		c := New(Config{Store: tt.store, Rules: rules, Definitions: func() []ingest.Definition { return nil }})
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", "/console/dedup", nil))
		if got := strings.Contains(rec.Body.String(), "the counts are of the newest only"); rec.Code != 200 || got != tt.want {
			t.Errorf("%T: GET /console/dedup = %d, says partial %v; want 200, %v", tt.store, rec.Code, got, tt.want)
		}
	}
}
