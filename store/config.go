package store

import "github.com/tally-analytics/tally/ingest"

// Config locates ClickHouse.
type Config struct {
	// DSN is a clickhouse-go native-protocol DSN (clickhouse://host:9000);
	// empty means tally starts and manages a local server (see chserver).
	DSN      string `yaml:"dsn"`
	Database string `yaml:"database"` // empty means "tally"
	// Cluster is the name of the ClickHouse cluster (the servers'
	// <remote_servers> entry) tally's tables live on; empty means one
	// server. See cluster.go for the layout.
	Cluster string `yaml:"cluster"`
}

// DefaultDatabase is the database used when Config.Database is empty.
const DefaultDatabase = "tally"

// DatabaseName returns Database, or DefaultDatabase when it is empty.
func (c Config) DatabaseName() string {
	if c.Database == "" {
		return DefaultDatabase
	}
	return c.Database
}

// Check reports config problems; path is where the section sits in the
// config ("clickhouse").
func (c Config) Check(path string) []ingest.FieldError {
	var errs []ingest.FieldError
	if err := CheckDatabaseName(c.DatabaseName()); err != nil {
		errs = append(errs, ingest.FieldError{Path: path + ".database", Code: "INVALID_DATABASE", Message: err.Error()})
	}
	if c.DSN != "" {
		if _, err := parseDSN(c.DSN); err != nil {
			errs = append(errs, ingest.FieldError{Path: path + ".dsn", Code: "INVALID_DSN", Message: err.Error()})
		}
	}
	return errs
}
