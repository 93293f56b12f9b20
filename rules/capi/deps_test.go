package capi_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImports holds capi to its doc.go: it speaks to Meta and its spool,
// and knows nothing of rules, ingest, ClickHouse, the snippet or fiber.
// capitest is test support and must stay out of production code.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go tool not on PATH")
		}
		t.Skip("go tool not on PATH")
	}
	const mod = "github.com/tally-analytics/tally/"
	tests := []struct {
		pkg     string
		allowed []string // the only tally packages it may reach
	}{
		{mod + "rules/capi", []string{mod + "store/spool"}},
		{mod + "rules/capi/capitest", []string{mod + "rules/capi", mod + "store/spool"}},
	}
	for _, tt := range tests {
		out, err := exec.Command(goTool, "list", "-deps", tt.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tt.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == tt.pkg {
				continue
			}
			if strings.HasPrefix(dep, "github.com/gofiber/") || strings.HasPrefix(dep, "github.com/ClickHouse/") {
				t.Errorf("%s imports %s", tt.pkg, dep)
			}
			if strings.HasPrefix(dep, mod) && !contains(tt.allowed, dep) {
				t.Errorf("%s imports %s", tt.pkg, dep)
			}
			if dep == mod+"rules/capi/capitest" {
				t.Errorf("%s imports the test stand-in", tt.pkg)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
