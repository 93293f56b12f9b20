package rules

import (
	"bytes"
	"log/slog"
	"testing"

	"go.yaml.in/yaml/v3"
)

// sketchYAML is the destinations and rules of product.md's tally.yaml
// sketch, plus the forms the sketch does not show.
const sketchYAML = `
destinations:
  - name: meta_shop
    type: meta_capi
    pixel_id: "1234567890"
    access_token: secret
    api_version: v25.0
    graph_url: https://graph.facebook.com
    test_event_code: ""
    mode: website
  - name: meta_crm
    type: meta_capi
    pixel_id: "987"
    access_token: secret
    mode: conversion_leads
    lead_event_source: HubSpot
    partner_agent: tally
rules:
  - name: contact_form_lead
    enabled: true
    when:
      event: form_submitted
      where:
        - {property: form_id, op: is_equal_to, value: contact}
    forward:
      to: meta_shop
      event_name: Lead
      value: {property: deal_amount, default: 50}
      currency: EUR
      share: [email, phone, external_id, client_ip, user_agent, fbp, fbc]
      consent: {property: ads_consent, equals: "yes"}
      mirror_in_browser: true
  - name: big_deals
    when:
      events: [form_submitted]
      sites: [shop]
      where:
        - {property: deal_amount, op: is_between, values: [1000, 5000.5]}
        - {property: newsletter, op: is_equal_to, value: true}
      any:
        - where: [{property: plan, op: is_any_of, values: [pro, team]}]
        - where: [{property: submitted_at, op: is_greater_than, value: 2026-01-01}]
    forward:
      to: meta_shop
      event_name: BigDeal
      value: {fixed: 100}
      currency: USD
      share: [user_agent]
  - name: crm_stage
    enabled: false
    when: {event: form_submitted}
    forward:
      to: meta_crm
      event_name: Marketing Qualified Lead
      share: [email]
      lead_id: {property: lead_ref}
`

func TestConfigYAML(t *testing.T) {
	var cfg struct {
		Destinations []Destination `yaml:"destinations"`
		Rules        []Rule        `yaml:"rules"`
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(sketchYAML)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if errs := Check(cfg.Rules, cfg.Destinations, testDefs()); len(errs) > 0 {
		t.Fatalf("Check(sketch) = %v; want none", errs)
	}
	big := cfg.Rules[1]
	if got := big.When.Where[0].Values; len(got) != 2 || got[0] != "1000" || got[1] != "5000.5" {
		t.Errorf("numeric YAML values = %q; want [1000 5000.5]", got)
	}
	if v := big.When.Where[1].Value; v == nil || *v != "true" {
		t.Errorf("bool YAML value = %v; want true", v)
	}
	if !cfg.Rules[0].IsEnabled() || !big.IsEnabled() || cfg.Rules[2].IsEnabled() {
		t.Error("enabled: want true (explicit), true (default), false")
	}
	d := cfg.Destinations[1].WithDefaults()
	if d.GraphURL != DefaultGraphURL || d.APIVersion != DefaultAPIVersion || d.PartnerAgent != "tally" {
		t.Errorf("defaults = %+v", d)
	}

	bad := []byte("rules:\n  - name: x\n    when: {event: form_submitted, wher: []}\n")
	dec = yaml.NewDecoder(bytes.NewReader(bad))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil {
		t.Error("decode of a misspelt key succeeded; want an error")
	}
}

func TestDestinationLogValueHidesToken(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("destination", "dest", Destination{Name: "meta_shop", Type: TypeMetaCAPI, PixelID: "1", AccessToken: "EAAB-very-secret"})
	if bytes.Contains(buf.Bytes(), []byte("very-secret")) || !bytes.Contains(buf.Bytes(), []byte("meta_shop")) {
		t.Errorf("log line %s; want the name and no token", buf.Bytes())
	}
}
