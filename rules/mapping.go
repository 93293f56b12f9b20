package rules

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/capi"
)

// matches reports whether c satisfies the rule's when (event, site and
// filters). Consent and the rule's consent gate are checked separately.
func (r *compiled) matches(c *ingest.Completion) bool {
	if !slices.Contains(r.events, c.EventName) {
		return false
	}
	if len(r.rule.When.Sites) > 0 && !slices.Contains(r.rule.When.Sites, c.Site) {
		return false
	}
	return matchFilters(r.where, r.any, func(f *filter) (string, bool) { return lookup(c, f) })
}

// matchFilters is the pure matcher over a value lookup.
func matchFilters(where []*filter, any [][]*filter, prop func(*filter) (string, bool)) bool {
	if !allMatch(where, prop) {
		return false
	}
	if len(any) == 0 {
		return true
	}
	for _, g := range any {
		if allMatch(g, prop) {
			return true
		}
	}
	return false
}

// allMatch reports whether every filter of fs holds.
func allMatch(fs []*filter, prop func(*filter) (string, bool)) bool {
	for _, f := range fs {
		if !f.match(prop(f)) {
			return false
		}
	}
	return true
}

// consentOK reports whether the rule's consent gate holds for c.
func (r *compiled) consentOK(c *ingest.Completion) bool {
	if r.consent == nil {
		return true
	}
	return r.consent.match(c.Prop(r.consent.prop))
}

// value is the conversion value for c, or nil when the rule maps none (or
// the property is unusable and there is no default).
func (r *compiled) value(prop func(string) (string, bool)) *float64 {
	v := r.rule.Forward.Value
	if v == nil {
		return nil
	}
	if v.Fixed != nil {
		f := *v.Fixed
		return &f
	}
	if s, ok := prop(v.Property); ok {
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && f > 0 && !math.IsInf(f, 0) {
			return &f
		}
	}
	if v.Default != nil {
		f := *v.Default
		return &f
	}
	return nil
}

// shares reports whether the rule lets item leave tally.
func (r *compiled) shares(item string) bool { return slices.Contains(r.rule.Forward.Share, item) }

// eventNames are the Meta event names c forwards as: the rule's fixed
// name, or each value of the event_name_from property that the map names
// (each selected option of an enumeration, in the order stored). None
// means the value is not mapped: nothing is forwarded.
func (r *compiled) eventNames(c *ingest.Completion) []string {
	m := r.rule.Forward.EventNameFrom
	if m == nil {
		return []string{r.rule.Forward.EventName}
	}
	v, ok := c.Prop(m.Property)
	if !ok || v == "" {
		return nil
	}
	var out []string
	add := func(name string) {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if r.nameFromEnum {
		for _, o := range strings.Split(v, ";") {
			if name, ok := m.Map[o]; ok {
				add(name)
			}
		}
		return out
	}
	for k, name := range m.Map {
		if fold(k) == fold(v) {
			add(name)
		}
	}
	return out
}

// actionSource is where the rule's conversions happened (forward.action_source,
// or the destination mode's).
func (r *compiled) actionSource() capi.ActionSource {
	switch {
	case r.rule.Forward.ActionSource != "":
		return capi.ActionSource(r.rule.Forward.ActionSource)
	case r.dest.Mode == ModeConversionLeads:
		return capi.ActionSystemGenerated
	}
	return capi.ActionWebsite
}

// Event maps c onto the Meta server event the rule forwards, under the
// rule's first event name (see mapped for event_name_from).
func (r *compiled) Event(c *ingest.Completion) capi.Event {
	names := r.eventNames(c)
	if len(names) == 0 {
		names = []string{""}
	}
	return r.event(c, names[0])
}

// mapped maps c onto every event the rule forwards for it.
func (r *compiled) mapped(c *ingest.Completion) []capi.Event {
	names := r.eventNames(c)
	out := make([]capi.Event, len(names))
	for i, n := range names {
		out[i] = r.event(c, n)
	}
	return out
}

func (r *compiled) event(c *ingest.Completion, name string) capi.Event {
	fw := &r.rule.Forward
	ev := capi.Event{
		EventName:    name,
		EventTime:    c.OccurredAt.Unix(),
		EventID:      c.EventID,
		ActionSource: r.actionSource(),
	}
	ev.UserData = r.userData(c)

	var cd capi.CustomData
	custom := false
	if v := r.value(c.Prop); v != nil {
		cd.Value = v
		cd.Currency = fw.Currency
		custom = true
	}
	if r.dest.Mode == ModeConversionLeads {
		cd.EventSource = "crm"
		cd.LeadEventSource = r.dest.LeadEventSource
		custom = true
		ev.UserData.LeadID = r.leadID(c)
	}
	if ev.ActionSource == capi.ActionWebsite {
		ev.EventSourceURL = c.Page.URL
	}
	if r.customData(c, &cd) {
		custom = true
	}
	if custom {
		ev.CustomData = &cd
	}
	return ev
}

// customData fills the rule's custom_data keys from c's properties and
// reports whether it set any. Values keep their types: numbers as
// numbers, content_ids as a list (an enumeration's options each).
func (r *compiled) customData(c *ingest.Completion, cd *capi.CustomData) bool {
	set := false
	for i, f := range r.rule.Forward.CustomData {
		v, ok := c.Prop(f.Property)
		if !ok || v == "" {
			continue
		}
		typ := r.customTypes[i]
		num, isNum := 0.0, false
		if typ == ingest.TypeNumber {
			var err error
			num, err = strconv.ParseFloat(v, 64)
			isNum = err == nil
		}
		switch f.Key {
		case "order_id":
			cd.OrderID = v
		case "content_name":
			cd.ContentName = v
		case "content_category":
			cd.ContentCategory = v
		case "content_type":
			cd.ContentType = v
		case "status":
			cd.Status = v
		case "search_string":
			cd.SearchString = v
		case "content_ids":
			cd.ContentIDs = strings.Split(v, ";")
		case "num_items":
			if !isNum || num != math.Trunc(num) || num < 0 {
				continue
			}
			cd.NumItems = int(num)
		case "predicted_ltv":
			if !isNum {
				continue
			}
			cd.PredictedLTV = &num
		default:
			if cd.Custom == nil {
				cd.Custom = map[string]any{}
			}
			switch {
			case isNum:
				cd.Custom[f.Key] = num
			case typ == ingest.TypeBool:
				cd.Custom[f.Key] = v == "true"
			case typ == ingest.TypeEnumeration && strings.Contains(v, ";"):
				cd.Custom[f.Key] = strings.Split(v, ";")
			default:
				cd.Custom[f.Key] = v
			}
		}
		set = true
	}
	return set
}

// userData hashes what the rule shares of c's identity and adds the
// as-is fields it shares. The person's country informs phone and zip
// normalisation even when the country itself is not shared.
func (r *compiled) userData(c *ingest.Completion) capi.UserData {
	id := capi.Identity{Country: c.Identity.Country}
	if id.Country == "" {
		id.Country = c.Enrichment.Country // GeoIP's guess beats none
	}
	pick := func(item, v string) string {
		if r.shares(item) {
			return v
		}
		return ""
	}
	id.Email = pick(ShareEmail, c.Identity.Email)
	id.Phone = pick(SharePhone, c.Identity.Phone)
	id.FirstName = pick(ShareFirstName, c.Identity.FirstName)
	id.LastName = pick(ShareLastName, c.Identity.LastName)
	id.City = pick(ShareCity, c.Identity.City)
	id.State = pick(ShareState, c.Identity.State)
	id.Zip = pick(ShareZip, c.Identity.Zip)
	id.ExternalID = pick(ShareExternalID, c.Identity.ExternalID)
	ud := capi.HashedUserData(id)
	if !r.shares(ShareCountry) {
		ud.Country = nil
	}
	ud.ClientIPAddress = pick(ShareClientIP, c.Client.IP)
	ud.ClientUserAgent = pick(ShareUserAgent, c.Client.UserAgent)
	ud.Fbp = pick(ShareFbp, c.Identity.Fbp)
	ud.Fbc = pick(ShareFbc, c.Identity.Fbc)
	return ud
}

// leadID reads the Lead Ads id from the configured property, else from the
// completion's object id; 0 (left out) when it is not an integer.
func (r *compiled) leadID(c *ingest.Completion) int64 {
	s := c.ObjectID
	if l := r.rule.Forward.LeadID; l != nil {
		s, _ = c.Prop(l.Property)
	}
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return n
	}
	return 0
}
