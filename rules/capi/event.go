package capi

import (
	"encoding/json"
	"reflect"
	"strings"
)

// ActionSource says where a conversion happened, in Meta's vocabulary.
type ActionSource string

// The action sources tally sends. Meta knows more (email, app, phone_call,
// chat, physical_store, business_messaging, other); they validate like
// SystemGenerated.
const (
	// ActionWebsite is a browser event mirrored by the server. Meta requires
	// event_source_url and user_data.client_user_agent with it.
	ActionWebsite ActionSource = "website"
	// ActionSystemGenerated is what Meta's Conversion Leads (CRM) spec requires.
	ActionSystemGenerated ActionSource = "system_generated"
)

// Event is one server event exactly as Meta's Conversions API receives it:
// an element of the request body's "data" array. JSON names are Meta's.
type Event struct {
	EventName string `json:"event_name"`
	// EventTime is unix seconds (GMT). Meta rejects the whole request when
	// any event in it is older than 7 days.
	EventTime int64 `json:"event_time"`
	// EventID must equal the browser pixel's eventID so Meta deduplicates
	// the pair; it stays the same on every retry.
	EventID        string       `json:"event_id,omitempty"`
	ActionSource   ActionSource `json:"action_source"`
	EventSourceURL string       `json:"event_source_url,omitempty"`
	ReferrerURL    string       `json:"referrer_url,omitempty"`
	// OptOut true means: use for attribution only, not for ads delivery
	// optimisation. Meta's SDK emits it only when true; so do we.
	OptOut     bool        `json:"opt_out,omitempty"`
	UserData   UserData    `json:"user_data"`
	CustomData *CustomData `json:"custom_data,omitempty"`
}

// UserData is Meta's customer-information object. The hashed keys hold
// SHA-256 lowercase hex of the normalised value (build them with
// HashedUserData); Meta types each as "string or list<string>" and tally
// always sends lists, as Meta's SDK does. The remaining keys are sent as-is
// and must never be hashed.
type UserData struct {
	Email       []string `json:"em,omitempty"`
	Phone       []string `json:"ph,omitempty"`
	FirstName   []string `json:"fn,omitempty"`
	LastName    []string `json:"ln,omitempty"`
	Gender      []string `json:"ge,omitempty"`
	DateOfBirth []string `json:"db,omitempty"`
	City        []string `json:"ct,omitempty"`
	State       []string `json:"st,omitempty"`
	Zip         []string `json:"zp,omitempty"`
	Country     []string `json:"country,omitempty"`
	ExternalID  []string `json:"external_id,omitempty"`

	ClientIPAddress string `json:"client_ip_address,omitempty"`
	ClientUserAgent string `json:"client_user_agent,omitempty"`
	Fbp             string `json:"fbp,omitempty"`
	Fbc             string `json:"fbc,omitempty"`
	// LeadID is the Lead Ads leadgen_id (15–17 digits); Meta types it as an
	// integer and it is never hashed.
	LeadID int64 `json:"lead_id,omitempty"`
}

// CustomData is Meta's custom_data object (the "standard parameters").
type CustomData struct {
	// Value is required for Purchase and value-optimised events. A pointer
	// so an explicit 0 is sent.
	Value    *float64 `json:"value,omitempty"`
	Currency string   `json:"currency,omitempty"` // ISO 4217

	ContentName     string    `json:"content_name,omitempty"`
	ContentCategory string    `json:"content_category,omitempty"`
	ContentIDs      []string  `json:"content_ids,omitempty"`
	ContentType     string    `json:"content_type,omitempty"` // product | product_group
	Contents        []Content `json:"contents,omitempty"`
	NumItems        int       `json:"num_items,omitempty"`
	OrderID         string    `json:"order_id,omitempty"`
	Status          string    `json:"status,omitempty"`
	SearchString    string    `json:"search_string,omitempty"`

	// EventSource is "crm" for Conversion Leads events.
	EventSource string `json:"event_source,omitempty"`
	// LeadEventSource names the CRM (HubSpot, Salesforce, "In-house CRM"…)
	// for Conversion Leads events.
	LeadEventSource string `json:"lead_event_source,omitempty"`
	// PredictedLTV is the predicted lifetime value of the conversion.
	PredictedLTV *float64 `json:"predicted_ltv,omitempty"`

	// Custom holds custom properties sent next to the standard ones (a
	// lead score, a plan); Meta accepts any key. Keys that collide with a
	// standard one are ignored when encoding.
	Custom map[string]any `json:"-"`
}

// customDataFields is CustomData without its methods, for encoding.
type customDataFields CustomData

// MarshalJSON writes the standard keys and then the custom ones.
func (cd CustomData) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(customDataFields(cd))
	if err != nil || len(cd.Custom) == 0 {
		return b, err
	}
	var std map[string]json.RawMessage
	if err := json.Unmarshal(b, &std); err != nil {
		return nil, err
	}
	all := make(map[string]any, len(std)+len(cd.Custom))
	for k, v := range cd.Custom {
		if !standardCustomKey(k) {
			all[k] = v
		}
	}
	for k, v := range std {
		all[k] = v
	}
	return json.Marshal(all) // keys sorted: the same event encodes the same way
}

// UnmarshalJSON reads the standard keys and keeps the rest in Custom.
func (cd *CustomData) UnmarshalJSON(b []byte) error {
	var f customDataFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for k, v := range all {
		if standardCustomKey(k) {
			continue
		}
		if f.Custom == nil {
			f.Custom = map[string]any{}
		}
		f.Custom[k] = v
	}
	*cd = CustomData(f)
	return nil
}

// standardCustomKey reports whether k is one of CustomData's own keys.
func standardCustomKey(k string) bool {
	t := reflect.TypeOf(customDataFields{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == k {
			return true
		}
	}
	return false
}

// Content is one item of CustomData.Contents.
type Content struct {
	ID        string   `json:"id"`
	Quantity  int      `json:"quantity,omitempty"`
	ItemPrice *float64 `json:"item_price,omitempty"`
}

// Identity is what is known of a person, raw. HashedUserData normalises
// and hashes it; a value that is already 64-hex SHA-256 passes through.
type Identity struct {
	Email      string
	Phone      string // E.164 preferred; without a country code Country decides it
	FirstName  string
	LastName   string
	Gender     string
	BirthDate  string // YYYYMMDD, YYYY-MM-DD, M/D/YYYY or D.M.YYYY
	City       string
	State      string
	Zip        string
	Country    string // ISO 3166-1 alpha-2 preferred; alpha-3 and English names are mapped
	ExternalID string
}

// HashedUserData normalises every field of id per Meta's documented rules
// and SHA-256 hashes it. Empty and invalid values are left out (an invalid
// email or phone cannot match anyone, and Meta's own SDK refuses them);
// values that already are 64-hex SHA-256 are lowercased and passed through.
// The caller sets ClientIPAddress, ClientUserAgent, Fbp, Fbc and LeadID.
func HashedUserData(id Identity) UserData {
	country, _ := NormalizeField(FieldCountry, id.Country, "")
	if isHashed(id.Country) {
		country = "" // a hashed country cannot inform phone or zip rules
	}
	h := func(f Field, raw string) []string {
		v, ok := hashField(f, raw, country)
		if !ok {
			return nil
		}
		return []string{v}
	}
	return UserData{
		Email:       h(FieldEmail, id.Email),
		Phone:       h(FieldPhone, id.Phone),
		FirstName:   h(FieldFirstName, id.FirstName),
		LastName:    h(FieldLastName, id.LastName),
		Gender:      h(FieldGender, id.Gender),
		DateOfBirth: h(FieldDateOfBirth, id.BirthDate),
		City:        h(FieldCity, id.City),
		State:       h(FieldState, id.State),
		Zip:         h(FieldZip, id.Zip),
		Country:     h(FieldCountry, id.Country),
		ExternalID:  h(FieldExternalID, id.ExternalID),
	}
}
