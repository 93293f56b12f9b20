package main

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tally-analytics/tally/rules/deliver"
)

// A CRM sends lifecycle stages over the API with the user data Meta
// matches on; the rule maps stages to event names, sends them as
// system_generated with custom_data, forwards a repeated submission once,
// and deliveries keep the payload, Meta's answer and the skipped repeat.
func TestCRMStagesEndToEnd(t *testing.T) {
	graph := capitestServer(t)
	front := httptest.NewServer(graph)
	t.Cleanup(front.Close)
	yaml := serveYAML + `  - name: stage_changed
    properties:
      - {name: stage, type: enumeration, options: [lead, marketingqualifiedlead, customer]}
      - {name: order_ref, type: string}
      - {name: score, type: number}
destinations:
  - {name: meta_crm, type: meta_capi, pixel_id: "1234567890", access_token: ` + graphToken + `, graph_url: ` + front.URL + `}
rules:
  - name: crm_stages
    when:
      event: stage_changed
      where: [{field: source, op: is_equal_to, value: api}]
    forward:
      to: meta_crm
      action_source: system_generated
      event_name_from: {property: stage, map: {marketingqualifiedlead: Lead, customer: Purchase}}
      value: {fixed: 100}
      currency: EUR
      custom_data:
        - {key: order_id, property: order_ref}
        - {key: lead_score, property: score}
      share: [email, phone, external_id, client_ip, fbc]
    dedupe: {by: [email, stage], within: 10m}
`
	ts := startTestServer(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	input := func(id, stage string) string {
		return `{"eventName":"stage_changed","email":"ada@example.com","uuid":"` + id + `","properties":{"stage":"` + stage + `",
		 "order_ref":"SO-42","score":"87","phone":"+1 650 555 1234","external_id":"crm-7","client_ip_address":"203.0.113.9",
		 "fbc":"fb.1.1700000000000.AbC"}}`
	}
	code, body := ts.post(t, "/events/v3/send/batch", `{"inputs":[`+input("s1", "marketingqualifiedlead;customer")+`,`+
		input("s2", "marketingqualifiedlead;customer")+`,`+input("s3", "lead")+`]}`)
	if code != 204 {
		t.Fatalf("send: %d %s", code, body)
	}
	eventually(t, "two events at the Graph stand-in", func() (bool, string) {
		return len(graph.Received()) >= 2, fmt.Sprintf("%d events", len(graph.Received()))
	})
	var got []string
	for _, ev := range graph.Received() {
		got = append(got, ev.EventName+"/"+ev.EventID+"/"+string(ev.ActionSource))
		if len(ev.UserData.Phone) != 1 || len(ev.UserData.ExternalID) != 1 || ev.UserData.ClientIPAddress != "203.0.113.9" || ev.UserData.Fbc != "fb.1.1700000000000.AbC" {
			t.Errorf("user_data = %+v; want phone, external_id, the client IP and fbc from the API properties", ev.UserData)
		}
		if ev.CustomData == nil || ev.CustomData.OrderID != "SO-42" || ev.CustomData.Custom["lead_score"] != 87.0 {
			t.Errorf("custom_data = %+v; want order_id SO-42 and lead_score 87", ev.CustomData)
		}
	}
	if strings.Join(got, " ") != "Lead/s1/system_generated Purchase/s1/system_generated" {
		t.Errorf("forwarded %v; want s1 as Lead and Purchase (s2 repeats it, s3's stage is not mapped)", got)
	}
	eventually(t, "deliveries rows", func() (bool, string) {
		sent := ts.count(t, "SELECT count() FROM DB.deliveries WHERE event_id = 's1' AND status = 'sent' AND payload LIKE '%\"action_source\":\"system_generated\"%' AND response LIKE '%events_received%'")
		dup := ts.count(t, "SELECT count() FROM DB.deliveries WHERE event_id = 's2' AND status = 'skipped_duplicate' AND error = 'duplicate of event s1 within 10m0s by email, stage'")
		return sent == 2 && dup == 1, fmt.Sprintf("%d sent with payload and answer, %d skipped_duplicate", sent, dup)
	})
}
