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
	// DataDir holds tally's local state: the managed ClickHouse server's data
	// (DataDir/clickhouse), the forwarding outbox and rule state. Empty means
	// ./var.
	DataDir    string       `yaml:"data_dir"`
	ClickHouse store.Config `yaml:"clickhouse"`
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

// DataPath joins elem to the data directory (data_dir, default ./var).
func (f *File) DataPath(elem ...string) string {
	dir := f.DataDir
	if dir == "" {
		dir = "var"
	}
	return filepath.Join(append([]string{dir}, elem...)...)
}
