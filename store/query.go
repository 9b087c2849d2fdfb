package store

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

// flowRow is one merged flow as the SELECT below returns it.
type flowRow struct {
	EventType     string `json:"event_type"`
	FlowID        string `json:"flow_id"`
	HostID        string `json:"host_id"`
	HostName      string `json:"host_name"`
	NetworkID     string `json:"network_id"`
	Protocol      uint8  `json:"protocol"`
	SrcPort       uint16 `json:"src_port"`
	DstPort       uint16 `json:"dst_port"`
	ICMPType      uint8  `json:"icmp_type"`
	ICMPCode      uint8  `json:"icmp_code"`
	Direction     uint8  `json:"direction_n"`
	SrcIP         string `json:"src_ip_s"`
	SrcType       uint8  `json:"src_type_n"`
	SrcEntityID   string `json:"src_entity_id"`
	SrcEntityName string `json:"src_entity_name"`
	DstIP         string `json:"dst_ip_s"`
	DstType       uint8  `json:"dst_type_n"`
	DstEntityID   string `json:"dst_entity_id"`
	DstEntityName string `json:"dst_entity_name"`
	StartMS       int64  `json:"start_ms"`
	EndMS         int64  `json:"end_ms"`
	BytesSent     uint64 `json:"bytes_sent"`
	BytesRecv     uint64 `json:"bytes_recv"`
	PacketsSent   uint64 `json:"packets_sent"`
	PacketsRecv   uint64 `json:"packets_recv"`
	Status        uint32 `json:"status"`
	Version       int64  `json:"version"`
}

// selectFlow reads enums as their numbers and times as epoch milliseconds, so
// decoding needs no string parsing. Aliases never reuse a column's name: in
// ClickHouse an alias would shadow the column in WHERE.
const selectFlow = `event_type, flow_id, host_id, host_name, network_id, protocol, src_port, dst_port,
	icmp_type, icmp_code, toInt8(direction) AS direction_n,
	IPv6NumToString(src_ip) AS src_ip_s, toInt8(src_type) AS src_type_n, src_entity_id, src_entity_name,
	IPv6NumToString(dst_ip) AS dst_ip_s, toInt8(dst_type) AS dst_type_n, dst_entity_id, dst_entity_name,
	toUnixTimestamp64Milli(start_ts) AS start_ms, toUnixTimestamp64Milli(end_ts) AS end_ms,
	bytes_sent, bytes_recv, packets_sent, packets_recv, status, version`

// Flows returns merged flows, newest start first. FINAL merges each flow's
// rows at read time, so a flow whose START and DESTROY (or a retried twin)
// are not merged yet still appears once, with its highest version; WHERE is
// applied after that merge, so "active" means "no DESTROY anywhere".
func (s *Store) Flows(ctx context.Context, f flowlog.Filter, p flowlog.Page) ([]flowlog.Flow, error) {
	if p.PerPage <= 0 {
		p.PerPage = 100
	}
	if p.Number <= 0 {
		p.Number = 1
	}
	var rows []flowRow
	if err := s.queryRows(ctx, s.flowsSQL(f, p), &rows); err != nil {
		return nil, fmt.Errorf("querying flows: %w", err)
	}
	flows := make([]flowlog.Flow, len(rows))
	for i := range rows {
		flows[i] = rows[i].flow()
	}
	return flows, nil
}

func (s *Store) flowsSQL(f flowlog.Filter, p flowlog.Page) string {
	return fmt.Sprintf("SELECT %s FROM %s.flows FINAL %s ORDER BY start_ts DESC, flow_id DESC LIMIT %d OFFSET %d",
		selectFlow, s.db, where(f), p.PerPage, (p.Number-1)*p.PerPage)
}

// where renders a filter as a WHERE clause ("" when it selects everything).
func where(f flowlog.Filter) string {
	var c []string
	eq := func(col, v string) {
		if v != "" {
			c = append(c, col+" = "+quote(v))
		}
	}
	eq("network_id", f.NetworkID)
	eq("host_id", f.HostID)
	eq("src_entity_id", f.SrcEntityID)
	eq("dst_entity_id", f.DstEntityID)
	// With FINAL, ClickHouse uses only sorting-key conditions to select
	// parts, so a start_ts range alone reads every partition. The partition
	// id of toDate(start_ts) is 'YYYYMMDD': bounding it prunes by day.
	if !f.From.IsZero() {
		c = append(c, "_partition_id >= "+quote(f.From.UTC().Format("20060102")), "start_ts >= "+ms(f.From))
	}
	if !f.To.IsZero() {
		c = append(c, "_partition_id <= "+quote(f.To.Add(-time.Millisecond).UTC().Format("20060102")), "start_ts < "+ms(f.To))
	}
	if len(f.SrcTypes) > 0 {
		c = append(c, "toInt8(src_type) IN ("+ints(f.SrcTypes)+")")
	}
	if len(f.DstTypes) > 0 {
		c = append(c, "toInt8(dst_type) IN ("+ints(f.DstTypes)+")")
	}
	if len(f.Protocols) > 0 {
		c = append(c, "protocol IN ("+ints(f.Protocols)+")")
	}
	if f.Username != "" {
		u := quote(f.Username)
		c = append(c, fmt.Sprintf("((src_type = 'user' AND (src_entity_id = %[1]s OR src_entity_name = %[1]s)) OR "+
			"(dst_type = 'user' AND (dst_entity_id = %[1]s OR dst_entity_name = %[1]s)))", u))
	}
	switch f.State {
	case flowlog.StateActive:
		c = append(c, "event_type = 'start'")
	case flowlog.StateFinished:
		c = append(c, "event_type = 'destroy'")
	}
	if len(c) == 0 {
		return ""
	}
	return "WHERE " + strings.Join(c, " AND ")
}

func ms(t time.Time) string {
	return "fromUnixTimestamp64Milli(toInt64(" + strconv.FormatInt(t.UnixMilli(), 10) + "), 'UTC')"
}

func ints[T ~uint8](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(int(v))
	}
	return strings.Join(s, ", ")
}

func (r *flowRow) flow() flowlog.Flow {
	f := flowlog.Flow{Active: r.EventType == "start"}
	e := &f.Event
	e.Type = flowlog.EventStart
	if !f.Active {
		e.Type = flowlog.EventDestroy
		e.End = time.UnixMilli(r.EndMS).UTC()
	}
	e.FlowID, e.HostID, e.HostName, e.NetworkID = r.FlowID, r.HostID, r.HostName, r.NetworkID
	e.Protocol, e.SrcPort, e.DstPort, e.ICMPType, e.ICMPCode = r.Protocol, r.SrcPort, r.DstPort, r.ICMPType, r.ICMPCode
	e.Direction = flowlog.Direction(r.Direction)
	e.Src = participant(r.SrcIP, r.SrcType, r.SrcEntityID, r.SrcEntityName)
	e.Dst = participant(r.DstIP, r.DstType, r.DstEntityID, r.DstEntityName)
	e.Start = time.UnixMilli(r.StartMS).UTC()
	e.BytesSent, e.BytesRecv, e.PacketsSent, e.PacketsRecv = r.BytesSent, r.BytesRecv, r.PacketsSent, r.PacketsRecv
	e.Status, e.Version = r.Status, r.Version
	return f
}

func participant(ip string, typ uint8, id, name string) flowlog.Participant {
	a, _ := netip.ParseAddr(ip)
	return flowlog.Participant{IP: a.Unmap(), Type: flowlog.ParticipantType(typ), ID: id, Name: name}
}
