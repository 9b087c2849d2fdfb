package api

import (
	"net/netip"
	"time"

	"github.com/flowlog/flowlog"
)

// FlowRow is one flow as /api/v1/flows returns it. Field names and JSON types
// are those of Netmaker's FlowRow (gravitl/netmaker, pro/controllers/flows.go)
// so that Netmaker's UI and scripts read our answers unchanged; Active is our
// addition.
type FlowRow struct {
	FlowID    string `json:"flow_id"`
	HostID    string `json:"host_id"`
	HostName  string `json:"host_name"`
	NetworkID string `json:"network_id"`
	// uint16 as in Netmaker, although a protocol number fits in a byte.
	Protocol      uint16 `json:"protocol"`
	SrcPort       uint16 `json:"src_port"`
	DstPort       uint16 `json:"dst_port"`
	ICMPType      uint8  `json:"icmp_type"`
	ICMPCode      uint8  `json:"icmp_code"`
	Direction     string `json:"direction"`
	SrcIP         string `json:"src_ip"`
	SrcType       string `json:"src_type"`
	SrcEntityID   string `json:"src_entity_id"`
	SrcEntityName string `json:"src_entity_name"`
	DstIP         string `json:"dst_ip"`
	DstType       string `json:"dst_type"`
	DstEntityID   string `json:"dst_entity_id"`
	DstEntityName string `json:"dst_entity_name"`
	// Netmaker scans DateTime64(3) columns into time.Time, so times travel as
	// RFC 3339 strings. A flow that has not ended has end_ts = 0 in Netmaker's
	// table, which it prints as the Unix epoch; we do the same rather than
	// null so that clients written for Netmaker keep parsing it.
	StartTs     time.Time `json:"start_ts"`
	EndTs       time.Time `json:"end_ts"`
	BytesSent   uint64    `json:"bytes_sent"`
	BytesRecv   uint64    `json:"bytes_recv"`
	PacketsSent uint64    `json:"packets_sent"`
	PacketsRecv uint64    `json:"packets_recv"`
	Status      uint32    `json:"status"`
	// Netmaker stores the agent's version (milliseconds since the epoch, per
	// flow.proto) as DateTime64(3) and prints it as a time; we follow.
	Version time.Time `json:"version"`
	Active  bool      `json:"active"`
	// Ours: State is "active", "finished" or "stale" (open, but no event
	// for longer than the collector's stale horizon: its DESTROY was
	// lost); EndApprox says end_ts is when the collector received the
	// DESTROY, the agent having no kernel timestamp.
	State     string `json:"state"`
	EndApprox bool   `json:"end_approx,omitempty"`
	// Ours too: the network of an external endpoint, named at ingest
	// (package ipdb; AS data CC BY 4.0, ipdb.Attribution). Left out when
	// unknown, as for every mesh endpoint, so mesh rows keep Netmaker's
	// shape exactly.
	SrcASN     uint32 `json:"src_asn,omitempty"`
	SrcASName  string `json:"src_as_name,omitempty"`
	SrcCountry string `json:"src_country,omitempty"`
	DstASN     uint32 `json:"dst_asn,omitempty"`
	DstASName  string `json:"dst_as_name,omitempty"`
	DstCountry string `json:"dst_country,omitempty"`
}

// NewFlowRow renders a flow in the API's shape.
func NewFlowRow(f flowlog.Flow) FlowRow {
	return FlowRow{
		FlowID:        f.FlowID,
		HostID:        f.HostID,
		HostName:      f.HostName,
		NetworkID:     f.NetworkID,
		Protocol:      uint16(f.Protocol),
		SrcPort:       f.SrcPort,
		DstPort:       f.DstPort,
		ICMPType:      f.ICMPType,
		ICMPCode:      f.ICMPCode,
		Direction:     f.Direction.String(),
		SrcIP:         ipString(f.Src.IP),
		SrcType:       f.Src.Type.String(),
		SrcEntityID:   f.Src.ID,
		SrcEntityName: f.Src.Name,
		DstIP:         ipString(f.Dst.IP),
		DstType:       f.Dst.Type.String(),
		DstEntityID:   f.Dst.ID,
		DstEntityName: f.Dst.Name,
		StartTs:       printable(timeOrEpoch(f.Start)),
		EndTs:         printable(timeOrEpoch(f.End)),
		BytesSent:     f.BytesSent,
		BytesRecv:     f.BytesRecv,
		PacketsSent:   f.PacketsSent,
		PacketsRecv:   f.PacketsRecv,
		Status:        f.Status,
		Version:       printable(time.UnixMilli(f.Version)),
		Active:        f.Active,
		State:         stateOf(f),
		EndApprox:     f.EndApprox,
		SrcASN:        f.Src.ASN,
		SrcASName:     f.Src.ASName,
		SrcCountry:    f.Src.Country,
		DstASN:        f.Dst.ASN,
		DstASName:     f.Dst.ASName,
		DstCountry:    f.Dst.Country,
	}
}

func stateOf(f flowlog.Flow) string {
	switch {
	case f.Stale:
		return "stale"
	case f.Type == flowlog.EventDestroy:
		return "finished"
	}
	return "active"
}

// printable keeps a time within what RFC 3339 (and so Go's JSON) can
// write, years 0 to 9999: ingest refuses anything else, but one row stored
// before it did must not fail a whole page or a tail with "year outside of
// range".
func printable(t time.Time) time.Time {
	t = t.UTC()
	if y := t.Year(); y > 9999 {
		return time.UnixMilli(flowlog.MaxVersion).UTC()
	} else if y < 0 {
		return epoch
	}
	return t
}

var epoch = time.Unix(0, 0).UTC()

// timeOrEpoch maps Go's zero time (year 1) to ClickHouse's zero (1970), the
// value Netmaker clients know as "not set".
func timeOrEpoch(t time.Time) time.Time {
	if t.IsZero() {
		return epoch
	}
	return t.UTC()
}

// ipString prints IPv4 as a.b.c.d even when the store hands back the
// IPv4-mapped IPv6 form it keeps in its IPv6 column.
func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}
