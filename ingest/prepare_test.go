package ingest_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// gatedEnrich holds the preparation of every event of a host named
// "slow..." until released, and counts the events of the others.
type gatedEnrich struct {
	entered chan string // a slow host's preparation began
	release chan struct{}
	once    sync.Once
	others  atomic.Int64
}

func (g *gatedEnrich) releaseAll() { g.once.Do(func() { close(g.release) }) }

func newGatedEnrich() *gatedEnrich {
	return &gatedEnrich{entered: make(chan string, 16), release: make(chan struct{})}
}

func (g *gatedEnrich) enrich(e *flowlog.Event) {
	if len(e.HostID) >= 4 && e.HostID[:4] == "slow" {
		g.entered <- e.HostID
		<-g.release
		return
	}
	g.others.Add(1)
}

// Envelopes are prepared (decoded, validated, enriched) in a bounded number
// of slots across all streams, so that envelopes waiting for the CPU stay
// as received; a stream whose preparation is slow holds one slot only, and
// the others' envelopes keep being answered meanwhile.
func TestPreparationsAreBoundedAndASlowStreamHoldsOneSlot(t *testing.T) {
	g := newGatedEnrich()
	c := start(t, ingest.Options{Preparing: 2, Enrich: g.enrich, Protect: ingest.Protection{MaxStreamsPerHost: -1, MaxStreamsPerAddress: -1}})
	t.Cleanup(g.releaseAll) // before the collector's shutdown, even on failure
	cc := dialConn(t, c.addr)

	// A slow stream sends two envelopes (a window of two): only the first
	// is being prepared, in one slot.
	slow := newStreamOn(t, cc)
	for i := range 2 {
		if err := slow.s.Send(&pb.FlowEnvelope{Events: hostEvents(fmt.Sprintf("slow-%d", i), "slow1", "n", 1)}); err != nil {
			t.Fatal(err)
		}
	}
	<-g.entered
	fast := newStreamOn(t, cc)
	for i := range 3 {
		r, err := fast.exchange(&pb.FlowEnvelope{Events: hostEvents(fmt.Sprintf("fast-%d", i), "fast", "n", 5)})
		wantOK(t, fmt.Sprintf("fast envelope %d while a slow stream is being prepared", i), r, err)
	}

	// A second slow stream takes the other slot; the next envelope waits,
	// unprepared, until a slot is free.
	slow2 := newStreamOn(t, cc)
	if err := slow2.s.Send(&pb.FlowEnvelope{Events: hostEvents("slow2-0", "slow2", "n", 1)}); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	before := g.others.Load()
	waiting := make(chan error, 1)
	go func() {
		r, err := fast.exchange(&pb.FlowEnvelope{Events: hostEvents("fast-wait", "fast", "n", 5)})
		if err == nil && !r.GetSuccess() {
			err = fmt.Errorf("answered %+v", r)
		}
		waiting <- err
	}()
	testutil.WaitFor(t, 0, "an envelope waiting for a slot", func() bool { return c.srv.PreparationsWaiting() == 1 })
	if n := g.others.Load(); n != before {
		t.Fatalf("%d events were prepared beyond the bound of 2 slots", n-before)
	}

	g.releaseAll()
	if err := <-waiting; err != nil {
		t.Fatalf("the envelope that waited for a slot: %v", err)
	}
	for i, s := range []*agentStream{slow, slow, slow2} {
		r, err := s.s.Recv()
		wantOK(t, fmt.Sprintf("slow envelope %d", i), r, err)
	}
}
