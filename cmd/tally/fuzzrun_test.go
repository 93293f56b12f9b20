package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGo is a stand-in for the go command as make fuzz calls it: one
// package with one fuzz target, whose fuzzing runs answer, in turn, with
// the outcomes listed in $FAKE_OUTCOMES (ok, deadline or crash), counting
// the runs in $FAKE_RUNS; with $FAKE_LIST_FAIL set, its tests do not build.
const fakeGo = `#!/usr/bin/env bash
case "$1 $2" in
"list ./...") echo example.com/p; exit 0;;
"test -list") [ -n "$FAKE_LIST_FAIL" ] && { echo "p_test.go:3:1: syntax error"; exit 1; }; echo FuzzX; echo ok; exit 0;;
esac
n=$(( $(cat "$FAKE_RUNS" 2>/dev/null || echo 0) + 1 ))
echo $n > "$FAKE_RUNS"
set -- $FAKE_OUTCOMES
outcome=${!n:-ok}
case $outcome in
ok) echo "fuzz: elapsed: 1s, execs: 100 (100/sec), new interesting: 0 (total: 3)"; echo PASS; exit 0;;
deadline) printf -- '--- FAIL: FuzzX (20.03s)\n    context deadline exceeded\nFAIL\nexit status 1\n'; exit 1;;
crash) printf -- '--- FAIL: FuzzX (0.20s)\n    panic: index out of range\n    Failing input written to testdata/fuzz/FuzzX/0123abcd\nFAIL\n'; exit 1;;
esac
`

// make fuzz is red only for a crash: a run Go's fuzzer ended with
// "context deadline exceeded" is run once more; a second such run, or a
// crash, fails it; so does a package whose tests do not build (it would
// otherwise list no targets and pass).
func TestMakeFuzzRetriesDeadlineOnce(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is not installed: %v", err)
	}
	dir := t.TempDir()
	goBin := filepath.Join(dir, "go")
	if err := os.WriteFile(goBin, []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		outcomes string
		wantOK   bool
		wantRuns string
		noBuild  bool
	}{
		{"ok", true, "1", false},
		{"ok", false, "", true},
		{"deadline ok", true, "2", false},
		{"deadline deadline", false, "2", false},
		{"crash", false, "1", false},
		{"deadline crash", false, "2", false},
	} {
		runs := filepath.Join(dir, fmt.Sprintf("runs-%s-%v", strings.ReplaceAll(tt.outcomes, " ", "-"), tt.noBuild))
		cmd := exec.Command("make", "--no-print-directory", "-C", "../..", "fuzz", "GO="+goBin, "FUZZTIME=1s")
		cmd.Env = append(os.Environ(), "FAKE_OUTCOMES="+tt.outcomes, "FAKE_RUNS="+runs)
		if tt.noBuild {
			cmd.Env = append(cmd.Env, "FAKE_LIST_FAIL=1")
		}
		out, err := cmd.CombinedOutput()
		n, _ := os.ReadFile(runs)
		if (err == nil) != tt.wantOK || strings.TrimSpace(string(n)) != tt.wantRuns {
			t.Errorf("make fuzz with runs ending %q (tests build: %v): err %v after %q run(s); want ok=%v after %q\n%s",
				tt.outcomes, !tt.noBuild, err, strings.TrimSpace(string(n)), tt.wantOK, tt.wantRuns, out)
		}
	}
}
