package rules

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tally-analytics/tally/ingest"
)

// Limits on names in the rules section.
const (
	maxRuleNameLen  = 100
	maxEventNameLen = 50 // Meta: custom event names are at most 50 characters
)

var (
	pixelIDPattern    = regexp.MustCompile(`^[0-9]{1,20}$`)
	apiVersionPattern = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)
)

// Check validates the destinations and rules of a config against each
// other and the event definitions. Every problem is reported, each with
// its YAML path ("rules[1].when.where[0].op").
func Check(rules []Rule, dests []Destination, defs []ingest.Definition) []ingest.FieldError {
	_, errs := compile(rules, dests, defs)
	return errs
}

// CheckSites reports rules whose when.sites names a site that is not
// configured.
func CheckSites(rules []Rule, siteIDs []string) []ingest.FieldError {
	var errs []ingest.FieldError
	for i, r := range rules {
		for j, s := range r.When.Sites {
			if !slices.Contains(siteIDs, s) {
				errs = append(errs, ingest.FieldError{Path: fmt.Sprintf("rules[%d].when.sites[%d]", i, j), Code: "UNKNOWN_SITE",
					Message: fmt.Sprintf("site %q is not configured under sites", s)})
			}
		}
	}
	return errs
}

// compiled is a rule ready to run: filters typed by their definitions.
type compiled struct {
	name    string
	rule    Rule
	dest    Destination // with defaults
	events  []string
	where   []*filter
	any     [][]*filter
	consent *filter // nil: no property gate
}

// checker collects problems while compiling.
type checker struct {
	errs []ingest.FieldError
}

func (c *checker) add(path, code, format string, args ...any) {
	c.errs = append(c.errs, ingest.FieldError{Path: path, Code: code, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) addProblem(base string, p *fieldProblem) {
	c.add(base+"."+p.field, p.code, "%s", p.msg)
}

// compile checks and compiles every rule; rules with problems are left out
// of the result.
func compile(rules []Rule, dests []Destination, defs []ingest.Definition) ([]*compiled, []ingest.FieldError) {
	c := &checker{}
	destByName := c.checkDestinations(dests)
	defByName := map[string]*ingest.Definition{ingest.PageViewEvent: {Name: ingest.PageViewEvent}}
	for i := range defs {
		defByName[defs[i].Name] = &defs[i]
	}
	seen := map[string]int{}
	var out []*compiled
	for i, r := range rules {
		path := fmt.Sprintf("rules[%d]", i)
		before := len(c.errs)
		switch n := utf8.RuneCountInString(r.Name); {
		case n == 0:
			c.add(path+".name", "MISSING_NAME", "rule name is required")
		case n > maxRuleNameLen:
			c.add(path+".name", "NAME_TOO_LONG", "rule name is %d characters; the limit is %d", n, maxRuleNameLen)
		}
		if j, dup := seen[r.Name]; dup && r.Name != "" {
			c.add(path+".name", "DUPLICATE_RULE", "rule %q is already defined at rules[%d]", r.Name, j)
		}
		seen[r.Name] = i
		cr := &compiled{name: r.Name, rule: r}
		evDefs := c.checkEvents(path+".when", &r.When, defByName)
		cr.events = r.When.EventNames()
		for j, f := range r.When.Where {
			cr.where = append(cr.where, c.compileFilter(fmt.Sprintf("%s.when.where[%d]", path, j), f, evDefs))
		}
		for g, grp := range r.When.Any {
			gp := fmt.Sprintf("%s.when.any[%d]", path, g)
			if len(grp.Where) == 0 {
				c.add(gp+".where", "EMPTY_GROUP", "an any group needs at least one filter under where")
			}
			var fs []*filter
			for j, f := range grp.Where {
				fs = append(fs, c.compileFilter(fmt.Sprintf("%s.where[%d]", gp, j), f, evDefs))
			}
			cr.any = append(cr.any, fs)
		}
		if r.Forward.MirrorInBrowser {
			c.checkMirrorFields(path+".when", &r.When)
		}
		cr.dest, cr.consent = c.checkForward(path+".forward", &r.Forward, destByName, evDefs)
		if len(c.errs) == before {
			out = append(out, cr)
		}
	}
	return out, c.errs
}

func (c *checker) checkDestinations(dests []Destination) map[string]Destination {
	byName := map[string]Destination{}
	for i, d := range dests {
		path := fmt.Sprintf("destinations[%d]", i)
		if d.Name == "" {
			c.add(path+".name", "MISSING_NAME", "destination name is required")
		} else if _, dup := byName[d.Name]; dup {
			c.add(path+".name", "DUPLICATE_DESTINATION", "destination %q is defined twice", d.Name)
		}
		if d.Type != TypeMetaCAPI {
			c.add(path+".type", "UNKNOWN_DESTINATION_TYPE", "unknown destination type %q; use %s", d.Type, TypeMetaCAPI)
		}
		if !pixelIDPattern.MatchString(d.PixelID) {
			c.add(path+".pixel_id", "INVALID_PIXEL_ID", "pixel_id %q must be the pixel's (or dataset's) numeric id, quoted", d.PixelID)
		}
		if d.AccessToken == "" {
			c.add(path+".access_token", "MISSING_ACCESS_TOKEN", "access_token is required; reference a secret as ${ENV_NAME}")
		}
		if d.APIVersion != "" && !apiVersionPattern.MatchString(d.APIVersion) {
			c.add(path+".api_version", "INVALID_API_VERSION", "api_version %q must look like %s", d.APIVersion, DefaultAPIVersion)
		}
		if d.GraphURL != "" {
			u, err := url.Parse(d.GraphURL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				c.add(path+".graph_url", "INVALID_URL", "graph_url %q must be an absolute http(s) URL such as %s", d.GraphURL, DefaultGraphURL)
			}
		}
		switch d.Mode {
		case "", ModeWebsite:
			if d.LeadEventSource != "" {
				c.add(path+".lead_event_source", "UNEXPECTED_FIELD", "lead_event_source is only for mode: %s", ModeConversionLeads)
			}
		case ModeConversionLeads:
			if strings.TrimSpace(d.LeadEventSource) == "" {
				c.add(path+".lead_event_source", "MISSING_LEAD_EVENT_SOURCE", "mode %s needs lead_event_source: the CRM's name (HubSpot, Salesforce, In-house CRM…)", ModeConversionLeads)
			}
		default:
			c.add(path+".mode", "INVALID_MODE", "unknown mode %q; use %s or %s", d.Mode, ModeWebsite, ModeConversionLeads)
		}
		if d.Name != "" {
			if _, dup := byName[d.Name]; !dup {
				byName[d.Name] = d.WithDefaults()
			}
		}
	}
	return byName
}

// checkMirrorFields refuses, on a mirrored rule, filters on the fields
// only the server knows: the pixel would fire where the server does not
// forward, or the reverse.
func (c *checker) checkMirrorFields(path string, w *When) {
	check := func(p string, fs []Filter) {
		for j, f := range fs {
			if slices.Contains(serverOnlyFields, f.Field) {
				c.add(fmt.Sprintf("%s[%d].field", p, j), "FIELD_NOT_IN_BROWSER",
					"field %s is known only on the server (%s are derived there), so a rule with mirror_in_browser cannot filter on it; drop mirror_in_browser or the filter", f.Field, strings.Join(serverOnlyFields, ", "))
			}
		}
	}
	check(path+".where", w.Where)
	for g, grp := range w.Any {
		check(fmt.Sprintf("%s.any[%d].where", path, g), grp.Where)
	}
}

// checkEvents checks when.event/events and returns the named definitions.
func (c *checker) checkEvents(path string, w *When, defs map[string]*ingest.Definition) []*ingest.Definition {
	if w.Event != "" && len(w.Events) > 0 {
		c.add(path+".events", "CONFLICTING_FIELDS", "use either event or events, not both")
	}
	if w.Event == "" && len(w.Events) == 0 {
		c.add(path+".event", "MISSING_EVENT", "when needs an event (or events: [...])")
		return nil
	}
	var out []*ingest.Definition
	check := func(p, name string) {
		d, ok := defs[name]
		if !ok {
			c.add(p, "UNKNOWN_EVENT", "event %q is not defined under events", name)
			return
		}
		out = append(out, d)
	}
	if w.Event != "" {
		check(path+".event", w.Event)
	}
	for i, e := range w.Events {
		check(fmt.Sprintf("%s.events[%d]", path, i), e)
	}
	for i, s := range w.Sites {
		if s == "" {
			c.add(fmt.Sprintf("%s.sites[%d]", path, i), "MISSING_NAME", "site id is empty")
		}
	}
	return out
}

// property finds name on every definition of the rule's events; it must
// have the same type (and options) on each.
func (c *checker) property(path, name string, defs []*ingest.Definition) *ingest.Property {
	if name == "" {
		c.add(path, "MISSING_PROPERTY", "property is required")
		return nil
	}
	var first *ingest.Property
	for _, d := range defs {
		p, ok := d.Property(name)
		if !ok {
			c.add(path, "UNKNOWN_PROPERTY", "property %q is not defined on event %q", name, d.Name)
			return nil
		}
		if first == nil {
			first = p
			continue
		}
		if p.Type != first.Type || !slices.Equal(p.Options, first.Options) {
			c.add(path, "PROPERTY_TYPE_MISMATCH", "property %q has a different type or options on event %q than on %q; use one rule per event", name, d.Name, defs[0].Name)
			return nil
		}
	}
	return first
}

func (c *checker) compileFilter(path string, f Filter, defs []*ingest.Definition) *filter {
	if len(defs) == 0 && f.Field == "" {
		return nil // the event is already reported
	}
	var p *ingest.Property
	switch {
	case f.Field != "" && f.Property != "":
		c.add(path+".field", "CONFLICTING_FIELDS", "a filter tests either a property or a field, not both")
		return nil
	case f.Field != "":
		var ok bool
		if p, ok = fieldProperty(f.Field); !ok {
			c.add(path+".field", "UNKNOWN_FIELD", "unknown field %q; standard fields are %s (custom properties: write property: instead)", f.Field, strings.Join(standardFields, ", "))
		}
	default:
		p = c.property(path+".property", f.Property, defs)
	}
	if p == nil {
		if !knownOp(f.Op) {
			c.add(path+".op", "UNKNOWN_OPERATION", "unknown operation %q; use one of %s", f.Op, joinOps(allOps))
		}
		return nil
	}
	cf, prob := compileFilter(f, p)
	if prob != nil {
		c.addProblem(path, prob)
		return nil
	}
	cf.field = f.Field != ""
	return cf
}

func (c *checker) checkForward(path string, fw *Forward, dests map[string]Destination, defs []*ingest.Definition) (Destination, *filter) {
	dest, ok := dests[fw.To]
	switch {
	case fw.To == "":
		c.add(path+".to", "MISSING_DESTINATION", "forward needs to: a destination name")
	case !ok:
		c.add(path+".to", "UNKNOWN_DESTINATION", "destination %q is not defined under destinations", fw.To)
	}
	leads := ok && dest.Mode == ModeConversionLeads

	switch n := utf8.RuneCountInString(fw.EventName); {
	case n == 0:
		c.add(path+".event_name", "MISSING_EVENT_NAME", "forward needs event_name: a Meta standard event (Lead, Purchase, …) or a custom name")
	case n > maxEventNameLen:
		c.add(path+".event_name", "NAME_TOO_LONG", "event_name is %d characters; Meta allows %d", n, maxEventNameLen)
	case !leads && !IsStandardEvent(fw.EventName):
		if s, ok := standardEventFold(fw.EventName); ok {
			c.add(path+".event_name", "EVENT_NAME_CASE", "event_name %q differs from Meta's standard event %q only by case; Meta's names are case-exact: write %s", fw.EventName, s, s)
		}
	}

	if v := fw.Value; v != nil {
		c.checkValue(path+".value", v, defs)
	}
	if fw.Currency != "" && !isCurrency(fw.Currency) {
		hint := ""
		if isCurrency(strings.ToUpper(fw.Currency)) {
			hint = fmt.Sprintf("; write %s", strings.ToUpper(fw.Currency))
		}
		c.add(path+".currency", "INVALID_CURRENCY", "currency %q is not an ISO 4217 code (three upper-case letters such as EUR, USD)%s", fw.Currency, hint)
	}
	if fw.Currency != "" && fw.Value == nil {
		c.add(path+".currency", "CURRENCY_WITHOUT_VALUE", "currency is sent with a value; add value: {fixed: …} or {property: …, default: …}")
	}
	if fw.EventName == "Purchase" {
		if fw.Value == nil || (fw.Value.Fixed == nil && fw.Value.Default == nil) {
			c.add(path+".value", "MISSING_VALUE", "Meta requires a value on Purchase: give value: {fixed: …} or {property: …, default: …}")
		}
		if fw.Currency == "" {
			c.add(path+".currency", "MISSING_CURRENCY", "Meta requires a currency on Purchase")
		}
	}

	seen := map[string]bool{}
	for i, s := range fw.Share {
		p := fmt.Sprintf("%s.share[%d]", path, i)
		switch {
		case !slices.Contains(shareItems, s):
			c.add(p, "UNKNOWN_SHARE", "unknown share item %q; use any of %s", s, strings.Join(shareItems, ", "))
		case seen[s]:
			c.add(p, "DUPLICATE_SHARE", "share item %q is listed twice", s)
		}
		seen[s] = true
	}
	if ok && !leads && !seen[ShareUserAgent] {
		c.add(path+".share", "MISSING_USER_AGENT", "Meta requires client_user_agent on website events: add user_agent to share")
	}

	var consent *filter
	if g := fw.Consent; g != nil {
		if p := c.property(path+".consent.property", g.Property, defs); p != nil {
			v := g.Equals
			f, prob := compileFilter(Filter{Property: g.Property, Op: OpEqual, Value: &v}, p)
			if prob != nil {
				c.add(path+".consent.equals", prob.code, "%s", prob.msg)
			}
			consent = f
		}
	}

	if leads {
		if fw.MirrorInBrowser {
			c.add(path+".mirror_in_browser", "MIRROR_NOT_FOR_LEADS", "conversion_leads events are CRM stages with no browser pixel twin; remove mirror_in_browser")
		}
		if fw.LeadID != nil {
			if p := c.property(path+".lead_id.property", fw.LeadID.Property, defs); p != nil && p.Type != ingest.TypeString {
				// 17-digit ids exceed what a float64 number property holds
				// exactly (2^53 ≈ 9.0e15), so a number type would corrupt them.
				c.add(path+".lead_id.property", "INVALID_LEAD_ID", "lead_id property %q is %s; define it as string: lead ids have up to 17 digits, more than a number property holds exactly", p.Name, p.Type)
			}
		}
	} else if ok && fw.LeadID != nil {
		c.add(path+".lead_id", "UNEXPECTED_FIELD", "lead_id is only for destinations with mode: %s", ModeConversionLeads)
	}
	return dest, consent
}

func (c *checker) checkValue(path string, v *Value, defs []*ingest.Definition) {
	switch {
	case v.Fixed != nil && v.Property != "":
		c.add(path, "CONFLICTING_FIELDS", "value takes fixed or property (with default), not both")
	case v.Fixed == nil && v.Property == "":
		c.add(path, "MISSING_VALUE", "value needs fixed: <number> or property: <number property>")
	case v.Fixed != nil:
		if v.Default != nil {
			c.add(path+".default", "UNEXPECTED_FIELD", "default is only used with property")
		}
		if !validAmount(*v.Fixed) {
			c.add(path+".fixed", "INVALID_VALUE", "fixed value %v must be a finite number ≥ 0", *v.Fixed)
		}
	default:
		if p := c.property(path+".property", v.Property, defs); p != nil && p.Type != ingest.TypeNumber {
			c.add(path+".property", "VALUE_NOT_NUMBER", "value property %q is %s; the value must come from a number property", p.Name, p.Type)
		}
		if v.Default != nil && !validAmount(*v.Default) {
			c.add(path+".default", "INVALID_VALUE", "default value %v must be a finite number ≥ 0", *v.Default)
		}
	}
}

func validAmount(f float64) bool { return f >= 0 && !math.IsInf(f, 0) && !math.IsNaN(f) }

// isCurrency reports whether s is an active ISO 4217 code.
func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < len(currencies); i += 4 {
		if currencies[i:i+3] == s {
			return true
		}
	}
	return false
}

// currencies are the active ISO 4217 alphabetic codes (list one, 2024),
// space-separated so isCurrency can step by four.
const currencies = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD " +
	"CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP " +
	"GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR " +
	"LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP " +
	"PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP " +
	"TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL "
