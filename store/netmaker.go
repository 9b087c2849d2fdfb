package store

import (
	"context"
	"fmt"
)

// Netmaker's own API and UI on flowlog's data. Netmaker's server (pro)
// reads flows from a table `flows` in its ClickHouse database (CLICKHOUSE_DB,
// default "netmaker") and lists them with its own query. NetmakerView puts a
// view of that name there, with Netmaker's column names and types, over
// flowlog's merged flows (FINAL: each flow once, with its latest version),
// so Netmaker's /api/v1/flows shows flowlog's data. Netmaker's start-up
// creates `flows` only IF NOT EXISTS, and its partition clean-up finds no
// parts in a view, so both leave the view alone. Server engine only in
// practice: Netmaker must reach the database.
//
// Netmaker's columns differ from ours in type only: protocol UInt16, the
// addresses as text (IPv4 dotted, as Netmaker's agents write them), version
// a DateTime64(3) (ours is the agent's millisecond clock, so the same
// instant). Enums keep our names (a superset of Netmaker's: 'unspecified'
// added), which Netmaker reads as text.
const netmakerViewSelect = `SELECT flow_id, host_id, host_name, network_id,
	toUInt16(protocol) AS protocol, src_port, dst_port, icmp_type, icmp_code, direction,
	%[2]s AS src_ip, src_type, src_entity_id, src_entity_name,
	%[3]s AS dst_ip, dst_type, dst_entity_id, dst_entity_name,
	start_ts, end_ts, bytes_sent, bytes_recv, packets_sent, packets_recv, status,
	fromUnixTimestamp64Milli(version, 'UTC') AS version
FROM %[1]s.flows FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1`

// ipText prints an IPv6 column as Netmaker does: IPv4-mapped addresses
// dotted, others in IPv6 notation.
func ipText(col string) string {
	return fmt.Sprintf("if(%[1]s BETWEEN toIPv6('::ffff:0.0.0.0') AND toIPv6('::ffff:255.255.255.255'), "+
		"IPv4NumToString(toIPv4(%[1]s)), IPv6NumToString(%[1]s))", col)
}

// NetmakerView creates or replaces the view `flows` in the database
// Netmaker reads (created if missing). A table already there (Netmaker's
// own, created by its first start) is not touched: the error says what to
// do (docs/deployment.md).
func (s *Store) NetmakerView(ctx context.Context, database string) error {
	if database == "" {
		return fmt.Errorf("netmaker view: no database named")
	}
	db := ident(database)
	var rows []struct {
		Engine string `json:"engine"`
	}
	if err := s.queryRows(ctx, fmt.Sprintf("SELECT engine FROM system.tables WHERE database = %s AND name = 'flows'", quote(database)), &rows); err != nil {
		return fmt.Errorf("netmaker view: %w", err)
	}
	if len(rows) == 1 && rows[0].Engine != "View" {
		return fmt.Errorf("netmaker view: %s.flows exists and is a %s table (Netmaker's own): "+
			"rename it (RENAME TABLE %s.flows TO %s.flows_netmaker) or drop it, then start again", db, rows[0].Engine, db, db)
	}
	on := ""
	if s.cluster != "" {
		on = " ON CLUSTER " + ident(s.cluster)
	}
	if err := s.eng.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db+on); err != nil {
		return fmt.Errorf("netmaker view: creating database %s: %w", db, err)
	}
	sel := fmt.Sprintf(netmakerViewSelect, s.db, ipText("src_ip"), ipText("dst_ip"))
	if err := s.eng.Exec(ctx, "CREATE OR REPLACE VIEW "+db+".flows"+on+" AS "+sel); err != nil {
		return fmt.Errorf("netmaker view: creating %s.flows: %w", db, err)
	}
	return nil
}
