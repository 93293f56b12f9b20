package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/rules-test.golden")

// tally rules test prints each rule's verdict and the exact request. The
// completion's time is an hour ago (Meta refuses events older than 7
// days), written as EVENT_TIME in the golden file.
func TestRulesTestCommand(t *testing.T) {
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	raw, err := os.ReadFile("testdata/rules-test-completion.json")
	if err != nil {
		t.Fatal(err)
	}
	completion := filepath.Join(t.TempDir(), "completion.json")
	if err := os.WriteFile(completion, bytes.ReplaceAll(raw, []byte("OCCURRED_AT"), []byte(at.UTC().Format(time.RFC3339))), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"rules", "test", "-config", "testdata/rules-test.yaml", completion}, &stdout, &stderr); code != 0 {
		t.Fatalf("tally rules test = %d: %s", code, stderr.String())
	}
	got := strings.NewReplacer(strconv.FormatInt(at.Unix(), 10), "EVENT_TIME", at.UTC().Format(time.RFC3339), "OCCURRED_AT",
		at.AddDate(0, 0, 365).UTC().Format(time.RFC3339), "OCCURRED_AT+365d", at.UTC().Format(time.DateOnly), "OCCURRED_DATE").Replace(stdout.String())
	const path = "testdata/rules-test.golden"
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil || got != string(want) {
		t.Errorf("tally rules test printed\n%s\nwant (%s, %v)\n%s", got, path, err, want)
	}
}
