package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// schemaLockTable is the lock that makes collectors migrate one at a time:
// whoever creates it holds the lock, whoever finds it existing waits.
// CREATE TABLE without IF NOT EXISTS is atomic on one server, and on a
// cluster ON CLUSTER statements go through ZooKeeper's queue in order, so
// exactly one of several collectors starting together succeeds.
const schemaLockTable = "schema_lock"

// staleLock is how old a schema lock may be before it is taken for the
// leftover of a collector that died while migrating: migrations and view
// changes take seconds.
const staleLock = 10 * time.Minute

// LockSchema creates the database if needed and takes the schema lock,
// waiting while another collector holds it. release gives it back; it must
// be called, even after a failed migration.
func LockSchema(ctx context.Context, conn Conn, database, cluster string, log *slog.Logger) (release func(), err error) {
	if err := CheckDatabaseName(database); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := quoteIdent(database)
	if err := execAll(ctx, conn, layout("CREATE DATABASE IF NOT EXISTS "+db, cluster)); err != nil {
		return nil, fmt.Errorf("schema lock: %w", err)
	}
	lock := db + "." + schemaLockTable
	on := ""
	if cluster != "" {
		on = " ON CLUSTER " + quoteIdent(cluster)
	}
	create := []string{"CREATE TABLE " + lock + on + " (holder String) ENGINE = Memory"}
	drop := layout("DROP TABLE IF EXISTS "+lock, cluster)
	waiting := false
	for {
		err := execAll(ctx, conn, create)
		if err == nil {
			return func() {
				// A fresh context: the lock must go even when ctx ended.
				rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := execAll(rctx, conn, drop); err != nil {
					log.Error("release the schema lock", "err", err)
				}
			}, nil
		}
		if !strings.Contains(err.Error(), "already exists") {
			return nil, fmt.Errorf("schema lock: %w", err)
		}
		age, aerr := lockAge(ctx, conn, database)
		if aerr == nil && age > staleLock {
			log.Warn("schema lock is stale (a collector stopped while migrating); taking it over", "age", age.Round(time.Second))
			if err := execAll(ctx, conn, drop); err != nil {
				return nil, fmt.Errorf("schema lock: drop stale lock: %w", err)
			}
			continue
		}
		if !waiting {
			log.Info("another collector is migrating the schema; waiting")
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("schema lock: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func lockAge(ctx context.Context, conn Conn, database string) (time.Duration, error) {
	rows, err := conn.Query(ctx, "SELECT toInt64(now()) - toInt64(metadata_modification_time) FROM system.tables WHERE database = "+
		quoteString(database)+" AND name = "+quoteString(schemaLockTable))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	if !rows.Next() {
		return 0, nil // released in between
	}
	var secs int64
	if err := rows.Scan(&secs); err != nil {
		return 0, err
	}
	return time.Duration(secs) * time.Second, nil
}
