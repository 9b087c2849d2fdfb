package store

import (
	"fmt"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/freelist"
)

// Inserts are encoded in ClickHouse's Native format: one block of columns,
// the LowCardinality ones already as dictionaries. The engine then copies
// columns instead of parsing rows: measured on chDB into a Null table,
// RowBinary→LowCardinality costs 4.5–5.2 µs a row, Native 0.85–1.1 µs
// (BENCHMARKS.md, "Insert format"). ch-go's proto package writes the format
// (it is the encoder behind clickhouse-go), so nothing here is hand-rolled
// but the mapping from events to columns.

// The Enum8 types of the flows table, as the block header must name them
// (the schema's migration 1 spells the same; an insert fails loudly if
// they ever differ).
const (
	eventTypeEnum = "Enum8('start' = 1, 'destroy' = 2)"
	directionEnum = "Enum8('unspecified' = 0, 'ingress' = 1, 'egress' = 2)"
)

// enum8 is an Int8 column that declares its Enum8 type in the block header,
// so the engine reads it without a conversion (ch-go's ColEnum8 says only
// "Enum8", which is not a type the engine can parse).
type enum8 struct {
	proto.ColInt8
	typ proto.ColumnType
}

func (c enum8) Type() proto.ColumnType { return c.typ }

func newEnum8(def string) *enum8 { return &enum8{typ: proto.ColumnType(def)} }

// lowCard is a LowCardinality(String) column (lowcard.go).
func lowCard() *lcStr { return newLCStr() }

func utcMillis() *proto.ColDateTime64 {
	return new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli).WithLocation(time.UTC)
}

// flowBlock holds one insert's flow events as columns, in the order and
// with the types of the flows table (flowColumns). Reused across inserts
// (blockPool; Reset keeps the capacity).
type flowBlock struct {
	eventType                                      *enum8
	flowID                                         proto.ColStr
	hostID, hostName, networkID                    *lcStr
	protocol, icmpType, icmpCode                   proto.ColUInt8
	srcPort, dstPort                               proto.ColUInt16
	direction                                      *enum8
	srcIP, dstIP                                   proto.ColIPv6
	srcType, dstType                               *enum8
	srcID, srcName, dstID, dstName                 *lcStr
	start, end                                     *proto.ColDateTime64
	bytesSent, bytesRecv, packetsSent, packetsRecv proto.ColUInt64
	status                                         proto.ColUInt32
	version                                        proto.ColInt64
	endApprox                                      proto.ColUInt8
	insertedAt                                     *proto.ColDateTime64
	srcASN, dstASN                                 proto.ColUInt32
	srcASName, srcCountry, dstASName, dstCountry   *lcStr
	input                                          proto.Input
	buf                                            proto.Buffer
}

func newFlowBlock() *flowBlock {
	b := &flowBlock{
		eventType: newEnum8(eventTypeEnum), direction: newEnum8(directionEnum),
		srcType: newEnum8(participantEnum), dstType: newEnum8(participantEnum),
		hostID: lowCard(), hostName: lowCard(), networkID: lowCard(),
		srcID: lowCard(), srcName: lowCard(), dstID: lowCard(), dstName: lowCard(),
		start: utcMillis(), end: utcMillis(), insertedAt: utcMillis(),
		srcASName: lowCard(), srcCountry: lowCard(), dstASName: lowCard(), dstCountry: lowCard(),
	}
	b.input = proto.Input{
		{Name: "event_type", Data: b.eventType}, {Name: "flow_id", Data: &b.flowID},
		{Name: "host_id", Data: b.hostID}, {Name: "host_name", Data: b.hostName}, {Name: "network_id", Data: b.networkID},
		{Name: "protocol", Data: &b.protocol}, {Name: "src_port", Data: &b.srcPort}, {Name: "dst_port", Data: &b.dstPort},
		{Name: "icmp_type", Data: &b.icmpType}, {Name: "icmp_code", Data: &b.icmpCode}, {Name: "direction", Data: b.direction},
		{Name: "src_ip", Data: &b.srcIP}, {Name: "src_type", Data: b.srcType}, {Name: "src_entity_id", Data: b.srcID}, {Name: "src_entity_name", Data: b.srcName},
		{Name: "dst_ip", Data: &b.dstIP}, {Name: "dst_type", Data: b.dstType}, {Name: "dst_entity_id", Data: b.dstID}, {Name: "dst_entity_name", Data: b.dstName},
		{Name: "start_ts", Data: b.start}, {Name: "end_ts", Data: b.end},
		{Name: "bytes_sent", Data: &b.bytesSent}, {Name: "bytes_recv", Data: &b.bytesRecv},
		{Name: "packets_sent", Data: &b.packetsSent}, {Name: "packets_recv", Data: &b.packetsRecv},
		{Name: "status", Data: &b.status}, {Name: "version", Data: &b.version},
		{Name: "end_approx", Data: &b.endApprox}, {Name: "inserted_at", Data: b.insertedAt},
		{Name: "src_asn", Data: &b.srcASN}, {Name: "src_as_name", Data: b.srcASName}, {Name: "src_country", Data: b.srcCountry},
		{Name: "dst_asn", Data: &b.dstASN}, {Name: "dst_as_name", Data: b.dstASName}, {Name: "dst_country", Data: b.dstCountry},
	}
	return b
}

// blockPool keeps the flow blocks of finished inserts for the next ones:
// a block's columns and encoded bytes are a batch's size (~15 MB at 50,000
// rows), allocated once instead of at every insert.
type blockPool struct{ list freelist.List[*flowBlock] }

func (p *blockPool) get() *flowBlock  { return p.list.Get(newFlowBlock) }
func (p *blockPool) put(b *flowBlock) { p.list.Put(b) }

// millis is DateTime64(3); the zero time is the epoch (an active flow's end).
func millis(t time.Time) proto.DateTime64 {
	if t.IsZero() {
		return 0
	}
	return proto.DateTime64(t.UnixMilli())
}

func (b *flowBlock) append(e *flowlog.Event, now proto.DateTime64) {
	b.eventType.Append(int8(e.Type))
	b.flowID.Append(e.FlowID)
	b.hostID.Append(e.HostID)
	b.hostName.Append(e.HostName)
	b.networkID.Append(e.NetworkID)
	b.protocol.Append(e.Protocol)
	b.srcPort.Append(e.SrcPort)
	b.dstPort.Append(e.DstPort)
	b.icmpType.Append(e.ICMPType)
	b.icmpCode.Append(e.ICMPCode)
	b.direction.Append(int8(e.Direction))
	b.srcIP.Append(e.Src.IP.As16()) // IPv4 becomes ::ffff:a.b.c.d; the zero Addr ::
	b.srcType.Append(int8(e.Src.Type))
	b.srcID.Append(e.Src.ID)
	b.srcName.Append(e.Src.Name)
	b.dstIP.Append(e.Dst.IP.As16())
	b.dstType.Append(int8(e.Dst.Type))
	b.dstID.Append(e.Dst.ID)
	b.dstName.Append(e.Dst.Name)
	b.start.AppendRaw(millis(e.Start))
	b.end.AppendRaw(millis(e.End))
	b.bytesSent.Append(e.BytesSent)
	b.bytesRecv.Append(e.BytesRecv)
	b.packetsSent.Append(e.PacketsSent)
	b.packetsRecv.Append(e.PacketsRecv)
	b.status.Append(e.Status)
	b.version.Append(e.Version)
	var approx uint8
	if e.EndApprox {
		approx = 1
	}
	b.endApprox.Append(approx)
	b.insertedAt.AppendRaw(now)
	b.srcASN.Append(e.Src.ASN)
	b.srcASName.Append(e.Src.ASName)
	b.srcCountry.Append(e.Src.Country)
	b.dstASN.Append(e.Dst.ASN)
	b.dstASName.Append(e.Dst.ASName)
	b.dstCountry.Append(e.Dst.Country)
}

// encode returns the events as one Native block, inserted at now (the
// Store's clock, which also decides staleness). The bytes are valid until
// the next encode.
func (b *flowBlock) encode(events []flowlog.Event, now time.Time) ([]byte, error) {
	b.input.Reset()
	b.buf.Reset()
	at := millis(now)
	for i := range events {
		b.append(&events[i], at)
	}
	// Version 0: the Native *format* (what INSERT ... FORMAT Native reads)
	// has no block info and no per-column serialization flag; those belong
	// to the native TCP protocol.
	blk := proto.Block{Columns: len(b.input), Rows: len(events)}
	if err := blk.EncodeRawBlock(&b.buf, 0, b.input); err != nil {
		return nil, fmt.Errorf("encoding %d flow events: %w", len(events), err)
	}
	return b.buf.Buf, nil
}
