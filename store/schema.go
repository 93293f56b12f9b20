package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Conn is what store needs of a ClickHouse connection; clickhouse-go's
// driver.Conn (from Open) has it.
type Conn interface {
	Exec(ctx context.Context, query string, args ...any) error
	Query(ctx context.Context, query string, args ...any) (driver.Rows, error)
	PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error)
}

// The schema must run on ClickHouse 18.16 (the server Debian ships) and on
// current releases, so it uses only what both have: MergeTree engines with
// PARTITION BY/ORDER BY, DateTime, UInt*, String, Array(String), column
// comments. No Map, DateTime64, TTL, skipping indexes or LowCardinality; those
// may come later behind a server-version check. 18.16 also lacks
// "ADD COLUMN IF NOT EXISTS": a later migration that adds a column must check
// system.columns first so a half-applied run can be repeated.
//
// Low-cardinality text (source, device_type, country, status, …) is String,
// not Enum: a new value from a newer tally must never turn into a failing
// insert, and repeated short strings compress well under LZ4 anyway.
//
// Times are DateTime('UTC'), so a client in any time zone reads the same
// wall-clock value, and the millisecond part of occurred_at is its own
// UInt16 column because 18.16 has no DateTime64.

// eventsDDL: one row per accepted completion.
//
// Analysts ask "this event on this site over that time", so the sort key
// starts with site and event_name, then the day, which lets a time range on
// occurred_at prune granules (toDate is monotonic). Partitions are months of
// occurred_at: a month is a good unit to drop or move, and imports of old
// completions land in their own months.
//
// The engine is ReplacingMergeTree with event_id last in the key. Duplicates
// are stopped before they are written (the in-process Deduper, warmed from
// this table at start); the engine is the backstop for what slips through, a
// flush retried after a timeout that had in fact succeeded, or a key evicted
// from the Deduper: rows with the same site, event name, day and event id
// collapse into one during background merges. Until a merge, or with a key
// whose day differs, both rows remain; SELECT … FINAL shows the merged view.
var eventsDDL = `CREATE TABLE IF NOT EXISTS {db}.events
(
` + columnsDDL(1) + `
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (site, event_name, toDate(occurred_at), event_id)`

// rejectionsDDL: every rejected or partly dropped input. It is a plain log
// (MergeTree, nothing to collapse), read as "what is going wrong on this
// site": sorted by site and reason, then time; monthly partitions.
const rejectionsDDL = `CREATE TABLE IF NOT EXISTS {db}.rejections
(
    rejected_at DateTime('UTC'),
    site        String,
    source      String COMMENT 'browser | api | import',
    event_name  String,
    reason      String COMMENT 'machine code, e.g. UNKNOWN_PROPERTY, VALUE_TOO_LONG',
    field       String COMMENT 'path of the offending field, e.g. inputs[3].properties.year',
    payload     String COMMENT 'the offending input, at most 4096 bytes'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (site, reason, rejected_at)`

var rejectionColumns = []string{"rejected_at", "site", "source", "event_name", "reason", "field", "payload"}

// deliveriesDDL: one row per forward attempt outcome, a log like
// rejections (the latest outcome of a forward is the row with the greatest
// updated_at for its event_id, rule). Read as "how is this destination
// doing": sorted by destination, rule, time; monthly partitions of the
// outcome time.
const deliveriesDDL = `CREATE TABLE IF NOT EXISTS {db}.deliveries
(
    event_id       String,
    event_name     String COMMENT 'tally event name; joins events on (event_name, event_id)',
    rule           String,
    destination    String,
    forwarded_name String COMMENT 'event name sent to the destination, e.g. Lead',
    status         String COMMENT 'sent | retrying | failed | expired | skipped_consent | ...',
    attempts       UInt32,
    http_status    UInt16 COMMENT '0 when no HTTP answer was received',
    fbtrace_id     String,
    error          String,
    created_at     DateTime('UTC') COMMENT 'when the forward was first queued',
    updated_at     DateTime('UTC') COMMENT 'when this outcome happened'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(updated_at)
ORDER BY (destination, rule, updated_at)`

var deliveryColumns = []string{"event_id", "event_name", "rule", "destination", "forwarded_name", "status", "attempts", "http_status", "trace_id", "error", "created_at", "updated_at", "payload", "response"}

// typedViewsDDL records the event_<name> views tally created, so SyncViews
// drops only its own views. ReplacingMergeTree keeps the latest state per
// name (version is Unix nanoseconds); it is read with FINAL, which is cheap
// for a table of one row per defined event.
const typedViewsDDL = `CREATE TABLE IF NOT EXISTS {db}.typed_views
(
    name       String,
    event_name String,
    ddl        String,
    dropped    UInt8,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name`

// ruleStateDDL: when each enabled rule, in its current form (hash), was
// enabled, shared by every collector of a database (see rules.StateStore).
// The newest write per rule wins (version is its time in nanoseconds); a
// disabled or removed rule gets a row with removed = 1. Collectors write it
// under the schema lock, one at a time.
const ruleStateDDL = `CREATE TABLE IF NOT EXISTS {db}.rule_state
(
    rule       String,
    hash       String COMMENT 'identifies the rule when and forward it was enabled with',
    enabled_ns UInt64 COMMENT 'when it was enabled, nanoseconds since the epoch',
    removed    UInt8,
    version    UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY rule`

// erasuresDDL: the audit trail of privacy erasures. It names the person
// only by a SHA-256 of their identifiers (store.Person.Subject), so an
// auditor can check that a known person was erased without the table
// holding who they are.
const erasuresDDL = `CREATE TABLE IF NOT EXISTS {db}.erasures
(
    erased_at       DateTime('UTC'),
    subject_sha256  String COMMENT 'SHA-256 of the erased identifiers',
    events          UInt64,
    rejections      UInt64,
    deliveries      UInt64,
    identities      UInt64,
    person_events   UInt64,
    outbox          UInt64 COMMENT 'pending forwards removed from the outbox',
    log_completions UInt64 COMMENT 'completions the durable log still held, dropped by its readers'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(erased_at)
ORDER BY erased_at`

const migrationsDDL = `CREATE TABLE IF NOT EXISTS {db}.schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version`

// migration is one step of the schema. Its statements must be safe to run
// again: a crash between a statement and the schema_migrations row repeats
// the step at the next start.
type migration struct {
	version    uint32
	name       string
	statements []string
	// columns are added after the statements, each only when the table
	// lacks it (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS), so a
	// repeated step adds nothing twice.
	columns []addColumn
}

// addColumn is one ALTER TABLE … ADD COLUMN of a migration.
type addColumn struct {
	table, name, typ string
}

func (c addColumn) statement() string {
	return "ALTER TABLE {db}." + c.table + " ADD COLUMN " + c.name + " " + c.typ
}

// alteredTable reads the table an ALTER TABLE statement changes.
var alteredTable = regexp.MustCompile("^ALTER TABLE `([^`]+)`\\.([a-z_]+) ")

// hasColumn reports whether the connected server's table has the column.
func hasColumn(ctx context.Context, conn Conn, database, table, column string) (bool, error) {
	rows, err := conn.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ? AND name = ?", database, table, column)
	if err != nil {
		return false, fmt.Errorf("read columns of %s.%s: %w", database, table, err)
	}
	defer rows.Close()
	found := rows.Next()
	return found, rows.Err()
}

// migrations are applied in order; append, never edit a released one.
func migrations() []migration {
	return []migration{
		{1, "events, rejections, deliveries, typed_views", []string{eventsDDL, rejectionsDDL, deliveriesDDL, typedViewsDDL}, nil},
		{2, "rule_state", []string{ruleStateDDL}, nil},
		// What a rule sent and what the destination answered: the event
		// as in the request's data array (user data hashed), and Meta's
		// JSON answer, both bounded (maxDeliveryPayload).
		{3, "deliveries payload and response", nil, []addColumn{
			{"deliveries", "payload", "String DEFAULT ''"},
			{"deliveries", "response", "String DEFAULT ''"},
		}},
		// One identity per person (persons.go).
		{4, "identities, person_events, contact_timeline", personsMigration(), nil},
		{5, "erasures", []string{erasuresDDL}, nil},
		// The destination's request id under a name that fits every
		// destination. 18.16 cannot rename a column: rows written before
		// read their fbtrace_id here, and fbtrace_id is no longer written.
		{6, "deliveries trace_id", nil, []addColumn{
			{"deliveries", "trace_id", "String DEFAULT fbtrace_id"},
		}},
		// The console's debug mode and the snippet's pixel mirror report.
		{7, "events debug and mirror", nil, []addColumn{
			{"events", "debug", "UInt8 DEFAULT 0"},
			{"events", "mirror", "Array(String) DEFAULT []"},
		}},
		// The runs that began importing each file (imports.go).
		{8, "import_files", []string{importFilesDDL}, nil},
	}
}

// SchemaDDL returns every statement Migrate may run against an empty
// database, in order, for review and for golden tests.
func SchemaDDL(database string) []string { return SchemaDDLOn(database, "") }

// SchemaDDLOn is SchemaDDL for a cluster (see cluster.go); an empty cluster
// is one server.
func SchemaDDLOn(database, cluster string) []string {
	db := quoteIdent(database)
	out := bootstrapDDL(db, cluster)
	// Columns added by later migrations are written into their table's
	// CREATE: every printed statement stays IF NOT EXISTS, so the text can
	// be run on a cluster where only new servers lack the tables.
	var stmts []string
	for _, m := range migrations() {
		stmts = append(stmts, m.statements...)
		for _, c := range m.columns {
			head := "CREATE TABLE IF NOT EXISTS {db}." + c.table + "\n"
			for i, s := range stmts {
				if strings.HasPrefix(s, head) {
					stmts[i] = strings.Replace(s, "\n)\nENGINE", ",\n    "+c.name+" "+c.typ+"\n)\nENGINE", 1)
				}
			}
		}
	}
	for _, s := range stmts {
		out = append(out, layout(expand(s, db), cluster)...)
	}
	return out
}

// bootstrapDDL is what Migrate runs before it can read which migrations
// are applied: the database and its schema_migrations table.
func bootstrapDDL(db, cluster string) []string {
	var out []string
	for _, s := range []string{"CREATE DATABASE IF NOT EXISTS " + db, expand(migrationsDDL, db)} {
		out = append(out, layout(s, cluster)...)
	}
	return out
}

// layout returns the statements that run stmt on one server (cluster
// empty: stmt itself) or on a cluster.
func layout(stmt, cluster string) []string {
	if cluster == "" {
		return []string{stmt}
	}
	return forCluster(stmt, cluster)
}

func expand(stmt, db string) string { return strings.ReplaceAll(stmt, "{db}", db) }

// Migrate creates the database if needed and applies the migrations not yet
// recorded in its schema_migrations table. Running it again is a no-op.
func Migrate(ctx context.Context, conn Conn, database string) error {
	return MigrateOn(ctx, conn, database, "")
}

// MigrateOn is Migrate for a cluster (see cluster.go); an empty cluster is
// one server.
func MigrateOn(ctx context.Context, conn Conn, database, cluster string) error {
	if err := CheckDatabaseName(database); err != nil {
		return err
	}
	db := quoteIdent(database)
	for _, s := range bootstrapDDL(db, cluster) {
		if err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("migrate %s: %s: %w", database, firstLine(s), err)
		}
	}
	applied, err := appliedVersions(ctx, conn, db)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", database, err)
	}
	for _, m := range migrations() {
		if applied[m.version] {
			continue
		}
		for _, s := range m.statements {
			for _, s := range layout(expand(s, db), cluster) {
				if err := conn.Exec(ctx, s); err != nil {
					return fmt.Errorf("migrate %s to version %d: %s: %w", database, m.version, firstLine(s), err)
				}
			}
		}
		for _, c := range m.columns {
			for _, s := range layout(expand(c.statement(), db), cluster) {
				// On a cluster an ALTER comes with statements that remake
				// the Distributed table over it; those are idempotent.
				t := alteredTable.FindStringSubmatch(s)
				if t == nil {
					if err := conn.Exec(ctx, s); err != nil {
						return fmt.Errorf("migrate %s to version %d: %s: %w", database, m.version, firstLine(s), err)
					}
					continue
				}
				if ok, err := hasColumn(ctx, conn, t[1], t[2], c.name); err != nil {
					return fmt.Errorf("migrate %s to version %d: %w", database, m.version, err)
				} else if ok {
					continue
				}
				if err := conn.Exec(ctx, s); err != nil {
					return fmt.Errorf("migrate %s to version %d: %s: %w", database, m.version, firstLine(s), err)
				}
			}
		}
		b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (version, name, applied_at)")
		if err != nil {
			return fmt.Errorf("record migration %d: %w", m.version, err)
		}
		if err := b.Append(m.version, m.name, time.Now().UTC()); err != nil {
			_ = b.Abort()
			return fmt.Errorf("record migration %d: %w", m.version, err)
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("record migration %d: %w", m.version, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration (0 for none).
func SchemaVersion(ctx context.Context, conn Conn, database string) (uint32, error) {
	if err := CheckDatabaseName(database); err != nil {
		return 0, err
	}
	applied, err := appliedVersions(ctx, conn, quoteIdent(database))
	if err != nil {
		return 0, err
	}
	var v uint32
	for k := range applied {
		v = max(v, k)
	}
	return v, nil
}

func appliedVersions(ctx context.Context, conn Conn, db string) (map[uint32]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[uint32]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// CheckDatabaseName accepts names that need no quoting anywhere an analyst
// may type them.
func CheckDatabaseName(name string) error {
	if !databaseName.MatchString(name) {
		return fmt.Errorf("database name %q must start with a letter or _ and use only letters, digits and _ (at most 63)", name)
	}
	return nil
}

// quoteIdent quotes a name already checked by CheckDatabaseName or
// ingest's internal-name rule, so there is nothing to escape.
func quoteIdent(name string) string { return "`" + name + "`" }

var stringEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

func quoteString(s string) string { return "'" + stringEscaper.Replace(s) + "'" }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
