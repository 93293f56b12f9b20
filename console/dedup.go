package console

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/store"
)

// How one conversion of a Meta rule reached Meta.
const (
	KindBoth        = "both"         // the pixel fired and the server event was sent: Meta deduplicates the pair
	KindServerOnly  = "server only"  // only the server event reached Meta
	KindBrowserOnly = "browser only" // only the pixel fired
	KindNeither     = "neither"      // nothing reached Meta (consent, GPC, a failure)
)

// Dedup is what a Meta rule's conversions looked like from both sides.
type Dedup struct {
	Both, ServerOnly, BrowserOnly, Neither int
	// Reasons count why conversions were not both, by kind and reason.
	Reasons []Reason
	// Examples are the newest conversions that were not both.
	Examples []DedupExample
}

// Reason is how many conversions of one kind had one reason.
type Reason struct {
	Kind, Why string
	N         int
}

// DedupExample is one conversion that Meta cannot deduplicate.
type DedupExample struct {
	EventID, Kind, Why string
}

// Share is the fraction of conversions that reached Meta from both sides,
// of those that reached it at all; 0 when none did.
func (d Dedup) Share() float64 {
	n := d.Both + d.ServerOnly + d.BrowserOnly
	if n == 0 {
		return 0
	}
	return float64(d.Both) / float64(n)
}

// maxExamples bounds the examples a Dedup keeps.
const maxExamples = 50

// dedupOf joins a rule's delivery outcomes since the given time (newest
// first) with the snippet's mirror reports of the same completions. A
// conversion is an event id with an outcome for the rule, or a completion
// received since then whose report names the rule; its server side is its
// newest outcome, its browser side the report.
func dedupOf(rule string, since time.Time, ds []store.Delivery, reports []store.MirrorReport) Dedup {
	byID := make(map[string]*store.MirrorReport, len(reports))
	for i := range reports {
		byID[reports[i].EventID] = &reports[i]
	}
	var ids []string
	latest := map[string]*store.Delivery{}
	for i := range ds {
		if _, ok := latest[ds[i].EventID]; !ok {
			latest[ds[i].EventID] = &ds[i]
			ids = append(ids, ds[i].EventID)
		}
	}
	for _, r := range reports {
		if _, ok := latest[r.EventID]; !ok && !r.ReceivedAt.Before(since) && reportOf(r.Mirror, rule) != "" {
			ids = append(ids, r.EventID)
		}
	}
	var d Dedup
	reasons := map[[2]string]int{}
	for _, id := range ids {
		kind, why := classify(rule, latest[id], byID[id])
		switch kind {
		case KindBoth:
			d.Both++
			continue
		case KindServerOnly:
			d.ServerOnly++
		case KindBrowserOnly:
			d.BrowserOnly++
		default:
			d.Neither++
		}
		reasons[[2]string{kind, why}]++
		if len(d.Examples) < maxExamples {
			d.Examples = append(d.Examples, DedupExample{EventID: id, Kind: kind, Why: why})
		}
	}
	for k, n := range reasons {
		d.Reasons = append(d.Reasons, Reason{Kind: k[0], Why: k[1], N: n})
	}
	slices.SortFunc(d.Reasons, func(a, b Reason) int {
		return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Why, b.Why))
	})
	return d
}

// classify says how one conversion reached Meta, and why when not from
// both sides. d (the newest outcome) and r (the report) may be nil.
func classify(rule string, d *store.Delivery, r *store.MirrorReport) (kind, why string) {
	sent := d != nil && d.Status == "sent"
	var browser, all string
	if r != nil {
		browser, all = reportOf(r.Mirror, rule), reportOf(r.Mirror, "*")
	}
	fired := browser == "sent"
	switch {
	case fired && sent:
		return KindBoth, ""
	case sent:
		switch {
		case r == nil:
			return KindServerOnly, "the completion is not in the window (older, or erased)"
		case r.Source != ingest.SourceBrowser:
			return KindServerOnly, "sent through the " + string(r.Source) + " path: no browser"
		case browser == "queued":
			return KindServerOnly, "the pixel had not loaded yet (lost when the page closed early)"
		case browser == "no_pixel":
			return KindServerOnly, "no Meta pixel on the page"
		case browser == "duplicate":
			return KindServerOnly, "the browser took it for a duplicate within the rule's window"
		default:
			return KindServerOnly, "the browser did not mirror it (rule not mirrored in the browser, or an older snippet)"
		}
	case fired:
		if d == nil {
			return KindBrowserOnly, "no server outcome yet (not matched on the server, a bot, or still queued)"
		}
		return KindBrowserOnly, "server: " + outcome(d)
	}
	switch all {
	case "gpc":
		return KindNeither, "Global Privacy Control"
	case "no_consent":
		return KindNeither, "no ads consent"
	}
	if d == nil {
		return KindNeither, "pixel: " + browser
	}
	return KindNeither, "server: " + outcome(d)
}

func outcome(d *store.Delivery) string {
	if d.Message == "" {
		return d.Status
	}
	return d.Status + " (" + d.Message + ")"
}

// reportOf finds what a mirror report says for rule ("" when nothing).
// Entries are rule=outcome; a rule name may itself hold "=".
func reportOf(mirror []string, rule string) string {
	for _, m := range mirror {
		if i := strings.LastIndexByte(m, '='); i >= 0 && m[:i] == rule {
			return m[i+1:]
		}
	}
	return ""
}
