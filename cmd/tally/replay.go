package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// replayCmd asks the running tally to forward stored history to one rule
// (POST /rules/replay on the admin listener): the outbox is the running
// tally's.
func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, path := commonFlags("replay", stderr)
	rule := fs.String("rule", "", "the enabled rule to replay to")
	since := fs.String("since", "", "forward completions that occurred from this time on (RFC 3339 or a duration ago, like 48h); at most 7 days back")
	token := fs.String("token", os.Getenv("TALLY_ADMIN_TOKEN"), "an api_tokens token whose scopes include replay (default $TALLY_ADMIN_TOKEN)")
	cfg, err := loadFromFlags(fs, path, args)
	if err != nil {
		return err
	}
	if *rule == "" || *since == "" {
		return fmt.Errorf("%w: give -rule and -since", errUsage)
	}
	from, err := time.Parse(time.RFC3339, *since)
	if err != nil {
		d, derr := time.ParseDuration(*since)
		if derr != nil {
			return fmt.Errorf("%w: -since %q is neither an RFC 3339 time nor a duration", errUsage, *since)
		}
		from = time.Now().Add(-d)
	}
	body, _ := json.Marshal(map[string]any{"rule": *rule, "since": from.UTC()})
	b, err := adminPost(ctx, cfg.AdminAddr(), "/rules/replay", *token, body)
	if err != nil {
		return err
	}
	var res struct {
		Since   time.Time `json:"since"`
		Clamped bool      `json:"since_clamped_to_7_days"`
		Read    int       `json:"read"`
		Matched int       `json:"forwarded"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("replay: unexpected answer %s", b)
	}
	note := ""
	if res.Clamped {
		note = " (moved up to 7 days ago: Meta refuses older events)"
	}
	fmt.Fprintf(stdout, "replayed to %s since %s%s: %d completions read, %d queued for forwarding\n",
		*rule, res.Since.Format(time.RFC3339), note, res.Read, res.Matched)
	return nil
}

// adminPost sends body to the running tally's admin listener and returns
// the answer of a 200, or the error it gives.
func adminPost(ctx context.Context, addr, path, token string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	url := "http://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach tally's admin listener at %s (is tally serve running with this config?): %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return b, nil
}
