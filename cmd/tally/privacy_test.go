package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/rules/capi/capitest"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/store"
)

// TestErasePerson erases a person who has browser (identified and
// anonymous), API, imported and forwarded completions, and a rejection
// naming them, and then finds nothing of them in ClickHouse or the outbox,
// while another person's data stays; the erasure itself is audited by hash.
func TestErasePerson(t *testing.T) {
	graph := capitestServer(t)
	graph.FailNext(100, capitest.Fail5xx) // the Lead waits in the outbox for its retries
	yaml := leadsYAML(graph.URL(), "dpo", "dpo-token-0123456789", "erase")
	ts := startTestServer(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	const visitor = "11111111-2222-4333-8444-555555555555"
	ua := "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"

	// Browser: one completion identified, one anonymous, same visitor.
	req, _ := http.NewRequest("POST", ts.url+"/e", strings.NewReader(`{"site":"shop","events":[
		{"id":"b-1","name":"viewed_car","url":"https://shop.example.com/a","traits":{"email":"ada@example.com"}},
		{"id":"b-2","name":"viewed_car","url":"https://shop.example.com/b","debug":true}]}`))
	req.Header.Set("Origin", "https://shop.example.com")
	req.Header.Set("Cookie", "_tally_id="+visitor)
	req.Header.Set("User-Agent", ua)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("browser batch: %v %v", resp, err)
	}
	// API: a forwarded form and a rejected input naming her; another person.
	for _, body := range []string{
		`{"eventName":"form_submitted","email":"Ada@Example.com","uuid":"api-1","properties":{"form_id":"contact","hs_page_url":"https://shop.example.com/c","hs_user_agent":"` + ua + `"}}`,
		`{"eventName":"viewed_car","email":"bob@example.com","uuid":"bob-1"}`,
	} {
		if code, b := ts.post(t, "/events/v3/send", body); code != 204 {
			t.Fatalf("send: %d %s", code, b)
		}
	}
	if code, _ := ts.post(t, "/events/v3/send", `{"eventName":"viewed_car","email":"ada@example.com","properties":{"colour":"red"}}`); code != 400 {
		t.Fatalf("bad input: %d; want 400", code)
	}
	// Import: through the same pipeline, as tally import does.
	now := time.Now().UTC()
	if err := ts.pipeline.Accept(context.Background(), []ingest.Completion{{EventID: "imp-1", EventName: "viewed_car", Source: ingest.SourceImport,
		OccurredAt: now.Add(-time.Hour), ReceivedAt: now, Identity: ingest.Identity{Email: "ada@example.com"}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "her completions stored, her forward attempted", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.events WHERE lower(email) = 'ada@example.com' OR visitor_id = '"+visitor+"'")
		d := ts.count(t, "SELECT count() FROM DB.deliveries WHERE event_id = 'api-1'")
		r := ts.count(t, "SELECT count() FROM DB.rejections WHERE positionCaseInsensitive(payload, 'ada@example.com') > 0")
		return n == 4 && d >= 1 && r == 1, "events, deliveries, rejections: " + strconv.FormatUint(n, 10) + ", " + strconv.FormatUint(d, 10) + ", " + strconv.FormatUint(r, 10)
	})

	erase := func(token, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", "http://"+ts.AdminAddr()+"/privacy/erase", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	if code, _ := erase(testAPIToken, `{"email":"ada@example.com"}`); code != 401 {
		t.Errorf("erase with a send-only token: %d; want 401", code)
	}
	// Her anonymous debug completion is kept for the console's next watcher.
	kept := func() int {
		frames, stop := ts.live.Subscribe()
		defer stop()
		return len(frames)
	}
	if n := kept(); n != 1 {
		t.Errorf("the console keeps %d debug completions before the erasure; want her 1", n)
	}
	code, got := erase("dpo-token-0123456789", `{"email":" ADA@example.com "}`)
	if code != 200 {
		t.Fatalf("erase: %d %v", code, got)
	}
	if n := kept(); n != 0 {
		t.Errorf("the console keeps %d debug completions after the erasure; want none", n)
	}
	t.Logf("erase removed: %v", got)
	for k, min := range map[string]float64{"events": 4, "rejections": 1, "deliveries": 1, "outbox": 1} {
		if v, _ := got[k].(float64); v < min {
			t.Errorf("erase reported %s = %v; want at least %v", k, got[k], min)
		}
	}

	for q, want := range map[string]uint64{
		"SELECT count() FROM DB.events WHERE lower(email) = 'ada@example.com' OR visitor_id = '" + visitor + "' OR event_id IN ('b-1', 'b-2', 'api-1', 'imp-1')": 0,
		"SELECT count() FROM DB.deliveries WHERE event_id = 'api-1'":                                                                   0,
		"SELECT count() FROM DB.rejections WHERE positionCaseInsensitive(payload, 'ada@example.com') > 0":                              0,
		"SELECT count() FROM DB.events WHERE email = 'bob@example.com'":                                                                1,
		"SELECT count() FROM DB.erasures WHERE subject_sha256 = '" + store.Person{Emails: []string{"ada@example.com"}}.Subject() + "'": 1,
	} {
		if n := ts.count(t, q); n != want {
			t.Errorf("%s = %d; want %d", q, n, want)
		}
	}
	if n, err := ts.forwarder.Erase(map[string]bool{"api-1": true}); err != nil || n != 0 {
		t.Errorf("outbox still holds %d of her forwards (%v)", n, err)
	}

	// The command line asks the running tally the same way.
	cfgPath := filepath.Join(t.TempDir(), "tally.yaml")
	if err := os.WriteFile(cfgPath, []byte("admin_listen: \""+ts.AdminAddr()+"\"\n"+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"erase", "-config", cfgPath, "-email", "bob@example.com", "-token", "dpo-token-0123456789"}, &out, &errOut); code != 0 {
		t.Fatalf("tally erase exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "events      1") {
		t.Errorf("tally erase printed %q; want events 1", out.String())
	}
	if n := ts.count(t, "SELECT count() FROM DB.events WHERE email = 'bob@example.com'"); n != 0 {
		t.Errorf("bob's rows after tally erase: %d", n)
	}
}
