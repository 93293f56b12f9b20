package store

// Config locates ClickHouse.
type Config struct {
	// DSN is a clickhouse-go native-protocol DSN (clickhouse://host:9000);
	// empty means tally starts and manages a local server (see chserver).
	DSN      string `yaml:"dsn"`
	Database string `yaml:"database"` // empty means "tally"
}
