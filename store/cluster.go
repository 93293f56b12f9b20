package store

import (
	"fmt"
	"regexp"
	"strings"
)

// Cluster mode (clickhouse.cluster: NAME) puts tally's tables on a
// ClickHouse cluster, the servers' <remote_servers> entry NAME, with
// ZooKeeper for replication and distributed DDL:
//
//   - events, rejections and deliveries become <name>_local tables with a
//     Replicated engine of the same family on every server, and a
//     Distributed table <name> over them that tally and analysts use. Events
//     and deliveries are sharded by cityHash64(event_id), so a duplicate
//     lands on the shard that holds the first copy and merges away there;
//     rejections by rand().
//   - schema_migrations and typed_views are small tables every server holds
//     whole: Replicated without the shard in their ZooKeeper path.
//   - every statement runs ON CLUSTER, so one collector's migration reaches
//     every server, and the typed views select from the Distributed events.
//
// Inserts into a Distributed table are made synchronous
// (insert_distributed_sync=1): an INSERT returns once the shard's replica
// has the rows, so the durable log's cursor never moves past rows that sit
// only in one server's distribution queue.
//
// The servers need the usual macros, {shard} and {replica}.

// distributedTables maps the tables spread over shards to their sharding
// key. A table created by a migration and not listed here is replicated
// whole to every server.
var distributedTables = map[string]string{
	"events":     "cityHash64(event_id)",
	"rejections": "rand()",
	"deliveries": "cityHash64(event_id)",
	// A person's index rows on one shard; identities are held whole.
	"person_events": "cityHash64(person)",
}

var (
	createTableRe = regexp.MustCompile("^CREATE TABLE IF NOT EXISTS (`[^`]+`)\\.([a-z_]+)\n")
	engineRe      = regexp.MustCompile(`(?m)^ENGINE = (ReplacingMergeTree|MergeTree)(?:\(([^)]*)\))?$`)
	alterTableRe  = regexp.MustCompile("^ALTER TABLE (`[^`]+`)\\.([a-z_]+) ")
	commentRe     = regexp.MustCompile(` COMMENT '[^']*'`)
	onClusterRe   = regexp.MustCompile("^(CREATE DATABASE IF NOT EXISTS `[^`]+`|CREATE VIEW `[^`]+`\\.`[^`]+`|DROP TABLE IF EXISTS `[^`]+`\\.`?[a-z_0-9]+`?|RENAME TABLE .*)")
)

// forCluster returns the statements that do what stmt (an expanded
// single-server statement) does, on cluster. Statements it does not know
// are returned unchanged.
func forCluster(stmt, cluster string) []string {
	on := " ON CLUSTER " + quoteIdent(cluster)
	if m := createTableRe.FindStringSubmatch(stmt); m != nil {
		db, name := m[1], m[2]
		key, distributed := distributedTables[name]
		local := name
		shardPath := "{shard}/"
		replica := "{replica}"
		if distributed {
			local = name + "_local"
		} else {
			// Held whole by every server: one replica set across shards.
			shardPath, replica = "", "{shard}-{replica}"
		}
		path := "/clickhouse/tables/" + shardPath + strings.Trim(db, "`") + "/" + local
		body := strings.Replace(stmt, m[0], "CREATE TABLE IF NOT EXISTS "+db+"."+local+on+"\n", 1)
		// ClickHouse 18.16 compares a replicated table's columns with the
		// copy in ZooKeeper including their comments, and refuses the
		// second replica when a comment is present ("Table structure in
		// ZooKeeper is too different"); the cluster's tables go without
		// them (docs/analysts.md describes every column).
		body = commentRe.ReplaceAllString(body, "")
		body = engineRe.ReplaceAllStringFunc(body, func(e string) string {
			sm := engineRe.FindStringSubmatch(e)
			args := quoteString(path) + ", " + quoteString(replica)
			if sm[2] != "" {
				args += ", " + sm[2]
			}
			return "ENGINE = Replicated" + sm[1] + "(" + args + ")"
		})
		if !distributed {
			return []string{body}
		}
		dist := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s.%s\nENGINE = Distributed(%s, %s, %s, %s)",
			db, name, on, db, local, quoteIdent(cluster), strings.Trim(db, "`"), local, key)
		return []string{body, dist}
	}
	if m := alterTableRe.FindStringSubmatch(stmt); m != nil {
		db, name := m[1], m[2]
		rest := strings.TrimPrefix(stmt, m[0])
		if key, distributed := distributedTables[name]; distributed {
			// 18.16 runs an ALTER ON CLUSTER on one replica per shard and
			// refuses it for a table that is not replicated: the
			// Distributed table, which holds no rows, is made again over
			// the altered local table instead.
			return []string{
				"ALTER TABLE " + db + "." + name + "_local" + on + " " + rest,
				"DROP TABLE IF EXISTS " + db + "." + name + on,
				fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s.%s_local\nENGINE = Distributed(%s, %s, %s_local, %s)",
					db, name, on, db, name, quoteIdent(cluster), strings.Trim(db, "`"), name, key),
			}
		}
		return []string{"ALTER TABLE " + db + "." + name + on + " " + rest}
	}
	if loc := onClusterRe.FindStringSubmatchIndex(stmt); loc != nil {
		return []string{stmt[:loc[3]] + on + stmt[loc[3]:]}
	}
	return []string{stmt}
}
