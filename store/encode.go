package store

import (
	"cmp"
	"encoding/binary"
	"time"

	"github.com/flowlog/flowlog"
)

// rowBinary appends rejected events in ClickHouse's RowBinary format:
// fixed-width little-endian numbers, length-prefixed strings,
// DateTime64(3) as Int64 milliseconds. (Flow events go as Native blocks,
// native.go.)
type rowBinary struct{ b []byte }

func (w *rowBinary) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *rowBinary) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *rowBinary) i64(v int64)  { w.u64(uint64(v)) }

func (w *rowBinary) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

// ms is DateTime64(3); the zero time is the epoch (an active flow's end).
func (w *rowBinary) ms(t time.Time) {
	if t.IsZero() {
		w.i64(0)
		return
	}
	w.i64(t.UnixMilli())
}

// rejected appends one row in the order of rejectedColumns.
func (w *rowBinary) rejected(r *flowlog.Rejected) {
	w.ms(r.Received)
	w.str(r.Peer)
	w.str(r.HostID)
	w.u32(uint32(r.Index))
	w.str(r.Reason)
	w.str(r.Event)
	w.str(cmp.Or(r.Class, "other"))
}
