package export

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/flowlog/flowlog/agent/spool"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// flaky is a unit stand-in for a collector: it answers success=false to the
// 3rd envelope of the first stream, and flags every event whose flow_id is
// "bad" as rejected (success=true with an error). It records what it stored.
type flaky struct {
	pb.UnimplementedFlowServiceServer
	mu      sync.Mutex
	streams int
	stored  []string // flow ids, in arrival order, successes only
}

func (f *flaky) StreamFlows(s pb.FlowService_StreamFlowsServer) error {
	f.mu.Lock()
	f.streams++
	first := f.streams == 1
	f.mu.Unlock()
	for n := 1; ; n++ {
		env, err := s.Recv()
		if err != nil {
			return nil
		}
		if first && n == 3 {
			s.Send(&pb.FlowResponse{Success: false, Error: "store unavailable"})
			continue
		}
		resp := &pb.FlowResponse{Success: true}
		f.mu.Lock()
		for i, e := range env.Events {
			if e.FlowId == "bad" {
				resp.Error = "rejected 1 event: [" + string(rune('0'+i)) + "] bad"
				continue
			}
			f.stored = append(f.stored, e.FlowId)
		}
		f.mu.Unlock()
		s.Send(resp)
	}
}

func TestExporterResendsAfterFailureAndDoesNotRetryRejects(t *testing.T) {
	srv := &flaky{}
	g := grpc.NewServer()
	pb.RegisterFlowServiceServer(g, srv)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go g.Serve(ln)
	defer g.Stop()

	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := NewBatcher(sp, 2, log)
	ids := []string{"a", "b", "c", "d", "e", "bad", "f", "g", "h", "i"}
	for _, id := range ids {
		ev := b.Slot()
		ev.FlowId = id
		b.Commit() // every 2 events seal an envelope: 5 envelopes
	}
	e := New(sp, Options{Addr: ln.Addr().String(), Window: 1, BackoffMin: 10 * time.Millisecond, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for sp.Stats().Entries > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	if st := sp.Stats(); st.Entries != 0 {
		t.Fatalf("%d envelopes never acknowledged", st.Entries)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	// Window 1: envelopes 1 and 2 stored, 3 failed, then a new stream
	// resends 3, 4, 5 in order. The rejected event is not resent.
	want := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}
	if len(srv.stored) != len(want) {
		t.Fatalf("stored %v, want %v", srv.stored, want)
	}
	for i := range want {
		if srv.stored[i] != want[i] {
			t.Fatalf("stored %v, want %v (in order)", srv.stored, want)
		}
	}
	if e.Stats.Failed.Load() != 1 || e.Stats.Rejected.Load() != 1 || e.Stats.Reconnects.Load() < 1 {
		t.Fatalf("stats: failed %d rejected %d reconnects %d", e.Stats.Failed.Load(), e.Stats.Rejected.Load(), e.Stats.Reconnects.Load())
	}
	if b.Enqueued.Load() != 10 || e.Stats.RejectedEvents.Load() != 1 || e.Stats.Acked.Load() != 5 ||
		e.Stats.LastAck.Load() == 0 || e.Stats.Connected.Load() {
		t.Fatalf("stats: enqueued %d rejected events %d acked %d last ack %d connected after Run %v", b.Enqueued.Load(),
			e.Stats.RejectedEvents.Load(), e.Stats.Acked.Load(), e.Stats.LastAck.Load(), e.Stats.Connected.Load())
	}
}

func TestRejectedCountReadsTheCollectorsNote(t *testing.T) {
	for note, want := range map[string]uint64{
		"rejected 2 of 500 events: [3] protocol 300 > 255; [7] missing flow_id": 2,
		"rejected 20 of 20 events: [0] missing flow_id; ... and 1 more":         20,
		"something else went wrong":                                             1,
	} {
		if got := rejectedCount(note); got != want {
			t.Errorf("%q: %d, want %d", note, got, want)
		}
	}
}
