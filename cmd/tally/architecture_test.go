package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/tally-analytics/tally"

// layering is what each package's doc.go says it must not import (by import
// path prefix). Test-support packages are listed in testOnly.
var layering = map[string][]string{
	mod + "/ingest":                    {mod + "/store", mod + "/rules", mod + "/snippet", mod + "/ingest/enrich"},
	mod + "/ingest/enrich":             {"github.com/gofiber/", mod + "/store", mod + "/rules", mod + "/snippet"},
	mod + "/snippet":                   {"github.com/gofiber/", mod + "/store", mod + "/rules"},
	mod + "/store":                     {"github.com/gofiber/", mod + "/rules", mod + "/snippet", mod + "/ingest/enrich"},
	mod + "/store/chserver":            {"github.com/gofiber/", mod + "/ingest", mod + "/rules", mod + "/snippet"},
	mod + "/store/spool":               {"github.com/gofiber/", "github.com/ClickHouse/", mod + "/"},
	mod + "/store/wal":                 {"github.com/gofiber/", "github.com/ClickHouse/", mod + "/"},
	mod + "/store/backoff":             {mod + "/"},
	mod + "/rules":                     {"github.com/gofiber/", "github.com/ClickHouse/", mod + "/store", mod + "/snippet"},
	mod + "/rules/capi":                {"github.com/gofiber/", "github.com/ClickHouse/", mod + "/ingest", mod + "/rules/capi/capitest", mod + "/snippet", mod + "/store/chserver"},
	mod + "/rules/deliver":             {"github.com/gofiber/", mod + "/ingest", mod + "/rules/capi", mod + "/snippet"},
	mod + "/rules/salesforce":          {"github.com/gofiber/", "github.com/ClickHouse/", mod + "/rules/capi", mod + "/rules/salesforce/sftest", mod + "/snippet", mod + "/store/chserver"},
	mod + "/rules/deliver/delivertest": {"github.com/gofiber/", mod + "/ingest", mod + "/rules/capi"},
	mod + "/rules/salesforce/sftest":   {"github.com/gofiber/", mod + "/ingest", mod + "/store"},
	mod + "/rules/webhook":             {"github.com/gofiber/", "github.com/ClickHouse/", mod + "/rules/capi", mod + "/snippet", mod + "/store/chserver"},
	mod + "/rules/capi/capitest":       {"github.com/gofiber/", mod + "/ingest", mod + "/store"},
	mod + "/cmd/tally/config":          {"github.com/gofiber/", "github.com/ClickHouse/"},
	mod + "/snippet/chromiumtest":      {mod + "/"},
	mod + "/console":                   {"github.com/gofiber/", "github.com/ClickHouse/", mod + "/snippet", mod + "/ingest/enrich", mod + "/cmd/"},
}

// testOnly packages support tests and must never reach production code.
var testOnly = []string{mod + "/store/chtest", mod + "/rules/capi/capitest", mod + "/rules/salesforce/sftest", mod + "/rules/deliver/delivertest", mod + "/snippet/chromiumtest"}

// TestArchitecture holds every package to its doc.go: the layering above,
// fiber only in ingest, and test support only in tests.
func TestArchitecture(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not on PATH: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-json", mod+"/...")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen[p.ImportPath] = true
		isTestSupport := slices.Contains(testOnly, p.ImportPath)
		for _, imp := range p.Imports {
			for _, bad := range layering[p.ImportPath] {
				if strings.HasPrefix(imp, bad) && imp != p.ImportPath {
					t.Errorf("%s imports %s, which its doc.go rules out", p.ImportPath, imp)
				}
			}
			// tally-load runs a no-op fiber handler as the baseline it
			// measures tally against.
			if strings.HasPrefix(imp, "github.com/gofiber/") && p.ImportPath != mod+"/ingest" && p.ImportPath != mod+"/cmd/tally-load" {
				t.Errorf("%s imports %s; only ingest speaks HTTP through fiber", p.ImportPath, imp)
			}
			if slices.Contains(testOnly, imp) && !isTestSupport {
				t.Errorf("%s imports test support %s", p.ImportPath, imp)
			}
		}
	}
	for pkg := range layering {
		if !seen[pkg] {
			t.Errorf("layering names %s, which go list did not find", pkg)
		}
	}
}
