package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tally-analytics/tally/cmd/tally/config"
	"github.com/tally-analytics/tally/rules/capi"
	"github.com/tally-analytics/tally/rules/deliver"
	"github.com/tally-analytics/tally/store/chtest"
)

const reloadBase = `
sites: [{id: shop, domains: [shop.example.com]}]
api_tokens: [{name: crm, token: ` + testAPIToken + `}]
destinations:
  - {name: meta_shop, type: meta_capi, pixel_id: "123", access_token: secret, graph_url: "http://127.0.0.1:9"}
events:
  - name: form_submitted
    properties: [{name: form_id, type: string}]
`

const reloadRules = `rules:
  - name: lead
    when: {event: form_submitted}
    forward: {to: meta_shop, event_name: Lead, share: [user_agent], mirror_in_browser: true}
`

// A reload applies new definitions, rules, destinations and scripts; a
// config with problems changes nothing.
func TestReloadAppliesOrKeeps(t *testing.T) {
	dsn := chtest.DSN(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tally.yaml")
	head := "clickhouse: {dsn: \"" + dsn + "\", database: " + chtest.Database(t, dsn) + "}\ndata_dir: " + filepath.Join(dir, "var") + "\n"
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(head+text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadBase + reloadRules)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(context.Background(), cfg, serverOptions{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", FlushAge: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	ts := &testServer{server: srv, url: "http://" + srv.Addr()}
	script := func() string {
		resp, err := http.Get(ts.url + "/t.js?site=shop")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	leadAt, _ := srv.engine.EnabledAt("lead")
	send := `{"eventName":"demo_booked","email":"a@example.com","properties":{"slot":"monday"}}`
	if code, _ := ts.post(t, "/events/v3/send", send); code != 400 {
		t.Fatalf("demo_booked before the reload = %d; want 400 (not defined yet)", code)
	}

	write(reloadBase + `  - name: demo_booked
    properties: [{name: slot, type: string}]
` + reloadRules + `  - name: demo
    when: {event: demo_booked}
    forward: {to: meta_shop, event_name: Schedule, share: [user_agent], mirror_in_browser: true}
`)
	if err := srv.reload(context.Background(), path); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if code, body := ts.post(t, "/events/v3/send", send); code != 204 {
		t.Errorf("demo_booked after the reload = %d %s; want 204", code, body)
	}
	if at, ok := srv.engine.EnabledAt("lead"); !ok || !at.Equal(leadAt) {
		t.Errorf("lead enabled at %v, %v after the reload; want unchanged %v", at, ok, leadAt)
	}
	if _, ok := srv.engine.EnabledAt("demo"); !ok {
		t.Error("rule demo is not in force after the reload")
	}
	if s := script(); !strings.Contains(s, `"Schedule"`) {
		t.Error("the site's script does not mirror the new rule after the reload")
	}

	write(reloadBase + reloadRules + `  - name: broken
    when: {event: nope}
    forward: {to: meta_shop, event_name: Lead, share: [user_agent]}
`)
	err = srv.reload(context.Background(), path)
	var ps config.Problems
	if !errors.As(err, &ps) || len(ps) != 1 || !strings.HasSuffix(ps[0].String(), `tally.yaml:16:19: event "nope" is not defined under events`) {
		t.Errorf("reload(bad) = %v; want the one problem with its place", err)
	}
	if _, ok := srv.engine.EnabledAt("demo"); !ok {
		t.Error("a refused reload dropped the rules in force")
	}

	// A destination replaced by another: the new one gets its outbox at
	// once, the old one's is closed (and kept on disk).
	write(strings.Replace(reloadBase, `name: meta_shop`, `name: meta_other`, 1) + strings.ReplaceAll(reloadRules, "to: meta_shop", "to: meta_other"))
	if err := srv.reload(context.Background(), path); err != nil {
		t.Fatalf("reload(another destination) = %v; want it applied", err)
	}
	if _, ok := srv.engine.EnabledAt("lead"); !ok {
		t.Error("rule lead, now forwarding to meta_other, is not in force after the reload")
	}
	ev := capi.Event{EventName: "Lead", EventID: "reload-1", EventTime: time.Now().Unix()}
	if err := srv.forwarder.Enqueue(context.Background(), "meta_other", deliver.Origin{Rule: "lead"}, capi.Item(ev)); err != nil {
		t.Errorf("enqueue to the added destination: %v", err)
	}
	if err := srv.forwarder.Enqueue(context.Background(), "meta_shop", deliver.Origin{Rule: "lead"}, capi.Item(ev)); err == nil {
		t.Error("enqueue to the removed destination succeeded")
	}
	if _, err := os.Stat(filepath.Join(srv.config().DataPath("outbox"), "meta_shop.spool")); err != nil {
		t.Errorf("the removed destination's outbox file is gone: %v", err)
	}
}

// A token Meta refuses pauses the destination with its events kept; a
// reload with a working token resumes it and delivers them.
func TestReloadRotatesToken(t *testing.T) {
	graph := capitestServer(t)
	dsn := chtest.DSN(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tally.yaml")
	head := "clickhouse: {dsn: \"" + dsn + "\", database: " + chtest.Database(t, dsn) + "}\ndata_dir: " + filepath.Join(dir, "var") + "\n"
	write := func(token string) {
		t.Helper()
		text := strings.Replace(strings.Replace(reloadBase, "secret", token, 1), "http://127.0.0.1:9", graph.URL(), 1)
		text = strings.Replace(text, `"123"`, `"1234567890"`, 1)
		if err := os.WriteFile(path, []byte(head+text+reloadRules), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("revoked-token")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(context.Background(), cfg, serverOptions{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", FlushAge: 20 * time.Millisecond,
		Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	ts := &testServer{server: srv, url: "http://" + srv.Addr(), conn: chtest.Open(t, dsn), db: cfg.ClickHouse.Database}
	code, body := ts.post(t, "/events/v3/send", `{"eventName":"form_submitted","email":"a@example.com","uuid":"before-rotation",
		"properties":{"form_id":"contact","hs_page_url":"https://shop.example.com/c","hs_user_agent":"Mozilla/5.0"}}`)
	if code != 204 {
		t.Fatalf("send: %d %s", code, body)
	}
	// Meta refuses the token (code 190): the destination pauses and keeps
	// the event; the operators' readiness and metrics say so; tally stays
	// ready.
	admin := "http://" + srv.AdminAddr()
	eventually(t, "the pause in the operators' readiness", func() (bool, string) {
		code, text := get(t, admin+"/readyz")
		return code == 200 && strings.Contains(text, "warning: destination meta_shop (meta_capi) paused since") &&
			strings.Contains(text, "code 190") && strings.Contains(text, "1 events wait in its outbox"), text
	})
	if _, metrics := get(t, admin+"/metrics"); !strings.Contains(metrics, `tally_destination_paused{destination="meta_shop"} 1`) {
		t.Errorf("metrics lack tally_destination_paused 1 for meta_shop")
	}
	eventually(t, "a paused row in deliveries", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.deliveries WHERE event_id = 'before-rotation' AND status = 'paused' AND attempts = 0")
		return n >= 1, fmt.Sprint(n)
	})
	if n := len(graph.Received()); n != 0 {
		t.Fatalf("Meta received %d events with a revoked token", n)
	}

	write(graphToken)
	if err := srv.reload(context.Background(), path); err != nil {
		t.Fatalf("reload: %v", err)
	}
	code, body = ts.post(t, "/events/v3/send", `{"eventName":"form_submitted","email":"a@example.com","uuid":"after-rotation",
		"properties":{"form_id":"contact","hs_page_url":"https://shop.example.com/c","hs_user_agent":"Mozilla/5.0"}}`)
	if code != 204 {
		t.Fatalf("send: %d %s", code, body)
	}
	eventually(t, "both events at Meta with the new token", func() (bool, string) {
		return len(graph.Received()) == 2, fmt.Sprint(len(graph.Received()), " events")
	})
	if _, text := get(t, admin+"/readyz"); text != "ready" {
		t.Errorf("operators' readiness after the reload = %q; want ready", text)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tally reload checks the config, then signals the pid serve wrote.
func TestReloadCommandSignals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tally.yaml")
	if err := os.WriteFile(path, []byte("data_dir: "+dir+"\n"+reloadBase+reloadRules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	remove, err := writePidFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	var out, errOut strings.Builder
	if code := run(context.Background(), []string{"reload", "-config", path}, &out, &errOut); code != 0 {
		t.Fatalf("tally reload = %d: %s", code, errOut.String())
	}
	select {
	case <-hup:
	case <-time.After(5 * time.Second):
		t.Fatal("no SIGHUP arrived")
	}

	// A config with problems is not sent to the running tally.
	if err := os.WriteFile(path, []byte("data_dir: "+dir+"\n"+reloadBase+reloadRules+"  - {name: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"reload", "-config", path}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "problem(s) in the config") {
		t.Errorf("tally reload(bad) = %d, %q; want 1 and the problems", code, errOut.String())
	}
	select {
	case <-hup:
		t.Error("a bad config was signalled to tally")
	case <-time.After(100 * time.Millisecond):
	}
}
