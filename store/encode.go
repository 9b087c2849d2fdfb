package store

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/flowlog/flowlog"
)

// rowBinary appends rows in ClickHouse's RowBinary format, the cheapest
// format for the engine to parse: fixed-width little-endian numbers,
// length-prefixed strings, IPv6 as 16 bytes in network order, Enum8 as its
// Int8 value, DateTime64(3) as Int64 milliseconds.
type rowBinary struct{ b []byte }

func (w *rowBinary) u8(v uint8)   { w.b = append(w.b, v) }
func (w *rowBinary) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *rowBinary) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *rowBinary) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *rowBinary) i64(v int64)  { w.u64(uint64(v)) }

func (w *rowBinary) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *rowBinary) ip(a netip.Addr) {
	b := a.As16() // IPv4 becomes ::ffff:a.b.c.d; the zero Addr becomes ::
	w.b = append(w.b, b[:]...)
}

// ms is DateTime64(3); the zero time is the epoch (an active flow's end).
func (w *rowBinary) ms(t time.Time) {
	if t.IsZero() {
		w.i64(0)
		return
	}
	w.i64(t.UnixMilli())
}

// event appends one row in the order of flowColumns, inserted at now (the
// Store's clock, which also decides staleness).
func (w *rowBinary) event(e *flowlog.Event, now time.Time) {
	w.u8(uint8(e.Type))
	w.str(e.FlowID)
	w.str(e.HostID)
	w.str(e.HostName)
	w.str(e.NetworkID)
	w.u8(e.Protocol)
	w.u16(e.SrcPort)
	w.u16(e.DstPort)
	w.u8(e.ICMPType)
	w.u8(e.ICMPCode)
	w.u8(uint8(e.Direction))
	w.participant(&e.Src)
	w.participant(&e.Dst)
	w.ms(e.Start)
	w.ms(e.End)
	w.u64(e.BytesSent)
	w.u64(e.BytesRecv)
	w.u64(e.PacketsSent)
	w.u64(e.PacketsRecv)
	w.u32(e.Status)
	w.i64(e.Version)
	w.bool(e.EndApprox)
	w.ms(now)
}

func (w *rowBinary) bool(v bool) {
	if v {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

func (w *rowBinary) participant(p *flowlog.Participant) {
	w.ip(p.IP)
	w.u8(uint8(p.Type))
	w.str(p.ID)
	w.str(p.Name)
}

// rejected appends one row in the order of rejectedColumns.
func (w *rowBinary) rejected(r *flowlog.Rejected) {
	w.ms(r.Received)
	w.str(r.Peer)
	w.str(r.HostID)
	w.u32(uint32(r.Index))
	w.str(r.Reason)
	w.str(r.Event)
}
