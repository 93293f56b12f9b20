package store

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// RetentionConfig is how long each table keeps its rows, in days (the
// retention section of tally.yaml). Zero keeps rows for ever.
type RetentionConfig struct {
	// Events applies to events and to person_events, its index by person.
	Events     int `yaml:"events_days"`
	Rejections int `yaml:"rejections_days"`
	Deliveries int `yaml:"deliveries_days"`
}

// retained is a table under a retention limit and its time column (the
// one its monthly partitions are made of).
type retained struct {
	table, column string
	days          int
}

func (c RetentionConfig) tables() []retained {
	var out []retained
	for _, r := range []retained{
		{"events", "occurred_at", c.Events},
		{"person_events", "occurred_at", c.Events},
		{"rejections", "rejected_at", c.Rejections},
		{"deliveries", "updated_at", c.Deliveries},
	} {
		if r.days > 0 {
			out = append(out, r)
		}
	}
	return out
}

// Retention enforces RetentionConfig. ClickHouse 18.16 has no TTL, so the
// enforcement is tally's, once a day: every monthly partition wholly older
// than the limit is dropped (cheap: files removed), and the older rows of
// the month the limit falls in are deleted with an ALTER … DELETE mutation.
// On a server that has TTL (19.6 and later) the tables also get a TTL
// clause, so the server removes rows between two runs.
type Retention struct {
	cfg     RetentionConfig
	conn    Conn
	db      string
	cluster string
	log     *slog.Logger
}

// NewRetention returns the retention of database (on cluster, or one
// server).
func NewRetention(cfg RetentionConfig, conn Conn, database, cluster string, log *slog.Logger) *Retention {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Retention{cfg: cfg, conn: conn, db: database, cluster: cluster, log: log}
}

// RetentionResult is what one run removed, by table.
type RetentionResult struct {
	Table      string
	Partitions []string // monthly partitions dropped
	Deleted    uint64   // rows deleted from the month the limit falls in
}

// Apply enforces the limits as of now and returns what it removed.
func (r *Retention) Apply(ctx context.Context, now time.Time) ([]RetentionResult, error) {
	var out []RetentionResult
	for _, t := range r.cfg.tables() {
		res, err := r.apply(ctx, t, now)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

func (r *Retention) apply(ctx context.Context, t retained, now time.Time) (RetentionResult, error) {
	res := RetentionResult{Table: t.table}
	cutoff := now.UTC().AddDate(0, 0, -t.days).Truncate(time.Second)
	local, on := t.table, ""
	if r.cluster != "" {
		if _, ok := distributedTables[t.table]; ok {
			local += "_local"
		}
		on = " ON CLUSTER " + quoteIdent(r.cluster)
	}
	db := quoteIdent(r.db)
	// Partitions are toYYYYMM of the time column: month P is wholly older
	// than the cutoff when P is before the cutoff's month.
	parts, err := queryColumn(ctx, r.conn, "SELECT DISTINCT partition FROM system.parts WHERE active AND database = "+
		quoteString(r.db)+" AND table = "+quoteString(local))
	if err != nil {
		return res, fmt.Errorf("retention of %s: %w", t.table, err)
	}
	limit := cutoff.Year()*100 + int(cutoff.Month())
	for _, p := range parts {
		month, err := strconv.Atoi(strings.Trim(p, "'"))
		if err != nil || month >= limit {
			continue
		}
		if err := r.conn.Exec(ctx, "ALTER TABLE "+db+"."+local+on+" DROP PARTITION "+strconv.Itoa(month)); err != nil {
			return res, fmt.Errorf("retention of %s: drop partition %d: %w", t.table, month, err)
		}
		res.Partitions = append(res.Partitions, strconv.Itoa(month))
	}
	where := t.column + " < toDateTime(" + strconv.FormatInt(cutoff.Unix(), 10) + ")"
	n, err := queryCount(ctx, r.conn, "SELECT count() FROM "+db+"."+t.table+" WHERE "+where)
	if err != nil {
		return res, fmt.Errorf("retention of %s: %w", t.table, err)
	}
	if n > 0 {
		if err := r.conn.Exec(ctx, "ALTER TABLE "+db+"."+local+on+" DELETE WHERE "+where); err != nil {
			return res, fmt.Errorf("retention of %s: delete rows before %s: %w", t.table, cutoff.Format(time.RFC3339), err)
		}
		res.Deleted = n
	}
	return res, nil
}

// TTLStatements returns the ALTER … MODIFY TTL statements for a server of
// version (as SELECT version() says), or none when it has no TTL (before
// 19.6, such as Debian's 18.16).
func (r *Retention) TTLStatements(version string) []string {
	if !hasTTL(version) {
		return nil
	}
	var out []string
	for _, t := range r.cfg.tables() {
		local, on := t.table, ""
		if r.cluster != "" {
			if _, ok := distributedTables[t.table]; ok {
				local += "_local"
			}
			on = " ON CLUSTER " + quoteIdent(r.cluster)
		}
		out = append(out, fmt.Sprintf("ALTER TABLE %s.%s%s MODIFY TTL %s + INTERVAL %d DAY", quoteIdent(r.db), local, on, t.column, t.days))
	}
	return out
}

// hasTTL reports whether a ClickHouse version has table TTL (19.6 on).
func hasTTL(version string) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > 19 || major == 19 && minor >= 6
}

// Run enforces retention at start and then once a day until ctx ends,
// logging what it removed. On a server with TTL it sets the TTL first.
func (r *Retention) Run(ctx context.Context) {
	if len(r.cfg.tables()) == 0 {
		return
	}
	if vs, err := queryColumn(ctx, r.conn, "SELECT version()"); err == nil && len(vs) == 1 {
		for _, s := range r.TTLStatements(vs[0]) {
			if err := r.conn.Exec(ctx, s); err != nil {
				r.log.Warn("retention: set TTL", "err", err)
			}
		}
	}
	for {
		res, err := r.Apply(ctx, time.Now())
		if err != nil {
			r.log.Error("retention run failed; trying again in an hour", "err", err)
		}
		for _, t := range res {
			if len(t.Partitions) > 0 || t.Deleted > 0 {
				r.log.Info("retention removed old rows", "table", t.Table, "partitions", t.Partitions, "rows_deleted", t.Deleted)
			}
		}
		wait := 24 * time.Hour
		if err != nil {
			wait = time.Hour
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func queryColumn(ctx context.Context, conn Conn, q string) ([]string, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// queryCount runs q, a query of one count, with args bound to its ?s.
func queryCount(ctx context.Context, conn Conn, q string, args ...any) (uint64, error) {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n uint64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}
