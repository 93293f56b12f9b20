package store

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sampleDefinition has one property of every type and one whose name is an
// events column.
func sampleDefinition() ingest.Definition {
	return ingest.Definition{
		Name:  "viewed_car",
		Label: "Viewed car",
		Properties: []ingest.Property{
			{Name: "make", Type: ingest.TypeString},
			{Name: "year", Type: ingest.TypeNumber},
			{Name: "condition", Type: ingest.TypeEnumeration, Options: []string{"new", "used"}},
			{Name: "delivered_at", Type: ingest.TypeDatetime},
			{Name: "first_registered", Type: ingest.TypeDate},
			{Name: "financing", Type: ingest.TypeBool},
			{Name: "url", Type: ingest.TypeString},
		},
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./store -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the generated text; review and run with -update if intended.\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestSchemaDDLGolden(t *testing.T) {
	golden(t, "schema.sql", strings.Join(SchemaDDL("tally"), ";\n\n")+";\n")
}

func TestSchemaDDLClusterGolden(t *testing.T) {
	golden(t, "schema_cluster.sql", strings.Join(SchemaDDLOn("tally", "tally_cluster"), ";\n\n")+";\n")
}

func TestForClusterStatements(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		got := forCluster(in, "c")
		if strings.Join(got, "\n--\n") != strings.Join(want, "\n--\n") {
			t.Errorf("forCluster(%q) =\n%s\nwant\n%s", in, strings.Join(got, "\n--\n"), strings.Join(want, "\n--\n"))
		}
	}
	f("ALTER TABLE `tally`.deliveries ADD COLUMN payload String",
		"ALTER TABLE `tally`.deliveries_local ON CLUSTER `c` ADD COLUMN payload String",
		"DROP TABLE IF EXISTS `tally`.deliveries ON CLUSTER `c`",
		"CREATE TABLE IF NOT EXISTS `tally`.deliveries ON CLUSTER `c` AS `tally`.deliveries_local\nENGINE = Distributed(`c`, tally, deliveries_local, cityHash64(event_id))")
	f("ALTER TABLE `tally`.typed_views ADD COLUMN x String", "ALTER TABLE `tally`.typed_views ON CLUSTER `c` ADD COLUMN x String")
	f("CREATE VIEW `tally`.`event_a` AS\nSELECT 1", "CREATE VIEW `tally`.`event_a` ON CLUSTER `c` AS\nSELECT 1")
	f("DROP TABLE IF EXISTS `tally`.`event_a`", "DROP TABLE IF EXISTS `tally`.`event_a` ON CLUSTER `c`")
	f("RENAME TABLE `tally`.`a` TO `tally`.`b`", "RENAME TABLE `tally`.`a` TO `tally`.`b` ON CLUSTER `c`")
	f("SELECT 1", "SELECT 1")
}

func TestViewDDLGolden(t *testing.T) {
	golden(t, "view_viewed_car.sql", ViewDDL("tally", sampleDefinition())+";\n")
}

func TestPropertyColumns(t *testing.T) {
	tests := []struct {
		props []string
		want  string
	}{
		{[]string{"make", "year"}, "make year"},
		{[]string{"url", "site"}, "prop_url prop_site"},
		{[]string{"url", "prop_url"}, "prop_prop_url prop_url"},
		{[]string{"prop_keys"}, "prop_prop_keys"},
	}
	for _, tt := range tests {
		var def ingest.Definition
		for _, p := range tt.props {
			def.Properties = append(def.Properties, ingest.Property{Name: p, Type: ingest.TypeString})
		}
		if got := strings.Join(PropertyColumns(def), " "); got != tt.want {
			t.Errorf("PropertyColumns(%v) = %s; want %s", tt.props, got, tt.want)
		}
	}
}

func TestCheckDatabaseName(t *testing.T) {
	for name, ok := range map[string]bool{"tally": true, "Tally_2": true, "_x": true, "": false, "2x": false, "a-b": false, "a`b": false, strings.Repeat("a", 64): false} {
		if err := CheckDatabaseName(name); (err == nil) != ok {
			t.Errorf("CheckDatabaseName(%q) = %v; want ok=%v", name, err, ok)
		}
	}
}
