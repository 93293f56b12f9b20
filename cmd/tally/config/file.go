package config

import (
	"path/filepath"

	"github.com/tally-analytics/tally/ingest"
	"github.com/tally-analytics/tally/ingest/enrich"
	"github.com/tally-analytics/tally/rules"
	"github.com/tally-analytics/tally/store"
	"github.com/tally-analytics/tally/store/wal"
)

// File is tally.yaml as written by its owner.
type File struct {
	Listen string `yaml:"listen"`
	// AdminListen is where operators reach /metrics and the detailed
	// readiness (and nothing else); empty means 127.0.0.1:9090, loopback
	// only, since it tells how tally is built and where its ClickHouse is.
	AdminListen string `yaml:"admin_listen"`
	// Demo serves the demo page at /demo on the public listener (off by
	// default; examples/tally.yaml turns it on for make run).
	Demo bool `yaml:"demo"`
	// DataDir holds tally's local state: the managed ClickHouse server's data
	// (DataDir/clickhouse), the forwarding outbox and rule state. Empty means
	// ./var.
	DataDir    string       `yaml:"data_dir"`
	ClickHouse store.Config `yaml:"clickhouse"`
	// Retention is how long ClickHouse keeps events, rejections and
	// deliveries (days; 0 keeps them). tally enforces it once a day.
	Retention store.RetentionConfig `yaml:"retention"`
	// DurableLog bounds the on-disk log every accepted completion is
	// written to before it is acknowledged (DataDir/log).
	DurableLog   wal.Config             `yaml:"durable_log"`
	Collector    ingest.CollectorConfig `yaml:"collector"`
	Sites        []ingest.Site          `yaml:"sites"`
	APITokens    []ingest.Token         `yaml:"api_tokens"`
	GeoIP        enrich.GeoIPConfig     `yaml:"geoip"`
	Privacy      enrich.PrivacyConfig   `yaml:"privacy"`
	Events       []ingest.Definition    `yaml:"events"`
	Destinations []rules.Destination    `yaml:"destinations"`
	Rules        []rules.Rule           `yaml:"rules"`
}

// DefaultAdminListen is AdminListen's default.
const DefaultAdminListen = "127.0.0.1:9090"

// AdminAddr is AdminListen or its default.
func (f *File) AdminAddr() string {
	if f.AdminListen == "" {
		return DefaultAdminListen
	}
	return f.AdminListen
}

// DataPath joins elem to the data directory (data_dir, default ./var).
func (f *File) DataPath(elem ...string) string {
	dir := f.DataDir
	if dir == "" {
		dir = "var"
	}
	return filepath.Join(append([]string{dir}, elem...)...)
}
