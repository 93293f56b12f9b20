package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-analytics/tally/rules/deliver"
)

// TestImportCommand runs tally import against a running tally: good rows
// are stored with source import and normalised emails, bad ones are
// reported by line, a second run adds nothing, and a rule matching the
// event forwards the live completion but none of the imported ones.
func TestImportCommand(t *testing.T) {
	graph := capitestServer(t)
	yaml := serveYAML + `destinations:
  - {name: meta, type: meta_capi, pixel_id: "1234567890", access_token: ` + graphToken + `, graph_url: ` + graph.URL() + `}
rules:
  - name: car_views
    when: {event: viewed_car}
    forward: {to: meta, event_name: ViewContent, share: [email, user_agent]}
`
	ts := startTestServer(t, yaml, serverOptions{Forwarder: deliver.Config{Linger: 10 * time.Millisecond}})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tally.yaml")
	if err := os.WriteFile(cfgPath, []byte("listen: \""+ts.Addr()+"\"\n"+yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(dir, "history.csv")
	yesterday := time.Now().Add(-24 * time.Hour).UTC()
	file := "Email,Occurred At,Make,Year\n" +
		"Ada.Lovelace@Example.com," + yesterday.Format(time.RFC3339) + ",volvo,2020\n" +
		"bob@example.com," + fmt.Sprint(yesterday.UnixMilli()) + ",saab,\n" +
		"\n" +
		"carl@example.com,2026-01-02T10:00:00Z,saab,1999\n" +
		"dora@example.com,2099-01-01T00:00:00Z,saab,2020\n"
	if err := os.WriteFile(csvPath, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	importRun := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"import", "-config", cfgPath, "-event", "viewed_car"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := importRun(csvPath)
	if code != 1 || !strings.Contains(out, "imported   3 ") || !strings.Contains(out, "rejected   1: FUTURE_TIME 1") ||
		!strings.Contains(errOut, csvPath+":6: occurred_at: occurred_at 2099-01-01T00:00:00Z is in the future (FUTURE_TIME)") {
		t.Fatalf("tally import = %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	t.Logf("tally import %s:\n%s%s", csvPath, out, errOut)

	// A live completion of the same event, which the rule forwards.
	if c, body := ts.post(t, "/events/v3/send", `{"eventName":"viewed_car","email":"live@example.com","properties":{"hs_page_url":"https://shop.example.com/1","hs_user_agent":"Mozilla/5.0"}}`); c != 204 {
		t.Fatalf("send: %d %s", c, body)
	}
	eventually(t, "imported rows stored", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.events WHERE source = 'import' AND email IN ('ada.lovelace@example.com', 'bob@example.com', 'carl@example.com')")
		return n == 3, fmt.Sprint(n, " rows")
	})
	eventually(t, "the live completion forwarded", func() (bool, string) {
		n := len(graph.Received())
		return n >= 1, fmt.Sprint(n, " forwards")
	})

	// The same file again, this time from stdin: every row a duplicate.
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdin := os.Stdin
	os.Stdin = f
	code, out, errOut = importRun("-")
	os.Stdin = stdin
	if code != 1 || !strings.Contains(out, "imported   0 ") || !strings.Contains(out, "duplicates 3 ") {
		t.Errorf("second import = %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	time.Sleep(300 * time.Millisecond) // the rules engine reads the log every 200 ms
	if n := ts.count(t, "SELECT count() FROM DB.events WHERE source = 'import'"); n != 3 {
		t.Errorf("%d imported rows after the second run; want 3", n)
	}
	if got := graph.Received(); len(got) != 1 {
		t.Errorf("%d forwards; want only the live completion's", len(got))
	}
	if n := ts.count(t, "SELECT count() FROM DB.deliveries WHERE event_id IN (SELECT event_id FROM DB.events WHERE source = 'import')"); n != 0 {
		t.Errorf("%d delivery rows for imported completions; want 0", n)
	}
	code, _, errOut = importRun("-url", "http://127.0.0.1:1", csvPath)
	if code != 1 || !strings.Contains(errOut, "is tally serve running?") {
		t.Errorf("import with tally down = %d: %s", code, errOut)
	}
}

// TestImportPartsInFlight imports a file of several parts, which the
// client sends importParallel at a time: the rejected rows are reported
// in line order, each row is counted once, and every good row is stored
// once.
func TestImportPartsInFlight(t *testing.T) {
	ts := startTestServer(t, serveYAML, serverOptions{})
	rows := 4*importChunkRows + 7
	var file strings.Builder
	file.WriteString("email,occurred_at,make\n")
	t0 := time.Now().Add(-48 * time.Hour).UnixMilli()
	var bad []int // lines
	for i := range rows {
		at := fmt.Sprint(t0 + int64(i))
		if i%3001 == 7 {
			at = "2099-01-01T00:00:00Z"
			bad = append(bad, i+2)
		}
		fmt.Fprintf(&file, "p%d@example.com,%s,volvo\n", i, at)
	}
	var log bytes.Buffer
	opt := importOptions{Event: "viewed_car", URL: ts.url, Token: testAPIToken, Name: "parts.csv", Log: &log}
	sum, err := runImport(context.Background(), opt, strings.NewReader(file.String()))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Imported != rows-len(bad) || sum.Rejected != len(bad) || sum.Duplicates != 0 {
		t.Fatalf("summary %+v; want %d imported, %d rejected", sum, rows-len(bad), len(bad))
	}
	var lines []int
	for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var n int
		if _, err := fmt.Sscanf(l, "parts.csv:%d:", &n); err != nil {
			t.Fatalf("report line %q: %v", l, err)
		}
		lines = append(lines, n)
	}
	if fmt.Sprint(lines) != fmt.Sprint(bad) {
		t.Errorf("rejected rows reported at lines %v; want %v, in that order", lines, bad)
	}
	eventually(t, "imported rows stored", func() (bool, string) {
		n := ts.count(t, "SELECT count() FROM DB.events WHERE source = 'import'")
		return n == uint64(sum.Imported), fmt.Sprint(n, " rows")
	})
	if n := ts.count(t, "SELECT count() FROM (SELECT event_id FROM DB.events WHERE source = 'import' GROUP BY event_id HAVING count() > 1)"); n != 0 {
		t.Errorf("%d event ids stored more than once", n)
	}
	again, err := runImport(context.Background(), opt, strings.NewReader(file.String()))
	if err != nil || again.Imported != 0 || again.Duplicates != sum.Imported {
		t.Errorf("second run: %+v, %v; want %d duplicates", again, err, sum.Imported)
	}
}
