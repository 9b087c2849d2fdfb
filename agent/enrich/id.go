package enrich

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"time"
)

// FlowID is the identity of a flow on the wire: the hex of the first 16
// bytes of SHA-256(hostID, ctID as 4 bytes big endian, start as Unix
// nanoseconds, 8 bytes big endian). It is the same for a flow's START and
// DESTROY (given the same start) and differs when the kernel reuses a
// conntrack id for a later flow. 32 characters; one allocation (the string).
func FlowID(hostID string, ctID uint32, start time.Time) string {
	var buf [128]byte // host ids are uuids; longer ones just spill to the heap
	b := append(buf[:0], hostID...)
	b = binary.BigEndian.AppendUint32(b, ctID)
	b = binary.BigEndian.AppendUint64(b, uint64(start.UnixNano()))
	sum := sha256.Sum256(b)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return string(out[:])
}

// Clock hands out event versions: milliseconds since the epoch, strictly
// increasing even for several events within one millisecond and when the
// wall clock steps back (then it counts up from the last value until the
// wall clock catches up). The zero value is ready to use; it is safe for
// concurrent use.
//
// Strictly increasing versions guarantee DESTROY > START for every flow, so
// the collector's merge keeps the DESTROY. Persist Last now and then and
// Observe it on start-up to stay monotonic across restarts with a clock
// that went back.
type Clock struct {
	// Now, if set (before first use), replaces time.Now; tests use it.
	Now  func() time.Time
	last atomic.Int64
}

// Next returns max(now in ms, last+1) and records it.
func (c *Clock) Next() int64 {
	var now int64
	if c.Now != nil {
		now = c.Now().UnixMilli()
	} else {
		now = time.Now().UnixMilli()
	}
	for {
		last := c.last.Load()
		v := now
		if v <= last {
			v = last + 1
		}
		if c.last.CompareAndSwap(last, v) {
			return v
		}
	}
}

// Observe makes every later Next greater than v (e.g. a high-water mark
// persisted by a previous run). Smaller values are ignored.
func (c *Clock) Observe(v int64) {
	for {
		last := c.last.Load()
		if v <= last || c.last.CompareAndSwap(last, v) {
			return
		}
	}
}

// Last is the highest version handed out or observed so far.
func (c *Clock) Last() int64 { return c.last.Load() }
