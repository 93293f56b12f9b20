package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestHubSpotOfficialClient drives the API with HubSpot's own Node client
// (@hubspot/api-client, basePath pointed at tally): its basic and batch send
// must succeed, and its thrown error must carry tally's envelope.
func TestHubSpotOfficialClient(t *testing.T) {
	node := requireHubSpotClient(t)
	h := newAPIHarness(t)
	h.c.now = time.Now
	out := runHubSpotClient(t, h.c, node, "send.mjs", "TALLY_TOKEN="+testToken)
	results := map[string]struct {
		OK   bool            `json:"ok"`
		Code int             `json:"code"`
		Body json.RawMessage `json:"body"`
	}{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r struct {
			Call string `json:"call"`
			OK   bool   `json:"ok"`
			Code int    `json:"code"`
			Body json.RawMessage
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		results[r.Call] = struct {
			OK   bool            `json:"ok"`
			Code int             `json:"code"`
			Body json.RawMessage `json:"body"`
		}{r.OK, r.Code, r.Body}
	}
	if r := results["basic"]; !r.OK {
		t.Errorf("basicApi.send failed: %d %s", r.Code, r.Body)
	}
	if r := results["batch"]; !r.OK {
		t.Errorf("batchApi.send failed: %d %s", r.Code, r.Body)
	}
	if len(h.sink.got) != 3 {
		t.Fatalf("stored %d completions; want 3", len(h.sink.got))
	}
	first := h.sink.got[0]
	if first.EventID != "11111111-2222-4333-8444-555555555555" || first.OccurredAt.UnixMilli() != time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC).UnixMilli() {
		t.Errorf("basic send stored id %q at %v", first.EventID, first.OccurredAt)
	}
	inv := results["invalid"]
	var env struct {
		Status, Category, CorrelationID string
		Errors                          []struct{ In, Code string }
	}
	if err := json.Unmarshal(inv.Body, &env); err != nil {
		t.Fatalf("invalid batch: client error body %s: %v", inv.Body, err)
	}
	if inv.OK || inv.Code != 400 || env.Category != "VALIDATION_ERROR" || env.CorrelationID == "" || len(env.Errors) != 2 {
		t.Fatalf("invalid batch: ok=%v code=%d envelope %+v; want a 400 whose envelope lists 2 errors", inv.OK, inv.Code, env)
	}
	if env.Errors[0].In != "inputs[0].properties.year" || env.Errors[1].In != "inputs[1].eventName" {
		t.Errorf("error paths = %q, %q", env.Errors[0].In, env.Errors[1].In)
	}
}

// hubspotClientDir holds HubSpot's Node client (npm ci) and the scripts
// that drive it.
var hubspotClientDir = filepath.Join("testdata", "hubspot-client")

// requireHubSpotClient returns the node binary once Node.js and the
// client's modules are there; without them the test fails under CI=true
// and is skipped otherwise.
func requireHubSpotClient(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(hubspotClientDir, "node_modules", "@hubspot", "api-client"))
	}
	if err != nil {
		msg := "HubSpot client not available (install Node.js and run: cd " + hubspotClientDir + " && npm ci): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// runHubSpotClient serves c on a loopback port and runs script with node,
// TALLY_URL pointing at it and env added, and returns what it printed.
func runHubSpotClient(t *testing.T, c *Collector, node, script string, env ...string) []byte {
	t.Helper()
	addr := serveOnLoopback(t, c.App())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = hubspotClientDir
	cmd.Env = append(append(os.Environ(), "TALLY_URL=http://"+addr), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, stderr.String())
	}
	return out
}
