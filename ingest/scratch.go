package ingest

import (
	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/freelist"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// scratch is the memory one envelope's preparation works in, reused by the
// next: the decoded events and participants (fastdecode.go) and the
// converted events until the group commit has copied them into its batch
// (prepare). Made anew for every envelope, they were two thirds of what the
// collector allocated under the bench (~860 bytes an event, 380 MB/s), and
// so the pace of its garbage collections (BENCHMARKS.md "Go heap under
// load"). Preparations run in s.prep's slots: no more scratches exist than
// slots were ever busy at once.
type scratch struct {
	evs    []pb.FlowEvent
	ps     []pb.FlowParticipant
	ptrs   []*pb.FlowEvent
	wire   []wireEvent
	n      int // of the decoding arrays, what the last envelope used
	events []flowlog.Event
}

// scratchMaxEvents: a scratch grown for a larger envelope (up to
// MaxEventsPerEnv) is dropped after it, not kept: four slots' worth of
// 10,000-event scratches would hold 35 MB for good.
const scratchMaxEvents = 4096

// decoding returns zeroed arrays for an envelope of n events. A nil scratch
// (an envelope decoded outside a slot: admission, tests) allocates them.
func (sc *scratch) decoding(n int) ([]pb.FlowEvent, []pb.FlowParticipant, []*pb.FlowEvent, []wireEvent) {
	if sc == nil {
		return newDecoding(n)
	}
	if len(sc.evs) < n {
		sc.evs, sc.ps, sc.ptrs, sc.wire = newDecoding(n)
	}
	sc.n = max(sc.n, n)
	return sc.evs[:n], sc.ps[:2*n], sc.ptrs[:n], sc.wire[:n]
}

func newDecoding(n int) ([]pb.FlowEvent, []pb.FlowParticipant, []*pb.FlowEvent, []wireEvent) {
	return make([]pb.FlowEvent, n), make([]pb.FlowParticipant, 2*n), make([]*pb.FlowEvent, n), make([]wireEvent, n)
}

// converted returns an empty slice with room for n events (a nil scratch:
// a new one).
func (sc *scratch) converted(n int) []flowlog.Event {
	if sc == nil {
		return make([]flowlog.Event, 0, n)
	}
	if cap(sc.events) < n {
		sc.events = make([]flowlog.Event, 0, n)
	}
	return sc.events[:0]
}

// scratchPool keeps the scratches of finished preparations.
type scratchPool struct{ list freelist.List[*scratch] }

func (p *scratchPool) get() *scratch { return p.list.Get(func() *scratch { return &scratch{} }) }

// put takes back a scratch nothing refers to any more, emptied so that
// it keeps no strings alive.
func (p *scratchPool) put(sc *scratch) {
	if len(sc.evs) > scratchMaxEvents || cap(sc.events) > scratchMaxEvents {
		return
	}
	clear(sc.evs[:sc.n])
	clear(sc.ps[:2*sc.n])
	clear(sc.ptrs[:sc.n])
	clear(sc.wire[:sc.n])
	clear(sc.events[:cap(sc.events)])
	sc.n = 0
	p.list.Put(sc)
}
