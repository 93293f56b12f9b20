package ingest

import (
	"strings"
	"testing"
	"time"
)

// The API's user-data properties fill what Meta matches on without a
// definition; they are not stored as properties unless the event defines
// one of the same name.
func TestAPIUserData(t *testing.T) {
	cat := NewCatalog([]Definition{{Name: "deal_won", Properties: []Property{
		{Name: "amount", Type: TypeNumber}, {Name: "country", Type: TypeString},
	}}})
	raw := `{"eventName":"deal_won","email":"a@example.com","properties":{"amount":"10","Phone":"+1 650 555 1234",
		"external_id":"crm-7","first_name":"Jane","last_name":"Doe","city":"Berlin","state":"BE","zip":"10115","country":"DE",
		"client_ip_address":"203.0.113.9","client_user_agent":"Mozilla/5.0","fbp":"fb.1.1.2","fbc":"fb.1.1.abc"}}`
	c, errs := ParseAPIInput(cat, []byte(raw), "", time.Now(), SourceAPI)
	if len(errs) > 0 {
		t.Fatalf("ParseAPIInput: %v", errs)
	}
	id := c.Identity
	got := strings.Join([]string{id.Phone, id.ExternalID, id.FirstName, id.LastName, id.City, id.State, id.Zip, id.Country, id.Fbp, id.Fbc, c.Client.IP, c.Client.UserAgent}, "|")
	if want := "+1 650 555 1234|crm-7|Jane|Doe|Berlin|BE|10115|DE|fb.1.1.2|fb.1.1.abc|203.0.113.9|Mozilla/5.0"; got != want {
		t.Errorf("user data = %s; want %s", got, want)
	}
	var names []string
	for _, p := range c.Props {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "amount,country" {
		t.Errorf("stored properties = %s; want amount,country (country is defined on the event)", got)
	}

	_, errs = ParseAPIInput(cat, []byte(`{"eventName":"deal_won","email":"a@example.com","properties":{"client_ip_address":"not-an-ip"}}`), "inputs[0]", time.Now(), SourceAPI)
	if len(errs) != 1 || errs[0].Path != "inputs[0].properties.client_ip_address" || errs[0].Code != "INVALID_VALUE" {
		t.Errorf("bad IP: %+v; want one INVALID_VALUE at inputs[0].properties.client_ip_address", errs)
	}
}
