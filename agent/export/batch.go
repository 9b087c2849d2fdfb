// Package export moves the agent's events to the collector without loss:
// events are batched into envelopes, every envelope is written to the
// on-disk spool first, and one goroutine owns the gRPC stream, sending from
// the spool in order and acknowledging spool entries as the collector's
// in-order answers arrive (docs/design.md pitfall 5 is what this replaces).
package export

import (
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog/agent/spool"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Batcher collects events into envelopes and appends each full envelope to
// the spool. It is used by one goroutine (the agent's pipeline) and reuses
// its event structs, so steady-state batching does not allocate.
type Batcher struct {
	max   int
	spool *spool.Spool
	log   *slog.Logger
	env   pb.FlowEnvelope
	slots []*pb.FlowEvent // reusable events; env.Events is a prefix of them
	buf   []byte

	Dropped  atomic.Uint64 // events lost because the spool was full
	Sealed   atomic.Uint64 // envelopes written to the spool
	Enqueued atomic.Uint64 // events written to the spool

	lastDropLog time.Time // drops are logged at most every dropLogEvery
}

// dropLogEvery bounds the drop log to one line per interval while the spool
// stays full; each line carries the running total.
const dropLogEvery = 5 * time.Second

// NewBatcher returns a batcher sealing envelopes of max events.
func NewBatcher(sp *spool.Spool, max int, log *slog.Logger) *Batcher {
	b := &Batcher{max: max, spool: sp, log: log, slots: make([]*pb.FlowEvent, max)}
	for i := range b.slots {
		b.slots[i] = &pb.FlowEvent{Src: &pb.FlowParticipant{}, Dst: &pb.FlowParticipant{}}
	}
	b.env.Events = b.slots[:0]
	return b
}

// Slot returns the event to fill next. It becomes part of the envelope only
// when Commit is called; an unfilled slot is simply reused.
func (b *Batcher) Slot() *pb.FlowEvent { return b.slots[len(b.env.Events)] }

// Commit adds the last Slot to the envelope, sealing it when full.
func (b *Batcher) Commit() {
	b.env.Events = b.env.Events[:len(b.env.Events)+1]
	if len(b.env.Events) == b.max {
		b.Flush()
	}
}

// Len is the number of events waiting in the open envelope.
func (b *Batcher) Len() int { return len(b.env.Events) }

// Flush seals the open envelope (if any) into the spool. When the spool is
// full the envelope's events are dropped: counted and logged, the only place
// the agent ever loses data.
func (b *Batcher) Flush() {
	n := len(b.env.Events)
	if n == 0 {
		return
	}
	var err error
	b.buf, err = proto.MarshalOptions{}.MarshalAppend(b.buf[:0], &b.env)
	b.env.Events = b.slots[:0]
	if err != nil { // cannot happen for well-formed messages; never silent
		b.Dropped.Add(uint64(n))
		b.log.Error("dropping envelope that cannot be encoded", "events", n, "err", err)
		return
	}
	if _, err := b.spool.Append(b.buf); err != nil {
		total := b.Dropped.Add(uint64(n))
		if time.Since(b.lastDropLog) >= dropLogEvery {
			b.lastDropLog = time.Now()
			b.log.Error("spool full: dropping events", "events", n, "dropped_total", total, "err", err)
		}
		return
	}
	b.Sealed.Add(1)
	b.Enqueued.Add(uint64(n))
}
