package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Open connects to ClickHouse over the native protocol and checks the server
// answers. The HTTP protocol is refused: clickhouse-go sends a setting over
// HTTP that ClickHouse 18.16 rejects, and tally must work with both.
func Open(ctx context.Context, dsn string) (driver.Conn, error) { return OpenOn(ctx, dsn, "") }

// OpenOn is Open for tally's tables on cluster (empty: one server). On a
// cluster, inserts into Distributed tables are synchronous
// (insert_distributed_sync=1): an INSERT returns once a replica of the
// target shard holds the rows, never while they sit only in the local
// server's queue for another shard.
func OpenOn(ctx context.Context, dsn, cluster string) (driver.Conn, error) {
	opts, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if cluster != "" {
		if opts.Settings == nil {
			opts.Settings = clickhouse.Settings{}
		}
		opts.Settings["insert_distributed_sync"] = 1
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse: %w", err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse at %s: %w", strings.Join(opts.Addr, ","), err)
	}
	return conn, nil
}

func parseDSN(dsn string) (*clickhouse.Options, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		// The DSN may hold a password; the parser's error does not repeat it.
		return nil, fmt.Errorf("parse clickhouse DSN: %w", err)
	}
	if opts.Protocol != clickhouse.Native {
		return nil, fmt.Errorf("clickhouse DSN must use the native protocol (clickhouse://host:9000), not %s", opts.Protocol)
	}
	return opts, nil
}
