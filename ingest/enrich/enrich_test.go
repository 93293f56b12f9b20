package enrich

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tally-analytics/tally/ingest"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestEnricher(t testing.TB, cfg Config) *Enricher {
	t.Helper()
	e, err := New(cfg, discard())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

const iPhoneUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"

func browserCompletion() ingest.Completion {
	return ingest.Completion{
		EventName: "viewed_car",
		Source:    ingest.SourceBrowser,
		Page: ingest.Page{
			URL:      "https://shop.example.com/cars/volvo?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=Cj0",
			Referrer: "https://www.google.com/",
			Title:    "Volvo XC60",
		},
		Client: ingest.Client{IP: "198.51.100.77", UserAgent: iPhoneUA},
	}
}

func TestEnrich(t *testing.T) {
	e := newTestEnricher(t, Config{GeoIP: GeoIPConfig{CityDB: writeTestDB(t, "GeoIP2-City")}, Privacy: PrivacyConfig{AnonymizeIP: true}})
	c := browserCompletion()
	client := c.Client
	e.Enrich(&c)
	want := ingest.Enrichment{
		Browser: "Safari", BrowserVersion: "18.1", OS: "iOS", OSVersion: "18.1", DeviceType: DeviceSmartphone,
		Country: "DE", Region: "Bavaria", City: "Munich",
		Path: "/cars/volvo", UTMSource: "google", UTMMedium: "cpc", UTMCampaign: "spring",
		ClickIDParam: "gclid", ClickID: "Cj0", TouchpointSource: TouchPaidSearch,
	}
	if c.Enrichment != want {
		t.Errorf("Enrich()\n got %+v\nwant %+v", c.Enrichment, want)
	}
	// The full IP stays for a pending forward; storage anonymises its copy.
	if c.Client != client {
		t.Errorf("Enrich changed Client to %+v; want %+v", c.Client, client)
	}
	if got, want := e.StorageIP(c.Client.IP), "198.51.100.0"; got != want {
		t.Errorf("StorageIP(%q) = %q; want %q", c.Client.IP, got, want)
	}
}

func TestEnrichWithoutGeoIP(t *testing.T) {
	var logs bytes.Buffer
	e, err := New(Config{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("New(no geoip) error: %v", err)
	}
	defer e.Close()
	if !strings.Contains(logs.String(), "geoip disabled") {
		t.Errorf("New(no geoip) logged %q; want a line saying geoip is disabled", logs.String())
	}
	c := browserCompletion()
	e.Enrich(&c)
	if c.Enrichment.Country != "" || c.Enrichment.Region != "" || c.Enrichment.City != "" {
		t.Errorf("Enrich without a database set a place: %+v", c.Enrichment)
	}
	if c.Enrichment.Browser != "Safari" || c.Enrichment.TouchpointSource != TouchPaidSearch {
		t.Errorf("Enrich without a database skipped the rest: %+v", c.Enrichment)
	}
	if got := e.StorageIP("198.51.100.77"); got != "198.51.100.77" {
		t.Errorf("StorageIP with anonymize_ip off = %q; want the address unchanged", got)
	}
}

func TestNewWithoutLogger(t *testing.T) {
	e, err := New(Config{}, nil)
	if err != nil {
		t.Fatalf("New(no logger) error: %v", err)
	}
	e.Close()
}

func TestNewGeoIPErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "GeoLite2-City.mmdb")
	_, err := New(Config{GeoIP: GeoIPConfig{CityDB: missing}}, discard())
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("New(missing database) error = %v; want one naming %s", err, missing)
	}
	errs := Config{GeoIP: GeoIPConfig{CityDB: missing}}.Check()
	if len(errs) != 1 || errs[0].Path != "geoip.city_db" {
		t.Errorf("Check(missing database) = %v; want one error at geoip.city_db", errs)
	}
	if errs := (Config{GeoIP: GeoIPConfig{CityDB: writeTestDB(t, "GeoLite2-City")}}).Check(); errs != nil {
		t.Errorf("Check(good database) = %v; want none", errs)
	}
}

// An API completion carries HubSpot's hs_* values; the ingest path has put
// them into Enrichment already, and they win.
func TestEnrichKeepsCallerValues(t *testing.T) {
	e := newTestEnricher(t, Config{GeoIP: GeoIPConfig{CityDB: writeTestDB(t, "GeoLite2-City")}})
	c := browserCompletion()
	c.Source = ingest.SourceAPI
	given := ingest.Enrichment{
		Browser: "CRM Browser", OS: "CRM OS", DeviceType: DeviceTablet, IsBot: true,
		City: "Cambridge",
		Path: "/given", UTMSource: "crm", UTMMedium: "email",
		ClickIDParam: "msclkid", ClickID: "given-id", TouchpointSource: TouchOtherCampaigns,
	}
	c.Enrichment = given
	e.Enrich(&c)
	want := given
	// Only the empty fields are filled; no geo, because the caller gave a
	// city and a place is never mixed from two sources.
	want.BrowserVersion, want.OSVersion = "18.1", "18.1"
	want.UTMCampaign = "spring"
	if c.Enrichment != want {
		t.Errorf("Enrich()\n got %+v\nwant %+v", c.Enrichment, want)
	}
}

func TestEnrichClassifiesWithCallerUTM(t *testing.T) {
	e := newTestEnricher(t, Config{})
	c := ingest.Completion{Source: ingest.SourceAPI, Page: ingest.Page{URL: "https://shop.example.com/"}}
	c.Enrichment.UTMMedium = "email"
	e.Enrich(&c)
	if got := c.Enrichment.TouchpointSource; got != TouchEmail {
		t.Errorf("touchpoint with caller utm_medium=email = %q; want %s", got, TouchEmail)
	}
}

func TestEnrichTouchpointWithoutContext(t *testing.T) {
	e := newTestEnricher(t, Config{})
	tests := []struct {
		source ingest.Source
		want   string
		bot    bool // only a browser always sends a user agent
	}{
		{ingest.SourceBrowser, TouchDirect, true},
		{ingest.SourceAPI, "", false},
		{ingest.SourceImport, "", false},
	}
	for _, tt := range tests {
		c := ingest.Completion{Source: tt.source}
		e.Enrich(&c)
		if c.Enrichment.TouchpointSource != tt.want {
			t.Errorf("touchpoint of a %s completion without page, referrer or UTM = %q; want %q", tt.source, c.Enrichment.TouchpointSource, tt.want)
		}
		if c.Enrichment.DeviceType != DeviceUnknown || c.Enrichment.IsBot != tt.bot {
			t.Errorf("%s completion without user agent: device %q bot %v; want Unknown, bot %v", tt.source, c.Enrichment.DeviceType, c.Enrichment.IsBot, tt.bot)
		}
	}
}

func TestEnrichBot(t *testing.T) {
	e := newTestEnricher(t, Config{})
	c := browserCompletion()
	c.Client.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
	e.Enrich(&c)
	if !c.Enrichment.IsBot {
		t.Errorf("Enrich(HeadlessChrome).IsBot = false; want true")
	}
}

func TestAnonymizeIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.77", "203.0.113.0"},
		{"203.0.113.0", "203.0.113.0"},
		{"::ffff:203.0.113.77", "203.0.113.0"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1::"},
		{"2001:db8:1:ffff::1", "2001:db8:1::"},
		{"fe80::1%eth0", "fe80::"},
		{"::1", "::"},
		{"", ""},
		{"not-an-ip", ""},
		{"203.0.113.77:8080", ""},
	}
	for _, tt := range tests {
		if got := AnonymizeIP(tt.in); got != tt.want {
			t.Errorf("AnonymizeIP(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestEnrichConcurrent(t *testing.T) {
	e := newTestEnricher(t, Config{GeoIP: GeoIPConfig{CityDB: writeTestDB(t, "GeoLite2-City")}, UACacheSize: 32})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				tt := uaCorpus[(i*7+g)%len(uaCorpus)]
				c := browserCompletion()
				c.Client.UserAgent = tt.ua
				e.Enrich(&c)
				if c.Enrichment.Browser != tt.want.Browser || c.Enrichment.Country != "DE" {
					t.Errorf("Enrich(%q) = %+v; want browser %q in DE", tt.ua, c.Enrichment, tt.want.Browser)
					return
				}
			}
		}()
	}
	wg.Wait()
}
