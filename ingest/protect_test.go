package ingest_test

// Protection against agents that send too much or stop reading, over real
// gRPC and the real engine (protect.go).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/ingest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// One host flooding gets success=false naming the limit; another host on the
// same collector keeps getting success=true, about as fast as when alone.
// The pending-rows bound is small: without a per-host limit the flood would
// fill it and the other host would be answered "overloaded" too.
func TestRateLimitIsPerHost(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: flood, token_sha256: %s}\n  - {host_id: calm, token_sha256: %s}\n",
		auth.HashToken("t-flood"), auth.HashToken("t-calm")))
	set, err := auth.Load(p.identitiesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.ServerTLS(p.certFile, p.keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	a := auth.New(set, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	const rate = 2000
	c := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond, MaxPendingRows: 20_000, FlushRows: 5000, MaxEventsPerEnv: 1000, Auth: a,
		Protect: ingest.Protection{Rate: rate, Burst: 4000}}, grpc.Creds(credentials.NewTLS(cfg)))

	calm := newStreamOn(t, conn(t, p, c.addr, nil, "t-calm"))
	roundTrips := func(label string, n int) []time.Duration {
		t.Helper()
		var lat []time.Duration
		for i := range n {
			start := time.Now()
			r, err := calm.exchange(&pb.FlowEnvelope{Events: hostEvents(fmt.Sprintf("calm-%s-%d", label, i), "calm", "n", 50)})
			if err != nil || !r.Success || r.Error != "" {
				t.Fatalf("calm host (%s, %d): want success, got %+v %v", label, i, r, err)
			}
			lat = append(lat, time.Since(start))
			time.Sleep(20 * time.Millisecond)
		}
		slices.Sort(lat)
		return lat
	}
	alone := roundTrips("alone", 15)

	// The flood: 1000-event envelopes as fast as the acks come back, 32 in
	// flight (more than the pending bound), for as long as the calm host measures.
	floodStream, err := pb.NewFlowServiceClient(conn(t, p, c.addr, nil, "t-flood")).StreamFlows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ok, refused atomic.Int64
	var firstRefusal atomic.Value
	stop := make(chan struct{})
	window := make(chan struct{}, 32)
	floodDone := make(chan error, 2)
	floodStart := time.Now()
	go func() { // sender
		for i := 0; ; i++ {
			select {
			case <-stop:
				floodDone <- floodStream.CloseSend()
				return
			case window <- struct{}{}:
			}
			if err := floodStream.Send(&pb.FlowEnvelope{Events: hostEvents(fmt.Sprintf("flood-%d", i), "flood", "n", 1000)}); err != nil {
				floodDone <- err
				return
			}
		}
	}()
	go func() { // receiver
		for {
			r, err := floodStream.Recv()
			if err == io.EOF {
				floodDone <- nil
				return
			}
			if err != nil {
				floodDone <- err
				return
			}
			<-window
			if r.Success {
				ok.Add(1)
			} else {
				refused.Add(1)
				firstRefusal.CompareAndSwap(nil, r.Error)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // let the flood use up its burst
	flooded := roundTrips("flooded", 15)
	close(stop)
	floodTime := time.Since(floodStart)
	for range 2 {
		if err := <-floodDone; err != nil {
			t.Fatalf("flood stream: %v", err)
		}
	}

	want := fmt.Sprintf("rate limit: host flood exceeds %d events/s, retry later", rate)
	if refused.Load() == 0 || firstRefusal.Load() != want {
		t.Fatalf("flooding host: %d refused (first %q), want success=false with %q", refused.Load(), firstRefusal.Load(), want)
	}
	if ok.Load() == 0 {
		t.Fatalf("flooding host: nothing accepted; its rate's worth should be")
	}
	// Accepted: at most the burst and the refill while it lasted, in
	// envelopes of 1000 events.
	if maxOK := int64(4000+rate*floodTime.Seconds())/1000 + 1; ok.Load() > maxOK {
		t.Fatalf("flooding host: %d envelopes of 1000 accepted, more than burst + rate allow (%d)", ok.Load(), maxOK)
	}
	med := func(l []time.Duration) time.Duration { return l[len(l)/2] }
	t.Logf("calm host: median ack %v alone, %v during the flood (max %v, %v); flood: %d accepted, %d refused",
		med(alone), med(flooded), alone[len(alone)-1], flooded[len(flooded)-1], ok.Load(), refused.Load())
	if med(flooded) > med(alone)+250*time.Millisecond || flooded[len(flooded)-1] > 2*time.Second {
		t.Fatalf("calm host slowed by the flood: median %v -> %v, max %v", med(alone), med(flooded), flooded[len(flooded)-1])
	}
	// Stored: the calm host's 30 envelopes and the flood's accepted ones only.
	if got, want := count(t, c.st), uint64(30*50+ok.Load()*1000); got != want {
		t.Fatalf("stored %d flows, want %d (calm 1500 + %d accepted flood envelopes)", got, want, ok.Load())
	}
}

// A client that sends but never reads its acks fills its receive window; the
// collector ends that stream after the stall timeout with a clear status,
// which frees its stream slot, while another stream keeps its acks flowing.
func TestStreamStallEndsOnlyTheStalledStream(t *testing.T) {
	const stall = time.Second
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond, MaxStreams: 2, Protect: ingest.Protection{StallTimeout: stall}})

	// The smallest windows grpc allows (64 KiB; this also turns off window
	// growth), and acks of ~5 KB each: 20 rejected events whose reasons
	// quote a 200-byte address. About 30 unread acks block the collector.
	cc, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	staller, err := pb.NewFlowServiceClient(cc).StreamFlows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const envelopes = 60
	bigAck := func(i int) *pb.FlowEnvelope {
		evs := events(fmt.Sprintf("stall-%d", i), 20)
		for _, e := range evs {
			e.Src.Ip = strings.Repeat("x", 200)
		}
		return &pb.FlowEnvelope{Events: evs}
	}
	began := time.Now() // the stall cannot be detected before began + stall
	sent := make(chan error, 1)
	go func() {
		for i := range envelopes {
			if err := staller.Send(bigAck(i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	good := newStreamOn(t, dialConn(t, c.addr))
	if r, err := good.exchange(&pb.FlowEnvelope{Events: events("good-0", 5)}); err != nil || !r.Success {
		t.Fatalf("good stream: %+v %v", r, err)
	}
	// Both slots are taken: a third stream is refused while the staller holds one.
	if _, err := newStreamOn(t, dialConn(t, c.addr)).exchange(&pb.FlowEnvelope{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third stream while the staller holds a slot: want ResourceExhausted, got %v", err)
	}
	// Meanwhile the good stream's acks keep coming promptly.
	for i := 1; time.Since(began) < stall/2; i++ {
		t0 := time.Now()
		if r, err := good.exchange(&pb.FlowEnvelope{Events: events(fmt.Sprintf("good-%d", i), 5)}); err != nil || !r.Success {
			t.Fatalf("good stream during the stall: %+v %v", r, err)
		}
		if d := time.Since(t0); d > stall {
			t.Fatalf("good stream's ack took %v during the stall", d)
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("staller's sends: %v", err)
	}

	// The staller's slot comes free once the collector ends its stream.
	var third *agentStream
	for {
		third = newStreamOn(t, dialConn(t, c.addr))
		r, err := third.exchange(&pb.FlowEnvelope{Events: events("third", 5)})
		if err == nil && r.Success {
			break
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("third stream: %+v %v", r, err)
		}
		if time.Since(began) > 10*stall {
			t.Fatalf("the stalled stream still holds its slot after %v", time.Since(began))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(began); d < stall {
		t.Fatalf("a slot came free after %v, before the stall timeout", d)
	}

	// The staller, reading at last, finds the acks that were sent, then the
	// reason its stream ended.
	acks := 0
	for {
		r, err := staller.Recv()
		if err != nil {
			if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "stream stalled: acknowledgements could not be sent for 1s") {
				t.Fatalf("staller after %d acks: want DeadlineExceeded naming the stall, got %v", acks, err)
			}
			break
		}
		if !r.Success || !strings.HasPrefix(r.Error, "rejected 20 of 20 events") {
			t.Fatalf("staller's ack %d: %+v", acks, r)
		}
		acks++
	}
	if acks == 0 || acks >= envelopes {
		t.Fatalf("staller read %d acks of %d envelopes: want some, not all (its window filled)", acks, envelopes)
	}
	t.Logf("staller: %d acks delivered before the stream ended", acks)
	if r, err := good.exchange(&pb.FlowEnvelope{Events: events("good-last", 5)}); err != nil || !r.Success {
		t.Fatalf("good stream after the stall: %+v %v", r, err)
	}
}

// agentStream is a stream that sends one envelope and reads its ack.
type agentStream struct {
	t *testing.T
	s pb.FlowService_StreamFlowsClient
}

func newStreamOn(t *testing.T, cc *grpc.ClientConn) *agentStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := pb.NewFlowServiceClient(cc).StreamFlows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &agentStream{t: t, s: s}
}

func (a *agentStream) exchange(env *pb.FlowEnvelope) (*pb.FlowResponse, error) {
	if err := a.s.Send(env); err != nil && err != io.EOF {
		return nil, err
	}
	return a.s.Recv()
}

func dialConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
