package rules

import (
	"slices"

	"github.com/tally-analytics/tally/ingest"
)

// BrowserRule is one mirror_in_browser rule as the snippet receives it
// (snippet/src/mirror.js reads it). Keys are short because every site's
// script carries its rules.
type BrowserRule struct {
	Rule     string            `json:"r"`           // rule name, for the snippet's debug hook
	Events   []string          `json:"e"`           // tally event names
	Where    []BrowserFilter   `json:"w,omitempty"` // all must hold
	Any      [][]BrowserFilter `json:"a,omitempty"` // when given, one group must hold entirely
	Name     string            `json:"n"`           // Meta event name
	Custom   bool              `json:"c,omitempty"` // fbq('trackCustom') instead of fbq('track')
	Value    *BrowserValue     `json:"v,omitempty"`
	Currency string            `json:"$,omitempty"`
	Consent  *BrowserFilter    `json:"g,omitempty"` // the rule's consent gate, as an is_equal_to filter
	Dedupe   *BrowserDedupe    `json:"d,omitempty"` // the rule's dedupe window
	NameFrom *BrowserNameFrom  `json:"m,omitempty"` // event names from a property (then Name is empty)
}

// BrowserNameFrom is event_name_from for the mirror: the property, its
// type (s or e) and options, the map, and which mapped names are Meta's
// standard events (fbq('track')); the others are custom.
type BrowserNameFrom struct {
	Property string            `json:"p"`
	Type     string            `json:"t"`
	Options  []string          `json:"x,omitempty"`
	Map      map[string]string `json:"k"`
	Standard []string          `json:"y,omitempty"`
}

// BrowserDedupe is a rule's dedupe window for the mirror: the same keys
// and window as the server's, so a repeated submission fires the pixel
// once, as the server forwards it once.
type BrowserDedupe struct {
	By     []BrowserKey `json:"b"`
	Within int64        `json:"w"` // milliseconds
}

// BrowserKey is one dedupe.by key: an identify trait (email,
// external_id, phone), a standard field or a property.
type BrowserKey struct {
	Key      string `json:"k"`
	Field    bool   `json:"f,omitempty"`
	Identity bool   `json:"i,omitempty"`
}

// BrowserFilter is a filter with what the browser needs to normalise the
// raw property value exactly as the server does: its type and, for
// enumerations, the options. Type and operation are short codes
// (browserTypes, browserOps) to keep the script small.
type BrowserFilter struct {
	Property string   `json:"p"`           // the property's, or with Field the standard field's, name
	Field    bool     `json:"f,omitempty"` // a standard field (url, path, referrer, page_title, utm_*, click_id, click_id_param, fbc, fbp)
	Type     string   `json:"t"`
	Op       string   `json:"o"`
	Values   []string `json:"v,omitempty"` // normalised (numbers shortest, datetimes epoch ms, dates YYYY-MM-DD)
	Options  []string `json:"x,omitempty"`
}

// browserTypes and browserOps are the short codes mirror.js knows.
var (
	browserTypes = map[ingest.PropertyType]string{
		ingest.TypeString: "s", ingest.TypeNumber: "n", ingest.TypeDatetime: "t",
		ingest.TypeDate: "d", ingest.TypeEnumeration: "e", ingest.TypeBool: "b",
	}
	browserOps = map[Op]string{
		OpEqual: "eq", OpNotEqual: "ne", OpContains: "co", OpNotContains: "nc",
		OpStartsWith: "sw", OpEndsWith: "ew", OpMatchesRegex: "re", OpAnyOf: "in",
		OpNoneOf: "ni", OpGreater: "gt", OpGreaterOrEqual: "ge", OpLess: "lt",
		OpLessOrEqual: "le", OpBetween: "bt", OpKnown: "k", OpUnknown: "u",
	}
)

// BrowserValue is the value mapping: Fixed, or Property with Default.
type BrowserValue struct {
	Fixed    *float64 `json:"f,omitempty"`
	Property string   `json:"p,omitempty"`
	Default  *float64 `json:"d,omitempty"`
}

// BrowserRules returns the enabled mirror_in_browser rules that apply to
// the site, for snippet.Config.Mirrors; nil when there are none.
func (e *Engine) BrowserRules(site string) any {
	var out []BrowserRule
	for _, r := range e.rules() {
		if br, ok := browserRule(r.compiled, site); ok {
			out = append(out, br)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// BrowserRulesOf is BrowserRules for a config not yet in force (a reload
// builds the new scripts before the engine swaps): its enabled
// mirror_in_browser rules for the site. A config that fails Check gives
// none.
func BrowserRulesOf(cfg Config, site string) any {
	rules, errs := compile(cfg.Rules, cfg.Destinations, cfg.Definitions)
	if len(errs) > 0 {
		return nil
	}
	var out []BrowserRule
	for _, r := range rules {
		if !r.rule.IsEnabled() {
			continue
		}
		if br, ok := browserRule(r, site); ok {
			out = append(out, br)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func browserRule(r *compiled, site string) (BrowserRule, bool) {
	fw := &r.rule.Forward
	if !fw.MirrorInBrowser || r.dest.Mode != ModeWebsite {
		return BrowserRule{}, false
	}
	if len(r.rule.When.Sites) > 0 && !slices.Contains(r.rule.When.Sites, site) {
		return BrowserRule{}, false
	}
	// The site and source are known when the site's script is built: a
	// filter on them is decided here, and the script carries the rest.
	where, ok := staticFilters(r.where, site)
	if !ok {
		return BrowserRule{}, false
	}
	br := BrowserRule{
		Rule:   r.name,
		Events: r.events,
		Where:  browserFilters(where),
		Name:   fw.EventName,
		Custom: !IsStandardEvent(fw.EventName),
	}
	for _, g := range r.any {
		fs, ok := staticFilters(g, site)
		if !ok {
			continue // this alternative never holds on this site
		}
		if len(fs) == 0 {
			br.Any = nil // this alternative always holds
			break
		}
		br.Any = append(br.Any, browserFilters(fs))
	}
	if len(r.any) > 0 && br.Any == nil && !anyAlwaysHolds(r.any, site) {
		return BrowserRule{}, false
	}
	if v := fw.Value; v != nil {
		br.Value = &BrowserValue{Fixed: v.Fixed, Property: v.Property, Default: v.Default}
		br.Currency = fw.Currency
	}
	if r.consent != nil {
		f := browserFilters([]*filter{r.consent})[0]
		br.Consent = &f
	}
	if m := fw.EventNameFrom; m != nil {
		nf := &BrowserNameFrom{Property: m.Property, Type: browserTypes[ingest.TypeString], Map: m.Map}
		if r.nameFromEnum {
			nf.Type = browserTypes[ingest.TypeEnumeration]
			nf.Options = r.nameFromOptions
		}
		for _, n := range m.Map {
			if IsStandardEvent(n) && !slices.Contains(nf.Standard, n) {
				nf.Standard = append(nf.Standard, n)
			}
		}
		slices.Sort(nf.Standard)
		br.NameFrom, br.Custom = nf, false
	}
	if d := r.rule.Dedupe; d != nil {
		bd := &BrowserDedupe{Within: d.Within.Milliseconds()}
		for _, by := range d.By {
			bd.By = append(bd.By, BrowserKey{Key: by, Identity: slices.Contains(dedupeIdentity, by), Field: slices.Contains(standardFields, by)})
		}
		br.Dedupe = bd
	}
	return br, true
}

// staticFilters decides the filters on site and source for a browser
// completion of site: ok is false when one fails; the others are returned.
func staticFilters(fs []*filter, site string) (rest []*filter, ok bool) {
	c := ingest.Completion{Site: site, Source: ingest.SourceBrowser}
	for _, f := range fs {
		if f.field && (f.prop == FieldSite || f.prop == FieldSource) {
			if !f.match(standardField(&c, f.prop)) {
				return nil, false
			}
			continue
		}
		rest = append(rest, f)
	}
	return rest, true
}

// anyAlwaysHolds reports whether some group of any holds on site by its
// static filters alone.
func anyAlwaysHolds(any [][]*filter, site string) bool {
	for _, g := range any {
		if fs, ok := staticFilters(g, site); ok && len(fs) == 0 {
			return true
		}
	}
	return false
}

func browserFilters(fs []*filter) []BrowserFilter {
	out := make([]BrowserFilter, len(fs))
	for i, f := range fs {
		out[i] = BrowserFilter{Property: f.prop, Field: f.field, Type: browserTypes[f.typ], Op: browserOps[f.op], Values: f.canon}
		if f.typ == ingest.TypeEnumeration {
			out[i].Options = f.opts
		}
	}
	return out
}
