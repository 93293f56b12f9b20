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
