package ingest

import (
	"testing"
	"time"

	pb "github.com/flowlog/flowlog/proto/flow"
)

// ackedStream takes the answers of an ackQueue under test.
type ackedStream struct {
	pb.FlowService_StreamFlowsServer
	sent int
}

func (a *ackedStream) Send(*pb.FlowResponse) error { a.sent++; return nil }

// An agent idle between two flushes holds no map of its strings: the
// stream's interner goes once every envelope has been answered for
// internIdle, and the next envelope starts a new one. A busy agent's next
// envelope, sooner, still finds it.
func TestInternerDroppedOnceAnswered(t *testing.T) {
	s := &Server{}
	s.opts.defaults()
	stream := &ackedStream{}
	q := &ackQueue{s: s, stream: stream, room: make(chan struct{}, 4)}
	in := q.intern.get()
	in.bytes([]byte("10.0.0.1"))
	if q.intern.get() != in {
		t.Fatal("an interner in use was replaced")
	}
	tk := &ticket{done: make(chan struct{})}
	q.room <- struct{}{}
	q.push(tk)
	close(tk.done)
	if err := q.wait(); err != nil || stream.sent != 1 {
		t.Fatalf("answer: %v, %d sent", err, stream.sent)
	}
	if q.intern.p.Load() != in {
		t.Fatal("the interner went at once: a busy agent's next envelope would start afresh")
	}
	deadline := time.Now().Add(internIdle + 10*time.Second)
	for q.intern.p.Load() != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if q.intern.p.Load() != nil {
		t.Fatalf("the stream keeps its interner with every envelope answered for %s", internIdle+10*time.Second)
	}
	if next := q.intern.get(); next == nil || next == in || len(next.m) != 0 {
		t.Fatal("the next envelope does not start a new interner")
	}
}
