package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tally-analytics/tally/store/chserver"
)

// EnvDSN names an existing server to test against instead of starting one.
const EnvDSN = "TALLY_TEST_CLICKHOUSE_DSN"

// shared is the test binary's server, started by the first DSN call.
var shared struct {
	once   sync.Once
	dir    string
	server *chserver.Server
	dsn    string
	err    error
}

// DSN returns the DSN of a real ClickHouse server for t. The first call in a
// test binary starts a private server in a temporary directory (about 0.1–3 s);
// later calls share it. Use Main in TestMain so the server is stopped.
func DSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "tally-clickhouse-test-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.server, shared.err = chserver.Start(ctx, chserver.Config{Dir: shared.dir})
		if shared.err == nil {
			shared.dsn = shared.server.DSN()
		}
	})
	if shared.err != nil {
		if errors.Is(shared.err, chserver.ErrNotInstalled) && os.Getenv("CI") != "true" {
			t.Skipf("skipping: needs a ClickHouse server (%v); or set %s", shared.err, EnvDSN)
		}
		t.Fatalf("start test ClickHouse server: %v", shared.err)
	}
	return shared.dsn
}

// ServerPid is the process id of the server DSN started, or 0 when the
// tests use an existing server (EnvDSN) or none was started.
func ServerPid() int {
	if shared.server == nil {
		return 0
	}
	return shared.server.Pid()
}

// Main runs the tests, then stops the shared server and removes its files:
//
//	func TestMain(m *testing.M) { chtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if shared.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := shared.server.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "chtest:", err)
		}
		cancel()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// Open returns a native-protocol connection to dsn, closed when t ends.
func Open(t testing.TB, dsn string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse DSN %q: %v", dsn, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("open %q: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// Database creates an empty database with a unique name, drops it when t
// ends, and returns its name.
func Database(t testing.TB, dsn string) string {
	t.Helper()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	base := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	name := "test_" + hex.EncodeToString(rnd[:]) + "_" + base
	conn := Open(t, dsn)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return name
}
