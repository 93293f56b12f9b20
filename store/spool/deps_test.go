package spool

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImports holds the spool to its doc.go: a generic queue that imports
// no other tally package (so ingest and rules can both build on it).
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go tool not on PATH")
		}
		t.Skip("go tool not on PATH")
	}
	const pkg = "github.com/tally-analytics/tally/store/spool"
	out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != pkg && strings.HasPrefix(dep, "github.com/tally-analytics/tally/") {
			t.Errorf("%s imports %s", pkg, dep)
		}
	}
}
