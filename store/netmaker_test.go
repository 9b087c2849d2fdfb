package store_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Netmaker's flows table, column by column (its clickhouse/initdb.d schema),
// with the type the view must give each for Netmaker's reader: same name,
// same order, a type its row struct scans (LowCardinality(String) and our
// enums read as text).
var netmakerColumns = []struct{ name, typ string }{
	{"flow_id", "String"}, {"host_id", "LowCardinality(String)"}, {"host_name", "LowCardinality(String)"},
	{"network_id", "LowCardinality(String)"}, {"protocol", "UInt16"}, {"src_port", "UInt16"}, {"dst_port", "UInt16"},
	{"icmp_type", "UInt8"}, {"icmp_code", "UInt8"}, {"direction", "Enum8("},
	{"src_ip", "String"}, {"src_type", "Enum8("}, {"src_entity_id", "LowCardinality(String)"}, {"src_entity_name", "LowCardinality(String)"},
	{"dst_ip", "String"}, {"dst_type", "Enum8("}, {"dst_entity_id", "LowCardinality(String)"}, {"dst_entity_name", "LowCardinality(String)"},
	{"start_ts", "DateTime64(3, 'UTC')"}, {"end_ts", "DateTime64(3, 'UTC')"},
	{"bytes_sent", "UInt64"}, {"bytes_recv", "UInt64"}, {"packets_sent", "UInt64"}, {"packets_recv", "UInt64"},
	{"status", "UInt32"}, {"version", "DateTime64(3, 'UTC')"},
}

// The view in Netmaker's database has Netmaker's columns and lists each
// flow once (START and DESTROY merged), addresses as Netmaker prints them.
func TestNetmakerView(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	nm := "nm_" + strings.Trim(s.Database(), "`")
	st, de := ev("f1", flowlog.EventStart, t0, 1), ev("f1", flowlog.EventDestroy, t0, 2)
	other := ev("f2", flowlog.EventStart, t0, 1)
	other.Src.IP, other.Dst.IP = netip.MustParseAddr("fd00::7"), netip.MustParseAddr("192.168.1.9")
	for _, b := range [][]flowlog.Event{{st}, {de, other}} {
		if err := s.Insert(ctx, &flowlog.Batch{Events: b}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // created, then replaced
		if err := s.NetmakerView(ctx, nm); err != nil {
			t.Fatal(err)
		}
	}
	var cols []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := s.QueryRows(ctx, "SELECT name, type FROM system.columns WHERE database = '"+nm+"' AND table = 'flows' ORDER BY position", &cols); err != nil {
		t.Fatal(err)
	}
	if len(cols) != len(netmakerColumns) {
		t.Fatalf("view columns %+v, want Netmaker's %d", cols, len(netmakerColumns))
	}
	for i, c := range netmakerColumns {
		if cols[i].Name != c.name || !strings.HasPrefix(cols[i].Type, c.typ) {
			t.Errorf("column %d: %s %s, want %s %s", i, cols[i].Name, cols[i].Type, c.name, c.typ)
		}
	}
	var rows []struct {
		FlowID  string `json:"flow_id"`
		SrcIP   string `json:"src_ip"`
		DstIP   string `json:"dst_ip"`
		Bytes   uint64 `json:"bytes_recv"`
		Version string `json:"version"`
	}
	if err := s.QueryRows(ctx, "SELECT flow_id, src_ip, dst_ip, bytes_recv, toString(version) AS version FROM `"+nm+"`.flows ORDER BY flow_id", &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].FlowID != "f1" || rows[0].Bytes != 2000 || rows[0].SrcIP != "10.0.0.1" || rows[0].DstIP != "fd00::2" ||
		rows[1].SrcIP != "fd00::7" || rows[1].DstIP != "192.168.1.9" || rows[0].Version != "1970-01-01 00:00:00.002" {
		t.Errorf("view rows %+v, want f1 once (its DESTROY, version 2 ms) and f2, addresses as Netmaker prints them", rows)
	}

	// Netmaker's own table in the way: left alone, and the error says what to do.
	taken := nm + "_taken"
	if err := s.Exec(ctx, "CREATE DATABASE `"+taken+"`"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "CREATE TABLE `"+taken+"`.flows (flow_id String) ENGINE = MergeTree ORDER BY flow_id"); err != nil {
		t.Fatal(err)
	}
	if err := s.NetmakerView(ctx, taken); err == nil || !strings.Contains(err.Error(), "is a MergeTree table (Netmaker's own): rename it") {
		t.Errorf("view over Netmaker's own table: %v, want a refusal saying to rename it", err)
	}
}
