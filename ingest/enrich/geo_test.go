package enrich

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// testCities are the networks of the test City database. Documentation
// ranges (RFC 5737, RFC 3849) keep them clear of real addresses.
var testCities = []struct {
	cidr                  string
	country, region, city string
}{
	{"198.51.100.0/24", "DE", "Bavaria", "Munich"},
	{"2001:db8:1::/48", "US", "Massachusetts", "Cambridge"},
	{"203.0.113.0/24", "FR", "", ""}, // a country-only record
}

func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en), "de": mmdbtype.String(en + " (de)")}
}

// writeTestDB writes a City database of the given type with testCities and
// returns its path.
func writeTestDB(t testing.TB, dbType string) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		IncludeReservedNetworks: true,
		RecordSize:              24,
		Languages:               []string{"en", "de"},
	})
	if err != nil {
		t.Fatalf("mmdbwriter.New: %v", err)
	}
	for _, c := range testCities {
		_, network, err := net.ParseCIDR(c.cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{
			"country": mmdbtype.Map{"iso_code": mmdbtype.String(c.country), "names": names("Country " + c.country)},
		}
		if c.region != "" {
			rec["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String("XX"), "names": names(c.region)}}
		}
		if c.city != "" {
			rec["city"] = mmdbtype.Map{"names": names(c.city)}
		}
		if err := w.Insert(network, rec); err != nil {
			t.Fatalf("insert %s: %v", c.cidr, err)
		}
	}
	path := filepath.Join(t.TempDir(), "city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatalf("write mmdb: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGeoLookup(t *testing.T) {
	g, err := openGeoDB(writeTestDB(t, "GeoLite2-City"))
	if err != nil {
		t.Fatalf("openGeoDB: %v", err)
	}
	defer g.close()
	tests := []struct {
		ip   string
		want place
	}{
		{"198.51.100.7", place{"DE", "Bavaria", "Munich"}},
		{"198.51.100.255", place{"DE", "Bavaria", "Munich"}},
		{"::ffff:198.51.100.7", place{"DE", "Bavaria", "Munich"}},
		{"2001:db8:1:ab::5", place{"US", "Massachusetts", "Cambridge"}},
		{"2001:db8:1::1%eth0", place{"US", "Massachusetts", "Cambridge"}},
		{"203.0.113.9", place{Country: "FR"}},
		{"192.0.2.1", place{}},     // not in the database
		{"2001:db8:2::1", place{}}, // not in the database
		{"10.1.2.3", place{}},      // private
		{"127.0.0.1", place{}},     // loopback
		{"not an ip", place{}},
		{"", place{}},
	}
	for _, tt := range tests {
		if got := g.lookup(tt.ip); got != tt.want {
			t.Errorf("lookup(%q) = %+v; want %+v", tt.ip, got, tt.want)
		}
	}
}

func TestOpenGeoDBErrors(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.mmdb")
	if err := os.WriteFile(corrupt, []byte(strings.Repeat("not a maxmind database ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.mmdb"), "no such file"},
		{"corrupt", corrupt, "invalid MaxMind DB"},
		{"ASN database", writeTestDB(t, "GeoLite2-ASN"), "is a GeoLite2-ASN database; a GeoLite2/GeoIP2 City database is needed"},
		{"unknown type", writeTestDB(t, "Acme-Places"), "Acme-Places"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := openGeoDB(tt.path)
			if err == nil {
				g.close()
				t.Fatalf("openGeoDB(%s) error = nil; want one containing %q", tt.name, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "geoip.city_db: ") {
				t.Errorf("openGeoDB(%s) error = %q; want it to start with geoip.city_db and contain %q", tt.name, err, tt.want)
			}
		})
	}
}
