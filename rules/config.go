package rules

import (
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/salesforce"
	"github.com/tally-analytics/tally/rules/webhook"
)

// Destination types and modes.
const (
	TypeMetaCAPI = "meta_capi"

	ModeWebsite         = "website"
	ModeConversionLeads = "conversion_leads"
)

// Defaults for a Meta destination: the client's own (see capi).
const (
	DefaultGraphURL   = capi.DefaultGraphURL
	DefaultAPIVersion = capi.DefaultAPIVersion
)

// Destination is one configured forwarding target (destinations[] in
// tally.yaml).
type Destination struct {
	Name string `yaml:"name"`
	// Type is the kind of destination: meta_capi (the fields below),
	// salesforce (the salesforce block) or webhook (the webhook block).
	Type string `yaml:"type"`

	// Salesforce is a salesforce destination's block.
	Salesforce *salesforce.Config `yaml:"salesforce"`
	// Webhook is a webhook destination's block.
	Webhook *webhook.Config `yaml:"webhook"`

	PixelID     string `yaml:"pixel_id"`     // the pixel or dataset id events are posted to
	AccessToken string `yaml:"access_token"` // a secret: reference it as ${ENV_NAME}; never logged
	APIVersion  string `yaml:"api_version"`  // empty means DefaultAPIVersion
	GraphURL    string `yaml:"graph_url"`    // empty means DefaultGraphURL
	// TestEventCode routes events to Events Manager's Test Events tab. Such
	// events are still used for ads measurement: remove it in production.
	TestEventCode string `yaml:"test_event_code"`
	// PartnerAgent names the sending platform to Meta; empty means none.
	PartnerAgent string `yaml:"partner_agent"`
	// Mode is website (browser events mirrored by the server) or
	// conversion_leads (CRM stages of Lead Ads leads); empty means website.
	Mode string `yaml:"mode"`
	// LeadEventSource names the CRM for conversion_leads ("HubSpot",
	// "Salesforce", "In-house CRM"); required in that mode.
	LeadEventSource string `yaml:"lead_event_source"`
}

// WithDefaults returns d with empty optional fields set to their defaults.
func (d Destination) WithDefaults() Destination {
	if d.Type != TypeMetaCAPI {
		return d
	}
	if d.APIVersion == "" {
		d.APIVersion = DefaultAPIVersion
	}
	if d.GraphURL == "" {
		d.GraphURL = DefaultGraphURL
	}
	if d.Mode == "" {
		d.Mode = ModeWebsite
	}
	return d
}

// LogValue keeps the access token and secrets out of logs.
func (d Destination) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", d.Name),
		slog.String("type", d.Type),
		slog.String("pixel_id", d.PixelID),
		slog.String("mode", d.Mode),
		slog.Bool("test_event_code", d.TestEventCode != ""),
	)
}

// Rule is one configured forwarding rule (rules[] in tally.yaml): completions
// that match When are forwarded as Forward says.
type Rule struct {
	Name string `yaml:"name"`
	// Enabled defaults to true; a rule forwards only completions received
	// after it was (last) enabled.
	Enabled *bool   `yaml:"enabled"`
	When    When    `yaml:"when"`
	Forward Forward `yaml:"forward"`
	// Dedupe collapses repeated submissions: of the matches that agree on
	// every By key within Within of the last one forwarded, only that one
	// is forwarded; the others get a deliveries row (skipped_duplicate).
	Dedupe *Dedupe `yaml:"dedupe"`
}

// Dedupe is a rule's duplicate window. By names what makes two
// completions the same submission: email, external_id, phone, visitor_id,
// object_id, a standard field (see Filter) or a custom property.
type Dedupe struct {
	By     []string      `yaml:"by"`
	Within time.Duration `yaml:"within"`
}

// IsEnabled reports whether the rule is on (enabled: true or absent).
func (r *Rule) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// When selects completions: one of the events, from one of the sites (all
// sites when empty), where every filter of Where holds and, when Any is
// given, every filter of at least one of its groups holds.
type When struct {
	Event  string   `yaml:"event"`
	Events []string `yaml:"events"`
	Sites  []string `yaml:"sites"`
	Where  []Filter `yaml:"where"`
	Any    []Group  `yaml:"any"`
}

// EventNames is Event and Events together.
func (w *When) EventNames() []string {
	if w.Event != "" {
		return append([]string{w.Event}, w.Events...)
	}
	return w.Events
}

// Group is one alternative of When.Any: all its filters must hold.
type Group struct {
	Where []Filter `yaml:"where"`
}

// Filter is one condition on a custom property (Property) or on one of the
// completion's standard fields (Field: url, utm_source, click_id_param, …;
// see standardFields), in HubSpot's vocabulary of operations (see Op).
// Value is for single-valued operations, Values for is_any_of, is_none_of
// and is_between (low, high).
type Filter struct {
	Property string   `yaml:"property"`
	Field    string   `yaml:"field"`
	Op       Op       `yaml:"op"`
	Value    *string  `yaml:"value"`
	Values   []string `yaml:"values"`
}

// Forward says where a matching completion goes and how it is mapped.
type Forward struct {
	To string `yaml:"to"`
	// EventName is Meta's event name: a standard one (Lead, Purchase, …,
	// tracked with fbq('track')) or a custom one (fbq('trackCustom')), at
	// most 50 characters. For conversion_leads it is the CRM stage.
	EventName string `yaml:"event_name"`
	Value     *Value `yaml:"value"`
	Currency  string `yaml:"currency"` // ISO 4217, e.g. EUR
	// Share lists the user data sent (ShareItems); nothing else leaves.
	// Meta gets it hashed as Meta requires, a webhook as it is.
	Share   []string     `yaml:"share"`
	Consent *ConsentGate `yaml:"consent"`
	// MirrorInBrowser makes the snippet call fbq with the same event name,
	// event id, value and currency that the server forwards.
	MirrorInBrowser bool `yaml:"mirror_in_browser"`
	// LeadID says where a conversion_leads event's Lead Ads id is; without
	// it the completion's object id is used.
	LeadID *LeadID `yaml:"lead_id"`

	// EventNameFrom takes the event name from a property instead of
	// EventName: each mapped value (each selected option of an
	// enumeration) forwards one event; a completion with no mapped value
	// forwards nothing (counted as unmapped).
	EventNameFrom *EventNameFrom `yaml:"event_name_from"`
	// CustomData adds custom_data keys from properties: Meta's own
	// (order_id, content_ids, predicted_ltv, …, typed) or custom ones.
	CustomData []CustomDataField `yaml:"custom_data"`
	// Task maps the completion onto a Salesforce task (salesforce
	// destinations only); absent means the defaults of salesforce.Task.
	Task *salesforce.Task `yaml:"task"`

	// ActionSource says where the conversion happened, in Meta's words
	// (ActionSources); empty means the destination mode's: website, or
	// system_generated for conversion_leads.
	ActionSource string `yaml:"action_source"`
}

// EventNameFrom maps a property's values onto Meta event names, e.g. a
// lifecycle stage: {property: lifecycle_stage, map: {salesqualifiedlead:
// Lead, customer: Purchase}}. String values compare ignoring case,
// enumeration options exactly.
type EventNameFrom struct {
	Property string            `yaml:"property"`
	Map      map[string]string `yaml:"map"`
}

// CustomDataField is one custom_data key filled from a property.
type CustomDataField struct {
	Key      string `yaml:"key"`
	Property string `yaml:"property"`
}

// Action sources a rule may name (Meta's action_source values without the
// app and messaging ones, which need fields tally does not collect).
const (
	ActionWebsite         = "website"
	ActionSystemGenerated = "system_generated"
	ActionPhysicalStore   = "physical_store"
	ActionPhoneCall       = "phone_call"
	ActionEmail           = "email"
	ActionChat            = "chat"
	ActionOther           = "other"
)

var actionSources = []string{ActionWebsite, ActionSystemGenerated, ActionPhysicalStore, ActionPhoneCall, ActionEmail, ActionChat, ActionOther}

// Value is the conversion value: Fixed, or Property's number with Default
// when the property is missing, not a number or not positive.
type Value struct {
	Fixed    *float64 `yaml:"fixed"`
	Property string   `yaml:"property"`
	Default  *float64 `yaml:"default"`
}

// ConsentGate is a property that must hold a value for the rule to forward
// (compared like is_equal_to), on top of the visitor's ads consent.
type ConsentGate struct {
	Property string `yaml:"property"`
	Equals   string `yaml:"equals"`
}

// LeadID names the property holding a Lead Ads lead id (15–17 digits).
type LeadID struct {
	Property string `yaml:"property"`
}

// Share items: what user data a rule may send.
const (
	ShareEmail      = "email"
	SharePhone      = "phone"
	ShareFirstName  = "first_name"
	ShareLastName   = "last_name"
	ShareCity       = "city"
	ShareState      = "state"
	ShareZip        = "zip"
	ShareCountry    = "country"
	ShareExternalID = "external_id"
	ShareClientIP   = "client_ip"
	ShareUserAgent  = "user_agent"
	ShareFbp        = "fbp"
	ShareFbc        = "fbc"
)

// ShareItems are the valid entries of forward.share.
var shareItems = []string{
	ShareEmail, SharePhone, ShareFirstName, ShareLastName, ShareCity, ShareState,
	ShareZip, ShareCountry, ShareExternalID, ShareClientIP, ShareUserAgent, ShareFbp, ShareFbc,
}

// standardEvents are Meta's standard pixel events (Meta Pixel reference);
// any other name is custom and tracked with fbq('trackCustom').
var standardEvents = []string{
	"AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration",
	"Contact", "CustomizeProduct", "Donate", "FindLocation", "InitiateCheckout",
	"Lead", "PageView", "Purchase", "Schedule", "Search", "StartTrial",
	"SubmitApplication", "Subscribe", "ViewContent",
}

// IsStandardEvent reports whether name is one of Meta's standard events,
// spelled exactly (Meta's names are case-exact).
func IsStandardEvent(name string) bool { return slices.Contains(standardEvents, name) }

// standardEventFold returns the standard event that name equals ignoring
// case, for a hint when a config spells one in the wrong case.
func standardEventFold(name string) (string, bool) {
	for _, s := range standardEvents {
		if strings.EqualFold(s, name) {
			return s, true
		}
	}
	return "", false
}
