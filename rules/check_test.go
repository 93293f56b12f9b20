package rules

import (
	"strings"
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

func ptr[T any](v T) *T { return &v }

// testDefs are the event definitions the tests' rules refer to.
func testDefs() []ingest.Definition {
	return []ingest.Definition{
		{Name: "form_submitted", Properties: []ingest.Property{
			{Name: "form_id", Type: ingest.TypeString},
			{Name: "deal_amount", Type: ingest.TypeNumber},
			{Name: "ads_consent", Type: ingest.TypeString},
			{Name: "submitted_at", Type: ingest.TypeDatetime},
			{Name: "birthday", Type: ingest.TypeDate},
			{Name: "plan", Type: ingest.TypeEnumeration, Options: []string{"free", "pro", "team"}},
			{Name: "newsletter", Type: ingest.TypeBool},
			{Name: "lead_ref", Type: ingest.TypeString},
		}},
		{Name: "order_placed", Properties: []ingest.Property{
			{Name: "total", Type: ingest.TypeNumber},
			{Name: "form_id", Type: ingest.TypeString},
		}},
		{Name: "signed_up", Properties: []ingest.Property{
			{Name: "form_id", Type: ingest.TypeNumber},
		}},
	}
}

func testDests() []Destination {
	return []Destination{
		{Name: "meta_shop", Type: TypeMetaCAPI, PixelID: "1234567890", AccessToken: "secret", APIVersion: "v25.0"},
		{Name: "meta_crm", Type: TypeMetaCAPI, PixelID: "987", AccessToken: "secret", Mode: ModeConversionLeads, LeadEventSource: "HubSpot"},
	}
}

// testRule is the sketch's contact_form_lead rule: valid as it stands.
func testRule() Rule {
	return Rule{
		Name: "contact_form_lead",
		When: When{Event: "form_submitted", Where: []Filter{{Property: "form_id", Op: OpEqual, Value: ptr("contact")}}},
		Forward: Forward{
			To: "meta_shop", EventName: "Lead",
			Value:           &Value{Property: "deal_amount", Default: ptr(50.0)},
			Currency:        "EUR",
			Share:           []string{"email", "phone", "external_id", "client_ip", "user_agent", "fbp", "fbc"},
			Consent:         &ConsentGate{Property: "ads_consent", Equals: "yes"},
			MirrorInBrowser: true,
		},
	}
}

func TestCheckValid(t *testing.T) {
	leads := Rule{Name: "crm_stage", When: When{Event: "form_submitted"},
		Forward: Forward{To: "meta_crm", EventName: "Marketing Qualified Lead", Share: []string{"email"}, LeadID: &LeadID{Property: "lead_ref"}}}
	custom := testRule()
	custom.Name = "custom"
	custom.Forward.EventName = "QuoteRequested" // custom names mirror with trackCustom
	multi := testRule()
	multi.Name = "multi"
	multi.When = When{Events: []string{"form_submitted", "order_placed"}, Where: []Filter{{Property: "form_id", Op: OpStartsWith, Value: ptr("c")}},
		Any: []Group{{Where: []Filter{{Property: "form_id", Op: OpMatchesRegex, Value: ptr(`^c(ontact|heckout)[\-_.]\d+\.\x41\p{L}$`)}}}}}
	multi.Forward.Value = &Value{Fixed: ptr(10.0)}
	multi.Forward.Consent = nil
	pv := Rule{Name: "pv", When: When{Event: "page_view"}, Forward: Forward{To: "meta_shop", EventName: "PageView", Share: []string{"user_agent"}}}
	if errs := Check([]Rule{testRule(), leads, custom, multi, pv}, testDests(), testDefs()); len(errs) > 0 {
		t.Fatalf("Check(valid config) = %v; want no errors", errs)
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(r *Rule, d []Destination)
		path     string
		code     string
		contains string
	}{
		{"unknown event", func(r *Rule, _ []Destination) { r.When.Event = "nope" }, "rules[0].when.event", "UNKNOWN_EVENT", `"nope"`},
		{"unknown event in list", func(r *Rule, _ []Destination) { r.When = When{Events: []string{"form_submitted", "nope"}} }, "rules[0].when.events[1]", "UNKNOWN_EVENT", ""},
		{"event and events", func(r *Rule, _ []Destination) { r.When.Events = []string{"order_placed"} }, "rules[0].when.events", "CONFLICTING_FIELDS", ""},
		{"no event", func(r *Rule, _ []Destination) { r.When.Event = "" }, "rules[0].when.event", "MISSING_EVENT", ""},
		{"unknown property", func(r *Rule, _ []Destination) { r.When.Where[0].Property = "colour" }, "rules[0].when.where[0].property", "UNKNOWN_PROPERTY", `"colour"`},
		{"property missing on one of the events", func(r *Rule, _ []Destination) {
			r.When = When{Events: []string{"form_submitted", "order_placed"}, Where: []Filter{{Property: "plan", Op: OpKnown}}}
			r.Forward.Value, r.Forward.Currency, r.Forward.Consent = nil, "", nil
		}, "rules[0].when.where[0].property", "UNKNOWN_PROPERTY", `"order_placed"`},
		{"property type differs between events", func(r *Rule, _ []Destination) {
			r.When = When{Events: []string{"form_submitted", "signed_up"}, Where: []Filter{{Property: "form_id", Op: OpKnown}}}
			r.Forward.Value, r.Forward.Currency, r.Forward.Consent = nil, "", nil
		}, "rules[0].when.where[0].property", "PROPERTY_TYPE_MISMATCH", ""},
		{"unknown operation", func(r *Rule, _ []Destination) { r.When.Where[0].Op = "equals" }, "rules[0].when.where[0].op", "UNKNOWN_OPERATION", "is_equal_to"},
		{"unknown operation on unknown property", func(r *Rule, _ []Destination) { r.When.Where[0] = Filter{Property: "colour", Op: "like"} }, "rules[0].when.where[0].op", "UNKNOWN_OPERATION", ""},
		{"regex does not compile", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr("con(tact")}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", "con(tact"},
		{"regex with inline flag", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr("(?i)contact")}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", "inline flags"},
		{"regex with \\z", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr(`contact\z`)}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", ""},
		{"regex with \\pL", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr(`\pL+`)}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", `\p{L}`},
		{"regex with an escape browsers refuse", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr(`a\-b`)}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", `\-`},
		{"regex with \\x{}", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr(`\x{41}`)}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", ""},
		{"regex with a literal brace", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr(`a{b`)}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", "literal {"},
		{"regex with ] first in a class", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr(`[]a]`)}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", ""},
		{"regex with \\S in a class", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpMatchesRegex, Value: ptr(`[\Sx]`)}
		}, "rules[0].when.where[0].value", "INVALID_REGEX", ""},
		{"greater than on a string", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpGreater, Value: ptr("5")}
		}, "rules[0].when.where[0].op", "OPERATION_NOT_FOR_TYPE", "string"},
		{"contains on a number", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "deal_amount", Op: OpContains, Value: ptr("5")}
		}, "rules[0].when.where[0].op", "OPERATION_NOT_FOR_TYPE", ""},
		{"between on a bool", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "newsletter", Op: OpBetween, Values: []string{"false", "true"}}
		}, "rules[0].when.where[0].op", "OPERATION_NOT_FOR_TYPE", ""},
		{"starts_with on an enumeration", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "plan", Op: OpStartsWith, Value: ptr("p")}
		}, "rules[0].when.where[0].op", "OPERATION_NOT_FOR_TYPE", ""},
		{"number value not a number", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "deal_amount", Op: OpGreater, Value: ptr("lots")}
		}, "rules[0].when.where[0].value", "INVALID_VALUE", "lots"},
		{"datetime value not a time", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "submitted_at", Op: OpLess, Value: ptr("yesterday")}
		}, "rules[0].when.where[0].value", "INVALID_VALUE", ""},
		{"date value with a time", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "birthday", Op: OpLess, Value: ptr("2020-01-01T10:00:00Z")}
		}, "rules[0].when.where[0].value", "INVALID_VALUE", ""},
		{"bool value not a bool", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "newsletter", Op: OpEqual, Value: ptr("yes")}
		}, "rules[0].when.where[0].value", "INVALID_VALUE", ""},
		{"enumeration value not an option", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "plan", Op: OpAnyOf, Values: []string{"pro", "gold"}}
		}, "rules[0].when.where[0].values[1]", "INVALID_VALUE", "gold"},
		{"between needs two values", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "deal_amount", Op: OpBetween, Values: []string{"1"}}
		}, "rules[0].when.where[0].values", "INVALID_VALUE", ""},
		{"between low above high", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "deal_amount", Op: OpBetween, Values: []string{"10", "1"}}
		}, "rules[0].when.where[0].values", "INVALID_VALUE", ""},
		{"any_of without values", func(r *Rule, _ []Destination) { r.When.Where[0] = Filter{Property: "form_id", Op: OpAnyOf} }, "rules[0].when.where[0].values", "MISSING_VALUE", ""},
		{"any_of with value", func(r *Rule, _ []Destination) {
			r.When.Where[0] = Filter{Property: "form_id", Op: OpAnyOf, Value: ptr("a")}
		}, "rules[0].when.where[0].value", "UNEXPECTED_VALUE", ""},
		{"equal without value", func(r *Rule, _ []Destination) { r.When.Where[0].Value = nil }, "rules[0].when.where[0].value", "MISSING_VALUE", ""},
		{"equal to empty", func(r *Rule, _ []Destination) { r.When.Where[0].Value = ptr("") }, "rules[0].when.where[0].value", "INVALID_VALUE", "is_unknown"},
		{"is_known with value", func(r *Rule, _ []Destination) { r.When.Where[0].Op = OpKnown }, "rules[0].when.where[0].value", "UNEXPECTED_VALUE", ""},
		{"filter in any group", func(r *Rule, _ []Destination) {
			r.When.Any = []Group{{Where: []Filter{{Property: "form_id", Op: OpKnown}}}, {Where: []Filter{{Property: "deal_amount", Op: OpStartsWith, Value: ptr("1")}}}}
		}, "rules[0].when.any[1].where[0].op", "OPERATION_NOT_FOR_TYPE", ""},
		{"empty any group", func(r *Rule, _ []Destination) { r.When.Any = []Group{{}} }, "rules[0].when.any[0].where", "EMPTY_GROUP", ""},
		{"unknown destination", func(r *Rule, _ []Destination) { r.Forward.To = "meta_blog" }, "rules[0].forward.to", "UNKNOWN_DESTINATION", `"meta_blog"`},
		{"missing event name", func(r *Rule, _ []Destination) { r.Forward.EventName = "" }, "rules[0].forward.event_name", "MISSING_EVENT_NAME", ""},
		{"standard name in wrong case", func(r *Rule, _ []Destination) { r.Forward.EventName = "lead" }, "rules[0].forward.event_name", "EVENT_NAME_CASE", "Lead"},
		{"event name too long", func(r *Rule, _ []Destination) { r.Forward.EventName = strings.Repeat("x", 51) }, "rules[0].forward.event_name", "NAME_TOO_LONG", ""},
		{"value from a string property", func(r *Rule, _ []Destination) { r.Forward.Value.Property = "form_id" }, "rules[0].forward.value.property", "VALUE_NOT_NUMBER", "string"},
		{"value from an unknown property", func(r *Rule, _ []Destination) { r.Forward.Value.Property = "price" }, "rules[0].forward.value.property", "UNKNOWN_PROPERTY", ""},
		{"value fixed and property", func(r *Rule, _ []Destination) { r.Forward.Value.Fixed = ptr(3.0) }, "rules[0].forward.value", "CONFLICTING_FIELDS", ""},
		{"value empty", func(r *Rule, _ []Destination) { r.Forward.Value = &Value{} }, "rules[0].forward.value", "MISSING_VALUE", ""},
		{"negative fixed value", func(r *Rule, _ []Destination) { r.Forward.Value = &Value{Fixed: ptr(-1.0)} }, "rules[0].forward.value.fixed", "INVALID_VALUE", ""},
		{"currency lower case", func(r *Rule, _ []Destination) { r.Forward.Currency = "eur" }, "rules[0].forward.currency", "INVALID_CURRENCY", "write EUR"},
		{"currency not ISO 4217", func(r *Rule, _ []Destination) { r.Forward.Currency = "EUD" }, "rules[0].forward.currency", "INVALID_CURRENCY", ""},
		{"currency without value", func(r *Rule, _ []Destination) { r.Forward.Value = nil }, "rules[0].forward.currency", "CURRENCY_WITHOUT_VALUE", ""},
		{"purchase without currency", func(r *Rule, _ []Destination) { r.Forward.EventName, r.Forward.Currency = "Purchase", "" }, "rules[0].forward.currency", "MISSING_CURRENCY", ""},
		{"purchase value without default", func(r *Rule, _ []Destination) { r.Forward.EventName, r.Forward.Value.Default = "Purchase", nil }, "rules[0].forward.value", "MISSING_VALUE", ""},
		{"unknown share item", func(r *Rule, _ []Destination) { r.Forward.Share[1] = "telephone" }, "rules[0].forward.share[1]", "UNKNOWN_SHARE", `"telephone"`},
		{"duplicate share item", func(r *Rule, _ []Destination) { r.Forward.Share = append(r.Forward.Share, "email") }, "rules[0].forward.share[7]", "DUPLICATE_SHARE", ""},
		{"website rule without user agent", func(r *Rule, _ []Destination) { r.Forward.Share = []string{"email"} }, "rules[0].forward.share", "MISSING_USER_AGENT", ""},
		{"consent property unknown", func(r *Rule, _ []Destination) { r.Forward.Consent.Property = "gdpr" }, "rules[0].forward.consent.property", "UNKNOWN_PROPERTY", ""},
		{"consent value wrong type", func(r *Rule, _ []Destination) {
			r.Forward.Consent = &ConsentGate{Property: "newsletter", Equals: "yes"}
		}, "rules[0].forward.consent.equals", "INVALID_VALUE", ""},
		{"mirror on a leads destination", func(r *Rule, _ []Destination) { r.Forward.To = "meta_crm" }, "rules[0].forward.mirror_in_browser", "MIRROR_NOT_FOR_LEADS", ""},
		{"lead_id on a website destination", func(r *Rule, _ []Destination) { r.Forward.LeadID = &LeadID{Property: "lead_ref"} }, "rules[0].forward.lead_id", "UNEXPECTED_FIELD", ""},
		{"lead_id from a number property", func(r *Rule, _ []Destination) {
			r.Forward.To, r.Forward.MirrorInBrowser, r.Forward.LeadID = "meta_crm", false, &LeadID{Property: "deal_amount"}
		}, "rules[0].forward.lead_id.property", "INVALID_LEAD_ID", "string"},
		{"rule without name", func(r *Rule, _ []Destination) { r.Name = "" }, "rules[0].name", "MISSING_NAME", ""},
		{"leads destination without lead_event_source", func(_ *Rule, d []Destination) { d[1].LeadEventSource = "" }, "destinations[1].lead_event_source", "MISSING_LEAD_EVENT_SOURCE", ""},
		{"lead_event_source on website destination", func(_ *Rule, d []Destination) { d[0].LeadEventSource = "HubSpot" }, "destinations[0].lead_event_source", "UNEXPECTED_FIELD", ""},
		{"unknown destination type", func(_ *Rule, d []Destination) { d[0].Type = "google_ads" }, "destinations[0].type", "UNKNOWN_DESTINATION_TYPE", ""},
		{"unknown mode", func(_ *Rule, d []Destination) { d[0].Mode = "offline" }, "destinations[0].mode", "INVALID_MODE", ""},
		{"pixel id not numeric", func(_ *Rule, d []Destination) { d[0].PixelID = "px-1" }, "destinations[0].pixel_id", "INVALID_PIXEL_ID", ""},
		{"missing access token", func(_ *Rule, d []Destination) { d[0].AccessToken = "" }, "destinations[0].access_token", "MISSING_ACCESS_TOKEN", ""},
		{"bad api version", func(_ *Rule, d []Destination) { d[0].APIVersion = "25" }, "destinations[0].api_version", "INVALID_API_VERSION", ""},
		{"bad graph url", func(_ *Rule, d []Destination) { d[0].GraphURL = "graph.facebook.com" }, "destinations[0].graph_url", "INVALID_URL", ""},
		{"duplicate destination", func(_ *Rule, d []Destination) { d[1].Name = "meta_shop" }, "destinations[1].name", "DUPLICATE_DESTINATION", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, d := testRule(), testDests()
			tc.edit(&r, d)
			errs := Check([]Rule{r}, d, testDefs())
			for _, e := range errs {
				if e.Path == tc.path && e.Code == tc.code && strings.Contains(e.Message, tc.contains) {
					return
				}
			}
			t.Errorf("Check = %v; want %s %s containing %q", errs, tc.path, tc.code, tc.contains)
		})
	}
}

func TestCheckDuplicateRule(t *testing.T) {
	errs := Check([]Rule{testRule(), testRule()}, testDests(), testDefs())
	if len(errs) != 1 || errs[0].Path != "rules[1].name" || errs[0].Code != "DUPLICATE_RULE" {
		t.Errorf("Check(two rules named alike) = %v; want one DUPLICATE_RULE at rules[1].name", errs)
	}
}

func TestCheckSites(t *testing.T) {
	r := testRule()
	r.When.Sites = []string{"shop", "blog"}
	errs := CheckSites([]Rule{r}, []string{"shop"})
	if len(errs) != 1 || errs[0].Path != "rules[0].when.sites[1]" || errs[0].Code != "UNKNOWN_SITE" {
		t.Errorf("CheckSites = %v; want UNKNOWN_SITE at rules[0].when.sites[1]", errs)
	}
	if errs := CheckSites([]Rule{r}, []string{"shop", "blog"}); len(errs) != 0 {
		t.Errorf("CheckSites(all known) = %v; want none", errs)
	}
}
