package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/ingest/enrich"
	"github.com/tally-analytics/tally/rules"
	"github.com/tally-analytics/tally/rules/capi"
)

// rulesCmd is "tally rules test": for one completion, each rule's verdict
// and the exact request it would send. Nothing is sent or stored.
func rulesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: tally rules test [-config tally.yaml] [-site ID] completion.json")
		return errUsage
	}
	fs, path := commonFlags("rules test", stderr)
	site := fs.String("site", "", "the site the completion came from (default: the config's first site)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: tally rules test [-config tally.yaml] [-site ID] completion.json

completion.json is one completion in the HTTP API's shape (POST /events/v3/send):
{"eventName": "form_submitted", "email": "a@example.com", "occurredAt": "...",
 "properties": {"form_id": "contact", "hs_page_url": "https://…", "hs_user_agent": "…"}}
It is validated and enriched as the API would, then offered to every rule;
enabled-at times and dedupe windows are not applied.`)
		fs.PrintDefaults()
	}
	cfg, err := loadFromFlags(fs, path, args[1:])
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("read completion: %w", err)
	}
	now := time.Now()
	c, errs := ingest.ParseAPIInput(ingest.NewCatalog(cfg.Events), raw, "", now, ingest.SourceAPI)
	if len(errs) > 0 {
		var b strings.Builder
		for _, e := range errs {
			fmt.Fprintf(&b, "\n  %s: %s", e.Path, e.Message)
		}
		return fmt.Errorf("%s is not a valid completion:%s", fs.Arg(0), b.String())
	}
	c.Site = *site
	if c.Site == "" && len(cfg.Sites) > 0 {
		c.Site = cfg.Sites[0].ID
	}
	en, err := enrich.New(enrich.Config{GeoIP: cfg.GeoIP, Privacy: cfg.Privacy}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer en.Close()
	en.Enrich(&c)

	verdicts, err := rules.Explain(rules.Config{Rules: cfg.Rules, Destinations: cfg.Destinations, Definitions: cfg.Events}, &c, now)
	if err != nil {
		return err
	}
	if len(verdicts) == 0 {
		fmt.Fprintln(stdout, "no rules in the config")
	}
	for _, v := range verdicts {
		if err := printVerdict(stdout, v); err != nil {
			return err
		}
	}
	return nil
}

func printVerdict(w io.Writer, v rules.Verdict) error {
	state := ""
	if !v.Enabled {
		state = " (disabled: would forward nothing until enabled)"
	}
	if !v.Match {
		fmt.Fprintf(w, "rule %s: no match: %s%s\n\n", v.Rule, v.Reason, state)
		return nil
	}
	d := v.Destination
	if d.Type != rules.TypeMetaCAPI {
		fmt.Fprintf(w, "rule %s: match → %s (%s), %d item(s)%s\n", v.Rule, d.Name, d.Type, len(v.Items), state)
		for _, r := range v.Refused {
			fmt.Fprintf(w, "  would not be sent: %s (a row in deliveries)\n", r)
		}
		for _, it := range v.Items {
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, it.Payload, "  ", "  "); err != nil {
				return errors.New("indent payload: " + err.Error())
			}
			fmt.Fprintf(w, "  %s %s, as queued for %s:\n  %s\n", it.Name, it.ID, d.Name, pretty.String())
		}
		fmt.Fprintln(w)
		return nil
	}
	fmt.Fprintf(w, "rule %s: match → %s, %d event(s)%s\n", v.Rule, v.Destination.Name, len(v.Events), state)
	client, err := capi.NewClient(capi.ClientConfig{GraphURL: d.GraphURL, APIVersion: d.APIVersion, PixelID: d.PixelID,
		AccessToken: d.AccessToken, TestEventCode: d.TestEventCode, PartnerAgent: d.PartnerAgent}, nil)
	if err != nil {
		return fmt.Errorf("destination %q: %w", d.Name, err)
	}
	var send []capi.Event
	for i, ev := range v.Events {
		if v.Invalid[i] != "" {
			fmt.Fprintf(w, "  %s would not be sent: %s (a failed row in deliveries)\n", ev.EventName, v.Invalid[i])
			continue
		}
		send = append(send, ev)
	}
	if len(send) == 0 {
		fmt.Fprintln(w)
		return nil
	}
	body, err := client.Body(send)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "  ", "  "); err != nil {
		return errors.New("indent request body: " + err.Error())
	}
	fmt.Fprintf(w, "  POST %s\n  Authorization: Bearer <access_token of %s>\n  Content-Type: application/json\n\n  %s\n\n", client.Endpoint(), d.Name, pretty.String())
	return nil
}
