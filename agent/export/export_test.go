package export

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog"
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

// strict is a collector with limits as flowlog's: an envelope of more than
// maxEvents events ends the stream (InvalidArgument, the limit named), and
// grpc refuses messages over maxBytes (ResourceExhausted).
type strict struct {
	pb.UnimplementedFlowServiceServer
	maxEvents int
	mu        sync.Mutex
	stored    []string
	ended     []string // why streams were ended
}

func (c *strict) StreamFlows(s pb.FlowService_StreamFlowsServer) error {
	for {
		env, err := s.Recv()
		if err != nil {
			c.mu.Lock()
			c.ended = append(c.ended, err.Error())
			c.mu.Unlock()
			return err
		}
		if n := len(env.Events); n > c.maxEvents {
			c.mu.Lock()
			c.ended = append(c.ended, "events")
			c.mu.Unlock()
			return status.Error(codes.InvalidArgument, flowlog.TooManyEvents(n, c.maxEvents))
		}
		c.mu.Lock()
		for _, e := range env.Events {
			c.stored = append(c.stored, e.FlowId)
		}
		c.mu.Unlock()
		s.Send(&pb.FlowResponse{Success: true})
	}
}

// An envelope the collector refuses for its size (more events than its
// --max-events-per-envelope, or more bytes than its message limit) is split
// and resent: the agent learns the limit from the refusal, logs the real
// reason (not "send: EOF"), and delivers every event exactly once per
// acknowledged part, in order.
func TestExporterSplitsWhatTheCollectorRefusesForSize(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxEvents int
		maxBytes  int
		reason    string
	}{
		{"events", 3, 0, "envelope has 10 events: limit is 3 per envelope"},
		{"bytes", 100, 300, "larger than max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &strict{maxEvents: tc.maxEvents}
			var opts []grpc.ServerOption
			if tc.maxBytes > 0 {
				opts = append(opts, grpc.MaxRecvMsgSize(tc.maxBytes))
			}
			g := grpc.NewServer(opts...)
			pb.RegisterFlowServiceServer(g, srv)
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			go g.Serve(ln)
			defer g.Stop()

			sp, err := spool.Open(t.TempDir(), spool.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			b := NewBatcher(sp, 10, log)
			var want []string
			for i := range 30 {
				ev := b.Slot()
				ev.FlowId = fmt.Sprintf("flow-%02d-%s", i, strings.Repeat("x", 40))
				want = append(want, ev.FlowId)
				b.Commit() // 3 envelopes of 10 events
			}
			e := New(sp, Options{Addr: ln.Addr().String(), Window: 2, BackoffMin: 10 * time.Millisecond, Log: log})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- e.Run(ctx) }()
			deadline := time.Now().Add(20 * time.Second)
			for sp.Stats().Entries > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			<-done
			if st := sp.Stats(); st.Entries != 0 {
				t.Fatalf("%d envelopes never acknowledged; log:\n%s", st.Entries, logs.String())
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if !slices.Equal(srv.stored, want) {
				t.Fatalf("stored %v, want %v", srv.stored, want)
			}
			if !strings.Contains(logs.String(), tc.reason) || strings.Contains(logs.String(), "send: EOF") {
				t.Fatalf("log does not give the collector's reason %q:\n%s", tc.reason, logs.String())
			}
		})
	}
}

// syncBuffer is a log sink safe for the exporter's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
