package rules

import (
	"reflect"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/capi"
)

// testCompletion is a browser completion that testRule matches.
func testCompletion() ingest.Completion {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)
	return ingest.Completion{
		EventID: "0b5a9a5e-1c1d-4f6e-9a55-0a8d9f1c2b3a", EventName: "form_submitted", Site: "shop",
		Source: ingest.SourceBrowser, OccurredAt: at, ReceivedAt: at.Add(time.Second),
		ObjectID: "1234567890123456",
		Identity: ingest.Identity{
			Email: "John.Doe@Example.COM", Phone: "(650) 555-1234", ExternalID: "User-12345",
			FirstName: "John", LastName: "Doe", City: "New York", State: "NY", Zip: "10001", Country: "US",
			Fbp: "fb.1.1596403881668.1116446470", Fbc: "fb.1.1554763741205.AbCdEf",
		},
		Consent: ingest.Consent{Analytics: true, Ads: true},
		Props: []ingest.Prop{
			{Name: "ads_consent", Value: "yes"}, {Name: "deal_amount", Value: "120.5"}, {Name: "form_id", Value: "contact"},
			{Name: "lead_ref", Value: "987654321012345"},
		},
		Page:   ingest.Page{URL: "https://shop.example.com/contact?x=1", Referrer: "https://google.com/"},
		Client: ingest.Client{IP: "2001:db8::1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64)"},
	}
}

func compileOne(t *testing.T, r Rule) *compiled {
	t.Helper()
	rs, errs := compile([]Rule{r}, testDests(), testDefs())
	if len(errs) > 0 {
		t.Fatalf("compile: %v", errs)
	}
	return rs[0]
}

func TestEventWebsite(t *testing.T) {
	r := compileOne(t, testRule())
	c := testCompletion()
	got := r.Event(&c)
	want := capi.Event{
		EventName: "Lead", EventTime: c.OccurredAt.Unix(), EventID: c.EventID,
		ActionSource: capi.ActionWebsite, EventSourceURL: c.Page.URL,
		UserData: capi.UserData{
			Email:           []string{capi.HashValue("john.doe@example.com")},
			Phone:           []string{capi.HashValue("16505551234")},
			ExternalID:      []string{capi.HashValue("user-12345")},
			ClientIPAddress: "2001:db8::1", ClientUserAgent: c.Client.UserAgent,
			Fbp: c.Identity.Fbp, Fbc: c.Identity.Fbc,
		},
		CustomData: &capi.CustomData{Value: ptr(120.5), Currency: "EUR"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Event =\n%+v\nwant\n%+v", got, want)
	}
	if err := capi.Validate(&got, c.OccurredAt.Add(time.Minute)); err != nil {
		t.Errorf("capi.Validate(mapped event) = %v", err)
	}
}

func TestEventShareOnlyWhatIsListed(t *testing.T) {
	r := testRule()
	r.Forward.Share = []string{"user_agent", "city", "country", "first_name"}
	c := testCompletion()
	got := compileOne(t, r).Event(&c).UserData
	want := capi.UserData{
		FirstName: []string{capi.HashValue("john")}, City: []string{capi.HashValue("newyork")},
		Country: []string{capi.HashValue("us")}, ClientUserAgent: c.Client.UserAgent,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UserData = %+v; want %+v", got, want)
	}

	// Without country shared, the country still gives a national phone its
	// calling code, but is not sent.
	r.Forward.Share = []string{"user_agent", "phone"}
	got = compileOne(t, r).Event(&c).UserData
	if got.Country != nil || len(got.Phone) != 1 || got.Phone[0] != capi.HashValue("16505551234") {
		t.Errorf("UserData = %+v; want ph of 16505551234 and no country", got)
	}
	// Nothing shared but the user agent: no IP, no cookies, no hashes.
	r.Forward.Share = []string{"user_agent"}
	got = compileOne(t, r).Event(&c).UserData
	if !reflect.DeepEqual(got, capi.UserData{ClientUserAgent: c.Client.UserAgent}) {
		t.Errorf("UserData = %+v; want only the user agent", got)
	}
}

func TestEventValue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value *Value
		prop  string // deal_amount as stored; "" = absent
		want  *float64
	}{
		{"fixed", &Value{Fixed: ptr(49.0)}, "120", ptr(49.0)},
		{"fixed zero", &Value{Fixed: ptr(0.0)}, "120", ptr(0.0)},
		{"property", &Value{Property: "deal_amount", Default: ptr(50.0)}, "120.5", ptr(120.5)},
		{"property missing", &Value{Property: "deal_amount", Default: ptr(50.0)}, "", ptr(50.0)},
		{"property zero", &Value{Property: "deal_amount", Default: ptr(50.0)}, "0", ptr(50.0)},
		{"property negative", &Value{Property: "deal_amount", Default: ptr(50.0)}, "-3", ptr(50.0)},
		{"property missing without default", &Value{Property: "deal_amount"}, "", nil},
		{"no value", nil, "120", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRule()
			r.Forward.Value = tc.value
			if tc.value == nil {
				r.Forward.Currency = ""
			}
			c := testCompletion()
			c.Props = []ingest.Prop{{Name: "ads_consent", Value: "yes"}, {Name: "form_id", Value: "contact"}}
			if tc.prop != "" {
				c.Props = append(c.Props, ingest.Prop{Name: "deal_amount", Value: tc.prop})
			}
			ev := compileOne(t, r).Event(&c)
			if tc.want == nil {
				if ev.CustomData != nil {
					t.Errorf("custom_data = %+v; want none", ev.CustomData)
				}
				return
			}
			if ev.CustomData == nil || ev.CustomData.Value == nil || *ev.CustomData.Value != *tc.want || ev.CustomData.Currency != "EUR" {
				t.Errorf("custom_data = %+v; want value %v EUR", ev.CustomData, *tc.want)
			}
		})
	}
}

func TestEventConversionLeads(t *testing.T) {
	r := Rule{Name: "crm_stage", When: When{Event: "form_submitted"},
		Forward: Forward{To: "meta_crm", EventName: "Marketing Qualified Lead", Share: []string{"email"}}}
	c := testCompletion()
	got := compileOne(t, r).Event(&c)
	want := capi.Event{
		EventName: "Marketing Qualified Lead", EventTime: c.OccurredAt.Unix(), EventID: c.EventID,
		ActionSource: capi.ActionSystemGenerated,
		UserData:     capi.UserData{Email: []string{capi.HashValue("john.doe@example.com")}, LeadID: 1234567890123456},
		CustomData:   &capi.CustomData{EventSource: "crm", LeadEventSource: "HubSpot"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Event =\n%+v\nwant\n%+v", got, want)
	}
	if err := capi.Validate(&got, c.OccurredAt.Add(time.Minute)); err != nil {
		t.Errorf("capi.Validate(mapped event) = %v", err)
	}

	r.Forward.LeadID = &LeadID{Property: "lead_ref"}
	if got := compileOne(t, r).Event(&c).UserData.LeadID; got != 987654321012345 {
		t.Errorf("lead_id from property = %d; want 987654321012345", got)
	}
	c.Props = nil
	if got := compileOne(t, r).Event(&c).UserData.LeadID; got != 0 {
		t.Errorf("lead_id with the property missing = %d; want 0 (left out)", got)
	}
}
