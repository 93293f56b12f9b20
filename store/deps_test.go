package store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports holds the packages to what their doc.go allows.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	const mod = "github.com/tally-analytics/tally/"
	tests := []struct {
		pkg       string
		forbidden []string // prefixes, matched against every transitive import
		allowed   []string // tally packages allowed (all others forbidden when set)
	}{
		{pkg: mod + "store", forbidden: []string{mod + "rules", mod + "snippet", mod + "cmd"}},
		{pkg: mod + "store/chserver", allowed: []string{}},
		{pkg: mod + "store/chtest", allowed: []string{mod + "store/chserver"}},
	}
	for _, tt := range tests {
		out, err := exec.Command(goTool, "list", "-deps", tt.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tt.pkg, err)
		}
		// fiber reaches store through ingest (which hosts the collector), so
		// for fiber only store's own imports are checked.
		direct, err := exec.Command(goTool, "list", "-f", `{{join .Imports " "}}`, tt.pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", tt.pkg, err)
		}
		for _, dep := range strings.Fields(string(direct)) {
			if strings.HasPrefix(dep, "github.com/gofiber/") {
				t.Errorf("%s imports %s", tt.pkg, dep)
			}
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == tt.pkg {
				continue
			}
			for _, f := range tt.forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s imports %s", tt.pkg, dep)
				}
			}
			if tt.allowed != nil && strings.HasPrefix(dep, mod) {
				ok := false
				for _, a := range tt.allowed {
					ok = ok || dep == a
				}
				if !ok {
					t.Errorf("%s imports %s; it may import only %v of tally", tt.pkg, dep, tt.allowed)
				}
			}
		}
	}
}
