package enrich

// GeoIPConfig points at a MaxMind City database.
type GeoIPConfig struct {
	CityDB string `yaml:"city_db"` // path to a GeoLite2/GeoIP2 City .mmdb; empty = no geo
}

// PrivacyConfig says what of the client is kept.
type PrivacyConfig struct {
	// AnonymizeIP truncates the stored client IP to its /24 (IPv4) or /48
	// (IPv6) network, after the GeoIP lookup has used the full address.
	AnonymizeIP bool `yaml:"anonymize_ip"`
}

// Config is what New needs.
type Config struct {
	GeoIP   GeoIPConfig
	Privacy PrivacyConfig
	// UACacheSize bounds how many parsed user agents are remembered; 0 means
	// DefaultUACacheSize. Memory is about 400 bytes per entry (a 250-byte
	// string plus the parsed fields and map overhead).
	UACacheSize int
}

// DefaultUACacheSize is 10,000 entries × ~400 B ≈ 4 MB. A busy site sees a
// few thousand distinct user agents a day (browser × version × OS build);
// 10,000 holds them all with room for the long tail, so misses are new
// strings, not evictions.
const DefaultUACacheSize = 10_000
