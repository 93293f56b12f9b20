package config

import (
	"strings"
	"testing"
)

// badRules has a problem in almost every rule and destination: tally check
// must report each one, at its place, in one run.
const badRules = `sites:
  - id: shop
    domains: [shop.example.com]
events:
  - name: form_submitted
    properties:
      - {name: form_id, type: string}
      - {name: deal_amount, type: number}
destinations:
  - name: meta_shop
    type: meta_capi
    pixel_id: "abc"
    access_token: secret
  - name: meta_crm
    type: meta_capi
    pixel_id: "123"
    access_token: secret
    mode: conversion_leads
rules:
  - name: lead
    when:
      event: form_sent
      sites: [blog]
    forward:
      to: meta_shop
      event_name: Lead
      share: [user_agent]
  - name: big_forms
    when:
      event: form_submitted
      where:
        - {property: form_id, op: is_greater_than, value: "3"}
        - {field: utm_sorce, op: is_equal_to, value: facebook}
        - {field: country, op: is_any_of, values: [DE, AT]}
    forward:
      to: meta_ads
      event_name: lead
      share: [email, user_agent]
      mirror_in_browser: true
  - name: paid
    when:
      event: form_submitted
    forward:
      to: meta_shop
      event_name: Purchase
      share: [email]
`

func TestRulesProblemsAtOnce(t *testing.T) {
	_, ps := Parse("tally.yaml", []byte(badRules), env(nil))
	want := []string{
		`tally.yaml:12:15: pixel_id "abc" must be the pixel's (or dataset's) numeric id, quoted`,
		`tally.yaml:14:5: mode conversion_leads needs lead_event_source: the CRM's name (HubSpot, Salesforce, In-house CRM…)`,
		`tally.yaml:22:14: event "form_sent" is not defined under events`,
		`tally.yaml:23:15: site "blog" is not configured under sites`,
		`tally.yaml:32:35: operation is_greater_than is not valid for string property "form_id"; valid: is_equal_to, is_not_equal_to, contains, does_not_contain, starts_with, ends_with, matches_regex, is_any_of, is_none_of, is_known, is_unknown`,
		`tally.yaml:33:19: unknown field "utm_sorce"; standard fields are url, path, referrer, page_title, utm_source, utm_medium, utm_campaign, utm_term, utm_content, touchpoint_source, click_id, click_id_param, fbc, fbp, country, region, city, device_type, browser, os, source, site (custom properties: write property: instead)`,
		`tally.yaml:34:19: field country is known only on the server (touchpoint_source, country, region, city, device_type, browser, os are derived there), so a rule with mirror_in_browser cannot filter on it; drop mirror_in_browser or the filter`,
		`tally.yaml:36:11: destination "meta_ads" is not defined under destinations`,
		`tally.yaml:37:19: event_name "lead" differs from Meta's standard event "Lead" only by case; Meta's names are case-exact: write Lead`,
		`tally.yaml:44:7: Meta requires a value on Purchase: give value: {fixed: …} or {property: …, default: …}`,
		`tally.yaml:44:7: Meta requires a currency on Purchase`,
		`tally.yaml:46:14: Meta requires client_user_agent on website events: add user_agent to share`,
	}
	if got := strings.Split(ps.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Parse(bad rules) =\n%s\nwant\n%s", ps.Error(), strings.Join(want, "\n"))
	}
}
