package rules

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/salesforce"
	"github.com/tally-analytics/tally/rules/webhook"
)

// crmDests are a salesforce org and a webhook beside the Meta pixels.
func crmDests() []Destination {
	return append(testDests(),
		Destination{Name: "crm", Type: salesforce.Type, Salesforce: &salesforce.Config{InstanceURL: "https://acme.my.salesforce.com", ClientID: "id", ClientSecret: "secret"}},
		Destination{Name: "hooks", Type: webhook.Type, Webhook: &webhook.Config{URL: "https://hooks.example.com/tally", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})
}

// Rules to a CRM: no ads consent needed (a property gate still applies),
// the task window refuses old completions with a skipped_too_old row, a
// webhook gets only the identity its rule shares.
func TestCRMRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rules := []Rule{
			{Name: "tasks", When: When{Event: "form_submitted"}, Forward: Forward{To: "crm",
				Task: &salesforce.Task{Subject: "{{label}} {{form_id}}", WithinDays: 30}}},
			{Name: "hooks", When: When{Event: "form_submitted"}, Forward: Forward{To: "hooks", Share: []string{ShareEmail},
				Consent: &ConsentGate{Property: "ads_consent", Equals: "yes"}}},
		}
		e, fwd, skips := newTestEngine(t, t.TempDir(), Config{Rules: rules, Destinations: crmDests()})
		time.Sleep(time.Second)
		c := liveCompletion()
		c.Consent.Ads = false
		old := liveCompletion()
		old.EventID, old.OccurredAt = "old-one", old.OccurredAt.Add(-40*24*time.Hour)
		if err := e.Write(context.Background(), []ingest.Completion{c, old}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range fwd.sent {
			got = append(got, s.dest+"/"+s.rule+"/"+s.it.ID+"/"+s.it.Name)
		}
		want := []string{"crm/tasks/" + c.EventID + "/Task", "hooks/hooks/" + c.EventID + "/form_submitted", "hooks/hooks/old-one/form_submitted"}
		if !slices.Equal(got, want) {
			t.Fatalf("enqueued %q; want %q", got, want)
		}
		var task struct {
			Email string
			Task  salesforce.Record
		}
		if err := json.Unmarshal(fwd.sent[0].it.Payload, &task); err != nil || task.Email != "john.doe@example.com" || task.Task.Subject != "form_submitted contact" || task.Task.Status != "Completed" {
			t.Errorf("task payload %s; want the lower-cased email and the rendered subject", fwd.sent[0].it.Payload)
		}
		hook := string(fwd.sent[1].it.Payload)
		if !strings.Contains(hook, `"identity":{"email":"John.Doe@Example.COM"}`) || strings.Contains(hook, "650") || strings.Contains(hook, "User-12345") {
			t.Errorf("webhook payload %s; want the email only of the identity", hook)
		}
		if len(skips.got) != 1 || skips.got[0].EventID != "old-one" || skips.got[0].Status != salesforce.StatusSkippedTooOld || skips.got[0].ForwardedName != "Task" {
			t.Errorf("skips = %+v; want one skipped_too_old Task for the 40-day-old completion", skips.got)
		}

		// The property gate holds for a webhook as for Meta.
		gated := liveCompletion()
		gated.EventID, gated.Props = "gated", []ingest.Prop{{Name: "ads_consent", Value: "no"}, {Name: "form_id", Value: "contact"}}
		skips.got = nil
		if err := e.Write(context.Background(), []ingest.Completion{gated}); err != nil {
			t.Fatal(err)
		}
		if len(skips.got) != 1 || skips.got[0].Status != StatusSkippedConsent || skips.got[0].Destination != "hooks" {
			t.Errorf("skips = %+v; want the webhook rule skipped for its consent property", skips.got)
		}
	})
}
