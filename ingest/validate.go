package ingest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// Mode says how over-limit input is treated.
type Mode int

const (
	// Strict rejects a completion with any problem (API and import paths).
	Strict Mode = iota
	// Lenient truncates long values and drops extra, unknown or malformed
	// properties, recording each cut in Completion.Truncated (snippet path).
	Lenient
)

// Catalog is the set of event definitions completions are checked against,
// including the built-in page_view event.
type Catalog struct {
	// defs is replaced whole by Replace (a config reload), never changed.
	defs atomic.Pointer[map[string]*Definition]
}

// NewCatalog indexes definitions by name. It assumes they passed Check.
func NewCatalog(defs []Definition) *Catalog {
	c := &Catalog{}
	c.Replace(defs)
	return c
}

// Replace makes defs the catalog's definitions at once (a config reload);
// a completion being validated keeps the definitions it started with.
func (c *Catalog) Replace(defs []Definition) {
	m := make(map[string]*Definition, len(defs)+1)
	m[PageViewEvent] = &Definition{Name: PageViewEvent, Label: "Page view", Object: "contact"}
	for i := range defs {
		m[defs[i].Name] = &defs[i]
	}
	c.defs.Store(&m)
}

// Lookup finds a definition by internal name or HubSpot's fully qualified
// pe<digits>_<name> form.
func (c *Catalog) Lookup(name string) (*Definition, bool) {
	defs := *c.defs.Load()
	if d, ok := defs[name]; ok {
		return d, true
	}
	if d, ok := defs[stripPortalPrefix(name)]; ok {
		return d, true
	}
	return nil, false
}

// Definitions returns the configured definitions (without page_view), sorted by name.
func (c *Catalog) Definitions() []*Definition {
	defs := *c.defs.Load()
	out := make([]*Definition, 0, len(defs))
	for _, d := range defs {
		if d.Name != PageViewEvent {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// stripPortalPrefix turns pe1234567_viewed_car into viewed_car.
func stripPortalPrefix(name string) string {
	if !strings.HasPrefix(name, "pe") {
		return name
	}
	i := 2
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	if i == 2 || i >= len(name) || name[i] != '_' {
		return name
	}
	return name[i+1:]
}

// ApplyProperties checks raw properties against def and fills c.Props (and,
// for HubSpot's hs_* default properties, the standard fields they map onto).
// path prefixes every FieldError ("inputs[3].properties").
//
// Names differing only by case are not an error (§4): names are sorted
// ascending as sent, the first 50 kept, lower-cased, and among equal names the
// last one wins. In Strict mode any problem returns errors and c is not to be
// used; in Lenient mode problems cut or drop the offending property, each cut
// is recorded in c.Truncated, and the returned errors say what was dropped.
func ApplyProperties(c *Completion, def *Definition, raw []Prop, mode Mode, path string) []FieldError {
	var errs []FieldError
	// The path of a property is built only for an error: most completions
	// have none, and the concatenation is one allocation per property.
	propPath := func(name string) string { return path + "." + name }
	slices.SortStableFunc(raw, byPropName)
	if len(raw) > MaxPropsPerCompletion {
		if mode == Strict {
			return []FieldError{fieldErr(path, "TOO_MANY_PROPERTIES", "%d properties sent; the limit is %d per completion", len(raw), MaxPropsPerCompletion)}
		}
		for _, p := range raw[MaxPropsPerCompletion:] {
			c.Truncated = append(c.Truncated, echo(p.Name, MaxPropertyNameLen)+": dropped, over 50 properties")
			errs = append(errs, fieldErr(propPath(p.Name), "TOO_MANY_PROPERTIES", "dropped: over %d properties", MaxPropsPerCompletion))
		}
		raw = raw[:MaxPropsPerCompletion]
	}
	// Lower-case into a copy (raw is the caller's) and sort again: the sort
	// is stable, so each run of equal names keeps the order above and its
	// last entry is the one that wins. The kept properties are written back
	// into the same slice, never ahead of the one being read.
	props := make([]Prop, 0, len(raw))
	for _, p := range raw {
		// Only ASCII letters, digits and _ are lower-cased into a name:
		// strings.ToLower would also fold "\u212A" (the Kelvin sign) into
		// "k", taking a property nobody sent.
		if !asciiName(p.Name) {
			errs = append(errs, droppedOrRejected(c, mode, propPath(p.Name), "INVALID_NAME", fmt.Sprintf("property name %q may use only the letters a-z (either case), digits and _", p.Name)))
			continue
		}
		props = append(props, Prop{Name: strings.ToLower(p.Name), Value: p.Value})
	}
	slices.SortStableFunc(props, byPropName)
	named := props[:0]
	for i, p := range props {
		if i+1 < len(props) && props[i+1].Name == p.Name {
			continue // a later value of the same name wins
		}
		named = append(named, p)
	}
	return applyNamed(c, def, named, mode, path, errs)
}

// applyNamed is ApplyProperties for properties whose names are already
// lower-cased, valid, unique and sorted, and at most MaxPropsPerCompletion
// (a CSV import's header gives them so once per file): it checks and
// normalises each value, fills c.Props (reusing props's array) and returns
// errs with the problems found appended.
func applyNamed(c *Completion, def *Definition, props []Prop, mode Mode, path string, errs []FieldError) []FieldError {
	propPath := func(name string) string { return path + "." + name }
	named := props
	props = props[:0]
	for _, p := range named {
		name, v := p.Name, p.Value
		// A value is counted in characters only when its bytes could be
		// over the shorter limit.
		if len(v) > MaxValueLen {
			if n := utf8.RuneCountInString(v); n > MaxLen(name) {
				if mode == Strict {
					errs = append(errs, fieldErr(propPath(name), "VALUE_TOO_LONG", "value of %q is %d characters; the limit is %d", name, n, MaxLen(name)))
					continue
				}
				v = truncateRunes(v, MaxLen(name))
				c.Truncated = append(c.Truncated, fmt.Sprintf("%s: cut from %d to %d characters", name, n, MaxLen(name)))
			}
		}
		if strings.HasPrefix(name, "hs_") {
			if !applyStandard(c, name, v) {
				if _, known := hubspotDefaults[name]; !known {
					errs = append(errs, droppedOrRejected(c, mode, propPath(name), "UNKNOWN_PROPERTY", fmt.Sprintf("%q is not a HubSpot default property", name)))
					continue
				}
				props = append(props, Prop{Name: name, Value: v})
			}
			continue
		}
		prop, ok := def.Property(name)
		if !ok {
			errs = append(errs, droppedOrRejected(c, mode, propPath(name), "UNKNOWN_PROPERTY", fmt.Sprintf("property %q is not defined on event %q", name, def.Name)))
			continue
		}
		nv, err := prop.Normalize(v)
		if err != nil {
			errs = append(errs, droppedOrRejected(c, mode, propPath(name), "INVALID_VALUE", fmt.Sprintf("%s property %q: %v", prop.Type, name, err)))
			continue
		}
		props = append(props, Prop{Name: name, Value: nv})
	}
	c.Props = props
	return errs
}

// asciiName reports whether s is made of ASCII letters, digits and _ only.
func asciiName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func byPropName(a, b Prop) int { return strings.Compare(a.Name, b.Name) }

func droppedOrRejected(c *Completion, mode Mode, path, code, msg string) FieldError {
	if mode == Lenient {
		name := path[strings.LastIndexByte(path, '.')+1:]
		c.Truncated = append(c.Truncated, echo(name, MaxPropertyNameLen)+": dropped, "+echo(msg, maxEchoMessage))
	}
	return FieldError{Path: echo(path, maxEchoPath), Code: code, Message: echo(msg, maxEchoMessage)}
}

func truncateRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// hubspotDefaults are HubSpot's default event properties, accepted on every
// event. Those with a standard field map onto it (applyStandard); the others
// are stored as properties under their hs_ name.
var hubspotDefaults = map[string]struct{}{
	"hs_asset_description": {}, "hs_asset_type": {}, "hs_asset_title": {}, "hs_browser": {}, "hs_campaign_id": {},
	"hs_city": {}, "hs_country": {}, "hs_device_name": {}, "hs_device_type": {}, "hs_element_class": {},
	"hs_element_id": {}, "hs_element_text": {}, "hs_language": {}, "hs_link_href": {},
	"hs_operating_system": {}, "hs_operating_version": {}, "hs_page_content_type": {}, "hs_page_id": {},
	"hs_page_title": {}, "hs_page_url": {}, "hs_parent_module_id": {}, "hs_referrer": {}, "hs_region": {},
	"hs_screen_height": {}, "hs_screen_width": {}, "hs_touchpoint_source": {}, "hs_tracking_name": {},
	"hs_user_agent": {}, "hs_utm_campaign": {}, "hs_utm_content": {}, "hs_utm_medium": {},
	"hs_utm_source": {}, "hs_utm_term": {},
}

// applyStandard maps a HubSpot default property onto tally's standard field;
// it reports false for those that have none.
func applyStandard(c *Completion, name, v string) bool {
	e := &c.Enrichment
	var dst *string
	switch name {
	case "hs_page_url":
		dst = &c.Page.URL
	case "hs_referrer":
		dst = &c.Page.Referrer
	case "hs_page_title":
		dst = &c.Page.Title
	case "hs_user_agent":
		dst = &c.Client.UserAgent
	case "hs_language":
		dst = &c.Client.Language
	case "hs_browser":
		dst = &e.Browser
	case "hs_operating_system":
		dst = &e.OS
	case "hs_operating_version":
		dst = &e.OSVersion
	case "hs_device_type":
		dst = &e.DeviceType
	case "hs_city":
		dst = &e.City
	case "hs_region":
		dst = &e.Region
	case "hs_country":
		dst = &e.Country
	case "hs_touchpoint_source":
		dst = &e.TouchpointSource
	case "hs_utm_source":
		dst = &e.UTMSource
	case "hs_utm_medium":
		dst = &e.UTMMedium
	case "hs_utm_campaign":
		dst = &e.UTMCampaign
	case "hs_utm_term":
		dst = &e.UTMTerm
	case "hs_utm_content":
		dst = &e.UTMContent
	default:
		return false
	}
	*dst = v
	return true
}
