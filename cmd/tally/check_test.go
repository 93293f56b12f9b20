package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// tally check runs the rules' and destinations' checks too, and prints
// every problem with its place before the count.
func TestCheckReportsRuleProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tally.yaml")
	src := `sites: [{id: shop, domains: [shop.example.com]}]
events: [{name: form_submitted, properties: [{name: form_id, type: string}]}]
destinations: [{name: meta_shop, type: meta_capi, pixel_id: "abc", access_token: x}]
rules:
  - name: lead
    when: {event: form_sent, sites: [blog]}
    forward: {to: meta_ads, event_name: Lead, share: [user_agent]}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"check", "-config", path}, &stdout, &stderr)
	want := path + `:3:61: pixel_id "abc" must be the pixel's (or dataset's) numeric id, quoted
` + path + `:6:19: event "form_sent" is not defined under events
` + path + `:6:38: site "blog" is not configured under sites
` + path + `:7:19: destination "meta_ads" is not defined under destinations
4 problem(s) in the config
`
	if code != 1 || stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("tally check = exit %d, stdout %q, stderr\n%s\nwant exit 1 and stderr\n%s", code, stdout.String(), stderr.String(), want)
	}
}

// serve refuses to start on the same problems tally check prints.
func TestServeRefusesWhatCheckRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tally.yaml")
	src := `sites: [{id: shop, domains: [shop.example.com]}]
events: [{name: form_submitted, properties: [{name: form_id, type: string}]}]
destinations: [{name: meta_shop, type: meta_capi, pixel_id: "abc", access_token: x}]
rules:
  - name: lead
    when: {event: form_sent}
    forward: {to: meta_shop, event_name: Lead, share: [user_agent]}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var checkOut, serveOut, stdout bytes.Buffer
	checkCode := run(context.Background(), []string{"check", "-config", path}, &stdout, &checkOut)
	serveCode := run(context.Background(), []string{"serve", "-config", path}, &stdout, &serveOut)
	if checkCode != 1 || serveCode != 1 || serveOut.String() != checkOut.String() {
		t.Errorf("serve = %d:\n%s\ncheck = %d:\n%s\nwant both 1 with the same problems", serveCode, serveOut.String(), checkCode, checkOut.String())
	}
}

// The salesforce and webhook blocks are checked like the rest, each
// problem at its place.
func TestCheckPlacesDestinationBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tally.yaml")
	src := `sites: [{id: shop, domains: [shop.example.com]}]
events: [{name: form_submitted, label: Form submitted, properties: [{name: form_id, type: string}]}]
destinations:
  - name: crm
    type: salesforce
    pixel_id: "123"
    salesforce:
      instance_url: acme.my.salesforce.com
      api_version: v45.0
      client_id: ${SF_ID:-}
      client_secret: s
      external_id_field: Event Id
  - name: crm2
    type: salesforce
  - name: hooks
    type: webhook
    webhook: {url: "ftp://hooks.example.com", secret: not-whsec}
rules:
  - name: tasks
    when: {event: form_submitted}
    forward:
      to: crm
      event_name: Lead
      task: {subject: "{{label}} {{form}}", priority: Urgent, within_days: -1}
  - name: hook
    when: {event: form_submitted}
    forward: {to: hooks, share: [email], value: {fixed: 1}, task: {}}
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"check", "-config", path}, &stdout, &stderr)
	want := path + `:6:15: pixel_id does not apply to a salesforce destination
` + path + `:8:21: instance_url "acme.my.salesforce.com" must be the org's https URL without a path, like https://acme.my.salesforce.com
` + path + `:9:20: api_version v45.0 is too old: sObject Collections upsert needs v46.0 or later
` + path + `:10:18: client_id is required: the connected app's consumer key, as ${ENV_NAME}
` + path + `:12:26: external_id_field "Event Id" must be a Task custom field's API name, like Tally_Event_Id__c
` + path + `:13:5: a salesforce destination needs its settings under salesforce:
` + path + `:17:20: webhook url "ftp://hooks.example.com" must be an absolute http(s) URL
` + path + `:17:55: webhook secret must be a Standard Webhooks secret: whsec_ followed by base64 of 24 to 64 random bytes
` + path + `:23:19: a salesforce task is named by task.subject, not event_name
` + path + `:24:23: {{form}} is neither label, event, email, url nor a property of event "form_submitted"
` + path + `:24:55: priority "Urgent" is not one of High, Normal, Low
` + path + `:24:76: within_days must be between 0 (no limit) and 3650
` + path + `:27:49: value is for meta_capi destinations; "hooks" is webhook
` + path + `:27:67: task is for salesforce destinations
14 problem(s) in the config
`
	if code != 1 || stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("tally check = exit %d, stdout %q, stderr\n%s\nwant exit 1 and stderr\n%s", code, stdout.String(), stderr.String(), want)
	}
}
