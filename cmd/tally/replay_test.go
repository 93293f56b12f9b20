package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/store"
)

// TestReplay forwards a rule's stored history on request: an API
// completion from before the rule existed reaches Meta; one older than 7
// days does not, nor a browser completion (its row does not keep ads
// consent).
func TestReplay(t *testing.T) {
	graph := capitestServer(t)
	yaml := leadsYAML(graph.URL(), "ops", "ops-token-0123456789", "replay")
	ts := startTestServer(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	now := time.Now().UTC().Truncate(time.Second)
	row := func(id string, src ingest.Source, age time.Duration) ingest.Completion {
		return ingest.Completion{EventID: id, EventName: "form_submitted", Site: "shop", Source: src,
			OccurredAt: now.Add(-age), ReceivedAt: now.Add(-age), Identity: ingest.Identity{Email: "ada@example.com"},
			Page: ingest.Page{URL: "https://shop.example.com/c"}, Client: ingest.Client{UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
			Props: []ingest.Prop{{Name: "form_id", Value: "contact"}}}
	}
	var b store.EventBatch
	b.Encode([]ingest.Completion{row("old-api", ingest.SourceAPI, 48*time.Hour), row("ancient-api", ingest.SourceAPI, 10*24*time.Hour),
		row("old-browser", ingest.SourceBrowser, 24*time.Hour)})
	if err := store.NewInserter(ts.conn, ts.db).InsertEvents(context.Background(), &b); err != nil {
		t.Fatal(err)
	}

	post := func(token, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", "http://"+ts.AdminAddr()+"/rules/replay", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, _ := post(testAPIToken, `{"rule":"leads","since":"2026-01-01T00:00:00Z"}`); code != 401 {
		t.Errorf("replay with a send-only token: %d; want 401", code)
	}
	if code, _ := post("ops-token-0123456789", `{"rule":"nope","since":"2026-01-01T00:00:00Z"}`); code != 400 {
		t.Errorf("replay of an unknown rule: %d; want 400", code)
	}
	code, got := post("ops-token-0123456789", `{"rule":"leads","since":"`+now.Add(-30*24*time.Hour).Format(time.RFC3339)+`"}`)
	if code != 200 || got["read"] != float64(2) || got["forwarded"] != float64(1) || got["since_clamped_to_7_days"] != true {
		t.Fatalf("replay = %d %v; want 2 read (the 10-day-old one is before the 7 days), 1 forwarded (not the browser one), clamped", code, got)
	}
	eventually(t, "the replayed Lead at the stand-in", func() (bool, string) {
		for _, ev := range graph.Received() {
			if ev.EventID == "old-api" {
				return true, ""
			}
		}
		return false, "not yet"
	})
	for _, ev := range graph.Received() {
		if ev.EventID != "old-api" {
			t.Errorf("forwarded %s; only old-api should be", ev.EventID)
		}
	}

	// The command line asks the running tally the same way.
	cfgPath := filepath.Join(t.TempDir(), "tally.yaml")
	if err := os.WriteFile(cfgPath, []byte("admin_listen: \""+ts.AdminAddr()+"\"\n"+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"replay", "-config", cfgPath, "-rule", "leads", "-since", "72h", "-token", "ops-token-0123456789"}, &out, &errOut); code != 0 {
		t.Fatalf("tally replay exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "2 completions read, 1 queued for forwarding") {
		t.Errorf("tally replay printed %q", out.String())
	}
}
