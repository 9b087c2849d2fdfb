package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// Cluster mode (Options.Cluster): the same schema on a ClickHouse cluster.
// Every table T of the migrations becomes
//   - T_local, created ON CLUSTER on every server, with the Replicated
//     variant of its engine (each shard's replicas copy each other's parts
//     through Keeper; the replication path is the server's default,
//     /clickhouse/tables/{uuid}/{shard}, which ON CLUSTER keeps equal on
//     every replica), and
//   - T, a Distributed table over the T_local of every shard, which every
//     query and insert of the store names unchanged.
// Each Distributed table has a sharding key (shardKeys) that sends every
// row that must collapse with another to the same shard: FINAL, argMax and
// ReplacingMergeTree merges work within a shard, so per shard they are
// exact, and the whole answer is the sum of the shards'.
//
// The statements are written for one server (schema.go) and rewritten
// here, so a migration is written once; a statement this file does not know
// how to rewrite fails the migration (and the golden test) instead of
// running half right.

// shardKeys: the sharding key of each table in cluster mode.
//
// flows: the connection, cityHash64 of the network and the 5-tuple (with
// the ICMP type and code), the same expression as the counting's conn_key.
// Every row that must collapse with another carries the same tuple: a
// flow's START and DESTROY, and any retried copy; so do both observations
// of one connection, by its two hosts, whose src and dst are the initiator
// and the responder on both sides. All of them land on one shard, where
// FINAL and the merges collapse a flow exactly and the one-count-per-
// connection deduplication finds both observations; each shard's answer
// then adds up to the whole. The trade-off against the sorting key
// (network_id, host_id, flow_id): an agent that writes an ingress
// observation the other way round (src as itself) gets its two
// observations placed apart, which costs the pairing of that connection,
// never the collapse of a flow (its rows still share the tuple). Only
// ordinary columns: the key is computed where the insert arrives. A
// table's sharding key cannot change once data is written (rows placed
// stay where they are): changing it means a new table and a copy.
var shardKeys = map[string]string{
	"flows":             flowsShardKey,
	"flows_v3":          flowsShardKey, // the counting's rebuild of flows (migration 3)
	"flows_v2":          flowsShardKey, // and the old flows it renames away
	"flows_v13":         flowsShardKey, // the rebuild of flows in time order (migration 13)
	"flows_v12":         flowsShardKey, // and the old flows it renames away
	"rejected_events":   "cityHash64(host_id, reason, event)",
	"flows_1m":          "toYYYYMMDD(bucket)", // a day's rollup (one generation) on one shard
	"flows_1h":          "toYYYYMMDD(bucket)",
	"pairs_1d":          "toYYYYMMDD(day)",
	"talkers_1d":        "toYYYYMMDD(day)",
	"addrs_1d":          "toYYYYMMDD(day)",
	"series_1h":         "toYYYYMMDD(bucket)",
	"series_sh":         "toYYYYMMDD(hour)",
	"series_slices":     "toYYYYMMDD(hour)", // a day's slices on one shard (of series_sh's day), summed there
	"rollup_dirty":      "toYYYYMMDD(day)",
	"rollup_marks":      "toYYYYMMDD(day)",
	"talkers_1h":        "toYYYYMMDD(hour)",
	"addrs_1h":          "toYYYYMMDD(hour)",
	"addrs_slices":      "toYYYYMMDD(hour)", // a day's slices on one shard (of addrs_1h's day), summed there
	"rollup_days":       "toYYYYMMDD(day)",
	"rollup_claims":     "toYYYYMMDD(day)",
	"agents":            "cityHash64(network_id, host_id)", // a host's sightings on one shard, where they collapse
	"schema_migrations": "version",
}

const flowsShardKey = "cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code)"

// localSuffix names the per-shard tables in cluster mode.
const localSuffix = "_local"

var (
	createTableRe = regexp.MustCompile(`^\s*CREATE TABLE IF NOT EXISTS (\S+)\.(\w+) \(`)
	engineRe      = regexp.MustCompile(`ENGINE = (\w*)MergeTree\b`)
	alterRe       = regexp.MustCompile(`(?s)^\s*ALTER TABLE (\S+)\.(\w+) (.*)$`)
	dropTableRe   = regexp.MustCompile(`^\s*DROP TABLE IF EXISTS (\S+)\.(\w+)\s*$`)
	renameRe      = regexp.MustCompile(`^\s*RENAME TABLE (\S+)\.(\w+) TO (\S+)\.(\w+)\s*$`)
	columnAlterRe = regexp.MustCompile(`^(ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR) COLUMN\b`)
	createDBRe    = regexp.MustCompile(`^\s*CREATE DATABASE IF NOT EXISTS (\S+)\s*$`)
	insertRe      = regexp.MustCompile(`^\s*INSERT INTO `)
)

// ddl returns the statements that carry out stmt (a DDL statement of the
// schema, {db} already replaced) in this store's mode: stmt itself on one
// server, its cluster form in cluster mode.
func (s *Store) ddl(stmt string) ([]string, error) {
	if s.cluster == "" {
		return []string{stmt}, nil
	}
	return clusterDDL(stmt, s.cluster)
}

// execDDL runs a schema statement in this store's mode.
func (s *Store) execDDL(ctx context.Context, stmt string) error {
	stmts, err := s.ddl(stmt)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		if err := s.eng.Exec(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// clusterDDL rewrites one statement for a cluster.
func clusterDDL(stmt, cluster string) ([]string, error) {
	on := " ON CLUSTER " + ident(cluster)
	if m := createDBRe.FindStringSubmatch(stmt); m != nil {
		return []string{"CREATE DATABASE IF NOT EXISTS " + m[1] + on}, nil
	}
	if insertRe.MatchString(stmt) {
		return []string{stmt}, nil // through the Distributed table, to the rows' shards
	}
	if m := createTableRe.FindStringSubmatchIndex(stmt); m != nil {
		db, table := stmt[m[2]:m[3]], stmt[m[4]:m[5]]
		key, ok := shardKeys[table]
		if !ok {
			return nil, fmt.Errorf("cluster mode: table %s has no sharding key (store/cluster.go, shardKeys)", table)
		}
		if !engineRe.MatchString(stmt) {
			return nil, fmt.Errorf("cluster mode: table %s: only *MergeTree engines have a replicated form", table)
		}
		local := "CREATE TABLE IF NOT EXISTS " + db + "." + table + localSuffix + on + " (" + stmt[m[1]:]
		local = engineRe.ReplaceAllString(local, "ENGINE = Replicated${1}MergeTree")
		dist := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s.%[2]s%[3]s AS %[1]s.%[2]s%[4]s ENGINE = Distributed(%[5]s, %[1]s, %[2]s%[4]s, %[6]s)",
			db, table, on, localSuffix, ident(cluster), key)
		return []string{local, dist}, nil
	}
	if m := alterRe.FindStringSubmatch(stmt); m != nil {
		db, table, rest := m[1], m[2], m[3]
		out := []string{"ALTER TABLE " + db + "." + table + localSuffix + on + " " + rest}
		// The Distributed table's columns follow the local table's; its
		// other clauses (ORDER BY, TTL, indexes) do not apply to it.
		var cols []string
		for _, c := range splitClauses(rest) {
			if columnAlterRe.MatchString(c) {
				cols = append(cols, c)
			}
		}
		if len(cols) > 0 {
			out = append(out, "ALTER TABLE "+db+"."+table+on+" "+strings.Join(cols, ", "))
		}
		return out, nil
	}
	if m := dropTableRe.FindStringSubmatch(stmt); m != nil {
		db, table := m[1], m[2]
		return []string{
			"DROP TABLE IF EXISTS " + db + "." + table + on + " SYNC",
			"DROP TABLE IF EXISTS " + db + "." + table + localSuffix + on + " SYNC",
		}, nil
	}
	if m := renameRe.FindStringSubmatch(stmt); m != nil {
		// The data is in the local tables: rename those (the step that
		// fails when the table is gone or the name taken, on every
		// server). A Distributed table names its local table: the old
		// name's goes, the new name's is made over the renamed local
		// table, with its columns (one left by a crash is replaced).
		db, from, to := m[1], m[2], m[4]
		key, ok := shardKeys[to]
		if !ok {
			return nil, fmt.Errorf("cluster mode: table %s has no sharding key (store/cluster.go, shardKeys)", to)
		}
		return []string{
			"RENAME TABLE " + db + "." + from + localSuffix + " TO " + m[3] + "." + to + localSuffix + on,
			"DROP TABLE IF EXISTS " + db + "." + from + on + " SYNC",
			"DROP TABLE IF EXISTS " + m[3] + "." + to + on + " SYNC",
			fmt.Sprintf("CREATE TABLE %[1]s.%[2]s%[3]s AS %[1]s.%[2]s%[4]s ENGINE = Distributed(%[5]s, %[1]s, %[2]s%[4]s, %[6]s)",
				m[3], to, on, localSuffix, ident(cluster), key),
		}, nil
	}
	return nil, fmt.Errorf("cluster mode: no cluster form for statement %.60q... (store/cluster.go)", strings.TrimSpace(stmt))
}

// hasTable reports whether this store's database has the table. Open asks
// before any DDL: on a cluster, DDL goes through Keeper's queue (ON
// CLUSTER), so a collector restarting on an up-to-date schema while Keeper
// is away still starts (and serves reads, and inserts once Keeper is back).
func (s *Store) hasTable(ctx context.Context, table string) (bool, error) {
	var rows []struct {
		N int `json:"n"`
	}
	q := fmt.Sprintf("SELECT count() AS n FROM system.tables WHERE database = %s AND name = %s", quote(strings.Trim(s.db, "`")), quote(table))
	if err := s.queryRows(ctx, q, &rows); err != nil {
		return false, fmt.Errorf("reading the schema: %w", err)
	}
	return len(rows) == 1 && rows[0].N > 0, nil
}

// storageTable is the table that holds table's parts: itself on one
// server, its local table in cluster mode (system.tables, TTLs).
func (s *Store) storageTable(table string) string {
	if s.cluster == "" {
		return table
	}
	return table + localSuffix
}

// splitClauses splits the clauses of an ALTER at its top-level commas (not
// inside parentheses or quotes).
func splitClauses(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}
