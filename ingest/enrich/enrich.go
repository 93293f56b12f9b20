package enrich

import (
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/tally-analytics/tally/ingest"
)

// Enricher fills a completion's Enrichment. It is safe for concurrent use.
type Enricher struct {
	cfg Config
	ua  *uaCache
	geo *geoDB // nil when no database is configured
}

// New builds an Enricher. With Config.GeoIP.CityDB empty there is no geo
// and no error; a configured database that is missing, unreadable, corrupt or
// not a City database is an error, so tally refuses to start rather than
// store empty places. log may be nil.
func New(cfg Config, log *slog.Logger) (*Enricher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.UACacheSize <= 0 {
		cfg.UACacheSize = DefaultUACacheSize
	}
	e := &Enricher{cfg: cfg, ua: newUACache(cfg.UACacheSize)}
	if cfg.GeoIP.CityDB == "" {
		log.Info("geoip disabled: geoip.city_db is empty; country, region and city stay empty")
		return e, nil
	}
	g, err := openGeoDB(cfg.GeoIP.CityDB)
	if err != nil {
		return nil, err
	}
	e.geo = g
	log.Info("geoip database opened", "path", cfg.GeoIP.CityDB, "type", g.dbType,
		"built", time.Unix(int64(g.built), 0).UTC().Format(time.DateOnly))
	return e, nil
}

// Check reports configuration problems for `tally check` without keeping
// anything open.
func (c Config) Check() []ingest.FieldError {
	if c.GeoIP.CityDB == "" {
		return nil
	}
	g, err := openGeoDB(c.GeoIP.CityDB)
	if err != nil {
		return []ingest.FieldError{{Path: "geoip.city_db", Code: "GEOIP_DATABASE", Message: err.Error()}}
	}
	_ = g.close()
	return nil
}

// Close releases the GeoIP database. Enrich must not be called after it.
func (e *Enricher) Close() error {
	if e.geo == nil {
		return nil
	}
	return e.geo.close()
}

// Enrich fills c.Enrichment from c.Client and c.Page. A field already set
// (by an API caller's hs_* property) is kept; the bot flag is only ever
// raised (by the user agent, or by its absence on the browser path). Geo is skipped entirely when the caller set any of country, region
// or city, so a place is never assembled from two sources. c.Client is not
// modified: see StorageIP for what may be stored.
//
// Callers decide what Client holds: on the API and import paths it must be
// the visitor's user agent and IP when the caller sent them (hs_user_agent),
// never the integration's own HTTP client, which would be flagged as a bot
// and placed at the integration's data centre.
func (e *Enricher) Enrich(c *ingest.Completion) {
	en := &c.Enrichment

	ua := e.ua.get(c.Client.UserAgent)
	setIfEmpty(&en.Browser, ua.Browser)
	setIfEmpty(&en.BrowserVersion, ua.BrowserVersion)
	setIfEmpty(&en.OS, ua.OS)
	setIfEmpty(&en.OSVersion, ua.OSVersion)
	setIfEmpty(&en.DeviceType, ua.DeviceType)
	// Every browser sends a User-Agent; a snippet-path request without one
	// was made by a script.
	noUA := c.Source == ingest.SourceBrowser && strings.TrimSpace(c.Client.UserAgent) == ""
	en.IsBot = en.IsBot || ua.IsBot || noUA

	if e.geo != nil && c.Client.IP != "" && en.Country == "" && en.Region == "" && en.City == "" {
		p := e.geo.lookup(c.Client.IP)
		en.Country, en.Region, en.City = p.Country, p.Region, p.City
	}

	a := parseAttribution(c.Page.URL, c.Page.Referrer)
	setIfEmpty(&en.Path, a.Path)
	setIfEmpty(&en.UTMSource, a.UTMSource)
	setIfEmpty(&en.UTMMedium, a.UTMMedium)
	setIfEmpty(&en.UTMCampaign, a.UTMCampaign)
	setIfEmpty(&en.UTMTerm, a.UTMTerm)
	setIfEmpty(&en.UTMContent, a.UTMContent)
	if en.ClickIDParam == "" && en.ClickID == "" {
		en.ClickIDParam, en.ClickID = a.ClickIDParam, a.ClickID
	}
	if en.TouchpointSource == "" {
		// Classify with the values that will be stored, the caller's
		// included.
		a.UTMSource, a.UTMMedium, a.UTMCampaign = en.UTMSource, en.UTMMedium, en.UTMCampaign
		noContext := c.Page.URL == "" && c.Page.Referrer == "" && a.signals == 0 &&
			a.UTMSource == "" && a.UTMMedium == "" && a.UTMCampaign == ""
		// A server-side completion with no page, referrer or campaign says
		// nothing about how the person arrived: unknown, not "direct".
		if !(noContext && c.Source != ingest.SourceBrowser) {
			en.TouchpointSource = a.touchpoint()
		}
	}
}

func setIfEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// StorageIP returns the client IP as it may be stored: AnonymizeIP(ip) when
// privacy.anonymize_ip is on, else ip unchanged.
func (e *Enricher) StorageIP(ip string) string {
	if e.cfg.Privacy.AnonymizeIP {
		return AnonymizeIP(ip)
	}
	return ip
}

// AnonymizeIP truncates an address to its network: IPv4 to /24
// (203.0.113.77 → 203.0.113.0), IPv6 to /48 (2001:db8:1:2::5 →
// 2001:db8:1::), which is what Google Analytics and Matomo's default
// anonymisation keep and still locates a visitor only to a provider's
// region. An IPv4-mapped IPv6 address is treated as IPv4. Anything that is
// not an address yields "", so nothing unreadable is stored in its place.
func AnonymizeIP(ip string) string {
	if ip == "" {
		return "" // no address (imports, most API calls): no parse error built
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap().WithZone("")
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.Addr().String()
}
