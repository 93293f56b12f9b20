package rules

import (
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

func TestIdentitiesFillLaterCompletions(t *testing.T) {
	ids := NewIdentities(2)
	on := ingest.Consent{Analytics: true, Ads: true}
	first := []ingest.Completion{{VisitorID: "v1", Consent: on, Identity: ingest.Identity{Email: "a@example.com", Fbp: "fb.1.1.1"}}}
	ids.Fill(first)
	later := []ingest.Completion{
		{VisitorID: "v1", Consent: on, Identity: ingest.Identity{Fbp: "fb.1.2.2"}},
		{VisitorID: "v2", Consent: on},
		{VisitorID: "v1", Consent: ingest.Consent{}}, // no analytics consent: not linked
	}
	ids.Fill(later)
	if got := later[0].Identity; got.Email != "a@example.com" || got.Fbp != "fb.1.2.2" {
		t.Errorf("later completion of v1 has %+v; want the email and its own fbp", got)
	}
	if later[1].Identity.Email != "" || later[2].Identity.Email != "" {
		t.Errorf("identity given to another visitor or without consent: %+v, %+v", later[1].Identity, later[2].Identity)
	}
	if n := ids.Forget(func(v string, id ingest.Identity) bool { return id.Email == "a@example.com" }); n != 1 {
		t.Errorf("Forget removed %d; want 1", n)
	}
	again := []ingest.Completion{{VisitorID: "v1", Consent: on}}
	ids.Fill(again)
	if again[0].Identity.Email != "" {
		t.Errorf("identity filled after Forget: %+v", again[0].Identity)
	}
	// Bounded: the least recently seen visitor goes first.
	for _, v := range []string{"a", "b", "c"} {
		ids.Fill([]ingest.Completion{{VisitorID: v, Consent: on, Identity: ingest.Identity{Email: v + "@x"}}})
	}
	probe := []ingest.Completion{{VisitorID: "a", Consent: on}, {VisitorID: "c", Consent: on}}
	ids.Fill(probe)
	if probe[0].Identity.Email != "" || probe[1].Identity.Email != "c@x" {
		t.Errorf("after 3 visitors with room for 2: a %q, c %q; want a forgotten, c kept", probe[0].Identity.Email, probe[1].Identity.Email)
	}
}
