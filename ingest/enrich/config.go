package enrich

// GeoIPConfig points at a MaxMind City database.
type GeoIPConfig struct {
	CityDB string `yaml:"city_db"` // path to a GeoLite2/GeoIP2 City .mmdb; empty = no geo
}

// PrivacyConfig says what of the client is kept.
type PrivacyConfig struct {
	AnonymizeIP bool `yaml:"anonymize_ip"`
}
