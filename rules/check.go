package rules

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
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
	// nameFromEnum: event_name_from reads an enumeration (each selected
	// option maps on its own).
	nameFromEnum    bool
	nameFromOptions []string // the enumeration's options, for the browser
	// customTypes are the types of the custom_data properties, by index.
	customTypes []ingest.PropertyType
	name        string
	rule        Rule
	dest        Destination // with defaults
	events      []string
	where       []*filter
	any         [][]*filter
	consent     *filter // nil: no property gate
	// mapping is what the destination type compiled of forward (the
	// salesforce task's template…); nil for Meta, which maps with the
	// fields above.
	mapping any
}

// checker collects problems while compiling.
type checker struct {
	errs []ingest.FieldError
}

func (c *checker) add(path, code, format string, args ...any) {
	c.errs = append(c.errs, ingest.FieldError{Path: path, Code: code, Message: fmt.Sprintf(format, args...)})
}

// addAll adds the problems a destination package found in its block, their
// paths under prefix.
func (c *checker) addAll(prefix string, errs []ingest.FieldError) {
	for _, fe := range errs {
		fe.Path = prefix + fe.Path
		c.errs = append(c.errs, fe)
	}
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
		cr.dest, cr.consent, cr.mapping = c.checkForwardOf(path+".forward", &r.Forward, destByName, evDefs)
		if r.Dedupe != nil {
			c.checkDedupe(path+".dedupe", r.Dedupe, evDefs)
			if r.Forward.MirrorInBrowser {
				for i, by := range r.Dedupe.By {
					if by == "visitor_id" || by == "object_id" || slices.Contains(serverOnlyFields, by) {
						c.add(fmt.Sprintf("%s.dedupe.by[%d]", path, i), "FIELD_NOT_IN_BROWSER",
							"%s is known only on the server, so the browser mirror could not follow this dedupe window; use email, external_id, phone, a page field or a property, or drop mirror_in_browser", by)
					}
				}
			}
		}
		if len(evDefs) > 0 {
			if m := r.Forward.EventNameFrom; m != nil {
				if p, ok := evDefs[0].Property(m.Property); ok {
					cr.nameFromEnum = p.Type == ingest.TypeEnumeration
					cr.nameFromOptions = p.Options
				}
			}
			for _, f := range r.Forward.CustomData {
				var typ ingest.PropertyType
				if p, ok := evDefs[0].Property(f.Property); ok {
					typ = p.Type
				}
				cr.customTypes = append(cr.customTypes, typ)
			}
		}
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
		k, known := kinds[d.Type]
		if !known {
			c.add(path+".type", "UNKNOWN_DESTINATION_TYPE", "unknown destination type %q; use one of %s", d.Type, strings.Join(kindNames(), ", "))
		} else {
			k.checkDest(c, path, &d)
		}
		if d.Name != "" {
			if _, dup := byName[d.Name]; !dup {
				byName[d.Name] = d.WithDefaults()
			}
		}
	}
	return byName
}

// checkMetaDestination checks a meta_capi destination's fields, and that it
// has no other type's block.
func (c *checker) checkMetaDestination(path string, d *Destination) {
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
	c.block(path, d, "", true)
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
		if f.Field != "" { // a standard field is not a property
			prob.msg = strings.ReplaceAll(prob.msg, "string property", "field")
		}
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

	names := []string{fw.EventName}
	switch {
	case fw.EventNameFrom != nil && fw.EventName != "":
		c.add(path+".event_name_from", "CONFLICTING_FIELDS", "use either event_name or event_name_from, not both")
	case fw.EventNameFrom != nil:
		names = c.checkEventNameFrom(path+".event_name_from", fw.EventNameFrom, leads, defs)
	default:
		c.checkEventName(path+".event_name", fw.EventName, leads)
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
	if slices.Contains(names, "Purchase") {
		if fw.Value == nil || (fw.Value.Fixed == nil && fw.Value.Default == nil) {
			c.add(path+".value", "MISSING_VALUE", "Meta requires a value on Purchase: give value: {fixed: …} or {property: …, default: …}")
		}
		if fw.Currency == "" {
			c.add(path+".currency", "MISSING_CURRENCY", "Meta requires a currency on Purchase")
		}
	}

	seen := c.checkShare(path, fw.Share)
	action := c.checkActionSource(path+".action_source", fw, ok, leads)
	if ok && action == ActionWebsite && !seen[ShareUserAgent] {
		c.add(path+".share", "MISSING_USER_AGENT", "Meta requires client_user_agent on website events: add user_agent to share")
	}
	for i, f := range fw.CustomData {
		c.checkCustomData(fmt.Sprintf("%s.custom_data[%d]", path, i), f, fw.CustomData[:i], defs)
	}

	consent := c.consentGate(path+".consent", fw.Consent, defs)

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

// checkShare checks forward.share and returns the items listed.
func (c *checker) checkShare(path string, share []string) map[string]bool {
	seen := map[string]bool{}
	for i, s := range share {
		p := fmt.Sprintf("%s.share[%d]", path, i)
		switch {
		case !slices.Contains(shareItems, s):
			c.add(p, "UNKNOWN_SHARE", "unknown share item %q; use any of %s", s, strings.Join(shareItems, ", "))
		case seen[s]:
			c.add(p, "DUPLICATE_SHARE", "share item %q is listed twice", s)
		}
		seen[s] = true
	}
	return seen
}

// consentGate compiles forward.consent (nil when absent).
func (c *checker) consentGate(path string, g *ConsentGate, defs []*ingest.Definition) *filter {
	if g == nil {
		return nil
	}
	p := c.property(path+".property", g.Property, defs)
	if p == nil {
		return nil
	}
	v := g.Equals
	f, prob := compileFilter(Filter{Property: g.Property, Op: OpEqual, Value: &v}, p)
	if prob != nil {
		c.add(path+".equals", prob.code, "%s", prob.msg)
	}
	return f
}

func (c *checker) checkEventName(path, name string, leads bool) {
	switch n := utf8.RuneCountInString(name); {
	case n == 0:
		c.add(path, "MISSING_EVENT_NAME", "forward needs event_name: a Meta standard event (Lead, Purchase, …) or a custom name (or event_name_from: a property and a map)")
	case n > maxEventNameLen:
		c.add(path, "NAME_TOO_LONG", "event name %q is %d characters; Meta allows %d", name, n, maxEventNameLen)
	case !leads && !IsStandardEvent(name):
		if s, ok := standardEventFold(name); ok {
			c.add(path, "EVENT_NAME_CASE", "event_name %q differs from Meta's standard event %q only by case; Meta's names are case-exact: write %s", name, s, s)
		}
	}
}

// checkEventNameFrom checks the mapping and returns the event names it can
// produce.
func (c *checker) checkEventNameFrom(path string, m *EventNameFrom, leads bool, defs []*ingest.Definition) []string {
	p := c.property(path+".property", m.Property, defs)
	if p != nil && p.Type != ingest.TypeString && p.Type != ingest.TypeEnumeration {
		c.add(path+".property", "INVALID_EVENT_NAME_PROPERTY", "event names come from a string or enumeration property; %q is %s", p.Name, p.Type)
		p = nil
	}
	if len(m.Map) == 0 {
		c.add(path+".map", "MISSING_MAP", "event_name_from needs map: {<property value>: <Meta event name>, …}")
	}
	keys := make([]string, 0, len(m.Map))
	for k := range m.Map {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var names []string
	folded := map[string]string{}
	for _, k := range keys {
		kp := path + ".map." + k
		if p != nil && p.Type == ingest.TypeEnumeration && !slices.Contains(p.Options, k) {
			c.add(kp, "UNKNOWN_OPTION", "%q is not an option of enumeration property %q (options: %s)", k, p.Name, strings.Join(p.Options, ", "))
		}
		if p != nil && p.Type == ingest.TypeString {
			if prev, dup := folded[fold(k)]; dup {
				c.add(kp, "DUPLICATE_KEY", "%q and %q are the same value: string values compare ignoring case", prev, k)
			}
			folded[fold(k)] = k
		}
		c.checkEventName(kp, m.Map[k], leads)
		names = append(names, m.Map[k])
	}
	return names
}

// checkActionSource checks forward.action_source against the destination
// and returns the action source the rule's events carry.
func (c *checker) checkActionSource(path string, fw *Forward, destOK, leads bool) string {
	a := fw.ActionSource
	switch {
	case a == "" && leads:
		return ActionSystemGenerated
	case a == "":
		return ActionWebsite
	case !slices.Contains(actionSources, a):
		c.add(path, "INVALID_ACTION_SOURCE", "action_source %q is not one of %s", a, strings.Join(actionSources, ", "))
		return ""
	case leads && a != ActionSystemGenerated:
		c.add(path, "INVALID_ACTION_SOURCE", "conversion_leads destinations send action_source system_generated, as Meta's CRM integration requires; remove action_source")
	case a != ActionWebsite && fw.MirrorInBrowser:
		c.add(path, "INVALID_ACTION_SOURCE", "mirror_in_browser mirrors a website pixel event; action_source must be website (or absent)")
	}
	return a
}

// customDataKeys are Meta's custom_data keys a rule may fill from a
// property, with the property types each accepts. value and currency
// have their own fields.
var customDataKeys = map[string][]ingest.PropertyType{
	"order_id":         {ingest.TypeString, ingest.TypeNumber, ingest.TypeEnumeration},
	"content_name":     {ingest.TypeString, ingest.TypeEnumeration},
	"content_category": {ingest.TypeString, ingest.TypeEnumeration},
	"content_type":     {ingest.TypeString, ingest.TypeEnumeration},
	"status":           {ingest.TypeString, ingest.TypeEnumeration},
	"search_string":    {ingest.TypeString},
	"content_ids":      {ingest.TypeString, ingest.TypeEnumeration, ingest.TypeNumber},
	"num_items":        {ingest.TypeNumber},
	"predicted_ltv":    {ingest.TypeNumber},
}

// reservedCustomData are custom_data keys tally fills itself.
var reservedCustomData = []string{"value", "currency", "event_source", "lead_event_source", "contents"}

func (c *checker) checkCustomData(path string, f CustomDataField, before []CustomDataField, defs []*ingest.Definition) {
	switch {
	case f.Key == "":
		c.add(path+".key", "MISSING_KEY", "custom_data needs key: a Meta custom_data key (order_id, content_ids, predicted_ltv, …) or a custom one")
	case slices.Contains(reservedCustomData, f.Key):
		c.add(path+".key", "RESERVED_KEY", "custom_data key %q is set by tally (value and currency by forward.value and forward.currency)", f.Key)
	case !propertyNamePattern.MatchString(f.Key):
		c.add(path+".key", "INVALID_KEY", "custom_data key %q must be 1–50 characters of a-z, 0-9 and _, starting with a letter", f.Key)
	}
	for _, b := range before {
		if b.Key == f.Key && f.Key != "" {
			c.add(path+".key", "DUPLICATE_KEY", "custom_data key %q is listed twice", f.Key)
		}
	}
	p := c.property(path+".property", f.Property, defs)
	if p == nil {
		return
	}
	if types, ok := customDataKeys[f.Key]; ok && !slices.Contains(types, p.Type) {
		ts := make([]string, len(types))
		for i, t := range types {
			ts[i] = string(t)
		}
		c.add(path+".property", "CUSTOM_DATA_TYPE", "custom_data.%s takes a %s property; %q is %s", f.Key, strings.Join(ts, " or "), p.Name, p.Type)
	}
}

var propertyNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,49}$`)

// dedupeIdentity are the dedupe.by keys read from who sent a completion.
var dedupeIdentity = []string{"email", "external_id", "phone", "visitor_id", "object_id"}

// maxDedupeWindow is Meta's own horizon: an event older than 7 days is
// refused, so a longer window would never decide anything.
const maxDedupeWindow = 7 * 24 * time.Hour

func (c *checker) checkDedupe(path string, d *Dedupe, defs []*ingest.Definition) {
	if len(d.By) == 0 {
		c.add(path+".by", "MISSING_KEY", "dedupe needs by: what makes two submissions the same (email, form_id, …)")
	}
	for i, b := range d.By {
		bp := fmt.Sprintf("%s.by[%d]", path, i)
		if slices.Contains(d.By[:i], b) {
			c.add(bp, "DUPLICATE_KEY", "%q is listed twice", b)
			continue
		}
		if slices.Contains(dedupeIdentity, b) || slices.Contains(standardFields, b) {
			continue
		}
		for _, def := range defs {
			if _, ok := def.Property(b); !ok {
				c.add(bp, "UNKNOWN_PROPERTY", "%q is neither an identity (%s), a standard field nor a property of event %q", b, strings.Join(dedupeIdentity, ", "), def.Name)
				break
			}
		}
	}
	if d.Within <= 0 || d.Within > maxDedupeWindow {
		c.add(path+".within", "INVALID_WINDOW", "within must be a duration between 1s and 168h (Meta's 7 days), like 10m")
	}
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
