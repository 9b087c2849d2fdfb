package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
	"github.com/flowlog/flowlog/store"
)

// The real engine, shared by the tests of this binary (one directory per
// process); each test uses its own database. With
// FLOWLOG_TEST_CLICKHOUSE_URL set, a ClickHouse server (testutil.OpenEngine).
var (
	engine  store.Engine
	cluster string
)

func TestMain(m *testing.M) { os.Exit(testutil.RunWithEngine(m, "", 3, &engine, &cluster)) }

type collector struct {
	st   *store.Store
	srv  *ingest.Server
	g    *grpc.Server
	addr string
}

func start(t *testing.T, o ingest.Options, extra ...grpc.ServerOption) *collector {
	t.Helper()
	return startLogging(t, o, slog.New(slog.NewTextHandler(io.Discard, nil)), extra...)
}

// startLogging is start with the collector's logs going to log.
func startLogging(t *testing.T, o ingest.Options, log *slog.Logger, extra ...grpc.ServerOption) *collector {
	t.Helper()
	testutil.NeedEngine(t)
	st, err := store.OpenEngine(context.Background(), engine, store.Options{Database: t.Name(), Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	srv := ingest.New(st, o, log)
	g := srv.GRPCServer(extra...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	c := &collector{st: st, srv: srv, g: g, addr: ln.Addr().String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx, g)
	})
	return c
}

func dial(t *testing.T, addr string) pb.FlowService_StreamFlowsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := pb.NewFlowServiceClient(conn).StreamFlows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

func events(prefix string, n int) []*pb.FlowEvent {
	now := time.Now().UnixMilli()
	evs := make([]*pb.FlowEvent, n)
	for i := range evs {
		evs[i] = &pb.FlowEvent{
			Type: pb.EventType_EVENT_START, FlowId: fmt.Sprintf("%s-%d", prefix, i), HostId: "h", NetworkId: "n",
			Protocol: 17, SrcPort: 5000, DstPort: 53,
			Src:       &pb.FlowParticipant{Ip: "10.1.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE},
			Dst:       &pb.FlowParticipant{Ip: "10.1.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE},
			StartTsMs: now, Version: now,
		}
	}
	return evs
}

func count(t *testing.T, st *store.Store) uint64 {
	t.Helper()
	var rows []struct {
		N uint64 `json:"n"`
	}
	if err := st.QueryRows(context.Background(), "SELECT count() AS n FROM "+st.Database()+".flows FINAL", &rows); err != nil {
		t.Fatal(err)
	}
	return rows[0].N
}

// When the store cannot commit, no envelope is acknowledged as a success;
// once it can again, the agent's retry lands exactly once.
func TestStoreFailureIsNeverAckedAsSuccess(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond, InsertTimeout: 5 * time.Second})
	ctx := context.Background()
	s := dial(t, c.addr)
	env := &pb.FlowEnvelope{Events: events("a", 10)}
	if err := c.st.Exec(ctx, "DETACH TABLE "+c.st.Database()+".flows"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Send(env); err != nil {
			t.Fatal(err)
		}
		r, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.Success || !strings.Contains(r.Error, "store unavailable, retry") {
			t.Fatalf("store down: want success=false naming the store, got %+v", r)
		}
	}
	if err := c.st.Exec(ctx, "ATTACH TABLE "+c.st.Database()+".flows"); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(env); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || !r.Success {
		t.Fatalf("store back: want success, got %+v %v", r, err)
	}
	if n := count(t, c.st); n != 10 {
		t.Fatalf("want 10 flows after the retry, got %d", n)
	}
}

// Invalid events are answered by index and reason, kept in rejected_events,
// and do not stop their valid neighbours.
func TestInvalidEventsAreRejectedByIndexAndKept(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond})
	evs := events("v", 5)
	evs[1].Protocol = 300
	evs[3].FlowId = ""
	s := dial(t, c.addr)
	if err := s.Send(&pb.FlowEnvelope{Events: evs}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	want := "rejected 2 of 5 events: [1] protocol 300 > 255; [3] missing flow_id"
	if !r.Success || r.Error != want {
		t.Fatalf("got %+v, want success with error %q", r, want)
	}
	if n := count(t, c.st); n != 3 {
		t.Fatalf("want the 3 valid events stored, got %d", n)
	}
	var rej []struct {
		Idx    int    `json:"idx"`
		Reason string `json:"reason"`
		Event  string `json:"event"`
	}
	if err := c.st.QueryRows(context.Background(), "SELECT idx, reason, event FROM "+c.st.Database()+".rejected_events ORDER BY idx", &rej); err != nil {
		t.Fatal(err)
	}
	if len(rej) != 2 || rej[0].Idx != 1 || rej[1].Reason != "missing flow_id" || !strings.Contains(strings.ReplaceAll(rej[0].Event, " ", ""), `"protocol":300`) {
		t.Fatalf("rejected table: %+v", rej)
	}
}

// A client over a limit gets a clear status; other streams keep working.
func TestLimitsEndOnlyTheOffendingStream(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond, MaxEventsPerEnv: 100, MaxMessageBytes: 64 << 10, MaxStreams: 3})
	good := dial(t, c.addr)
	roundTrip := func() {
		t.Helper()
		if err := good.Send(&pb.FlowEnvelope{Events: events(fmt.Sprint(time.Now().UnixNano()), 5)}); err != nil {
			t.Fatal(err)
		}
		if r, err := good.Recv(); err != nil || !r.Success {
			t.Fatalf("well-behaved stream: %+v %v", r, err)
		}
	}
	roundTrip()

	tooMany := dial(t, c.addr)
	tooMany.Send(&pb.FlowEnvelope{Events: events("many", 101)})
	_, err := tooMany.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "limit is 100 per envelope") {
		t.Fatalf("too many events: want InvalidArgument naming the limit, got %v", err)
	}
	roundTrip()

	tooBig := dial(t, c.addr)
	big := events("big", 50)
	for _, e := range big {
		e.HostName = strings.Repeat("b", 250) // still valid, but 50 of them pass 12 KB... make it larger:
	}
	big = append(big, big...)
	big = append(big, big...)
	big = append(big, big...) // 400 events, ~140 KB
	tooBig.Send(&pb.FlowEnvelope{Events: big})
	_, err = tooBig.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("oversized message: want ResourceExhausted, got %v", err)
	}
	roundTrip()

	// good is 1 stream; two more fill the limit of 3; the fourth is refused.
	s2, s3 := dial(t, c.addr), dial(t, c.addr)
	for _, s := range []pb.FlowService_StreamFlowsClient{s2, s3} {
		s.Send(&pb.FlowEnvelope{})
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	s4 := dial(t, c.addr)
	s4.Send(&pb.FlowEnvelope{})
	_, err = s4.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many concurrent streams") {
		t.Fatalf("stream limit: want ResourceExhausted, got %v", err)
	}
	roundTrip()
}

// On shutdown every envelope received is committed and answered before the
// stream ends with Unavailable.
func TestShutdownAnswersWhatWasReceived(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: time.Hour, FlushRows: 1 << 30}) // only shutdown flushes
	s := dial(t, c.addr)
	const n = 20
	for i := 0; i < n; i++ {
		if err := s.Send(&pb.FlowEnvelope{Events: events(fmt.Sprintf("s%d", i), 10)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the collector receive them
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.srv.Shutdown(ctx, c.g)
		close(done)
	}()
	for i := 0; i < n; i++ {
		r, err := s.Recv()
		if err != nil || !r.Success {
			t.Fatalf("ack %d: %+v %v", i, r, err)
		}
	}
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("after the acks: want Unavailable, got %v", err)
	}
	<-done
	if got := count(t, c.st); got != n*10 {
		t.Fatalf("want %d flows committed, got %d", n*10, got)
	}
}

var _ flowlog.Store = (*store.Store)(nil)

// An idle collector acks at once: with an hour's flush interval the
// envelope is still committed and answered (before, it waited the interval).
func TestIdleCollectorAcksWithoutWaitingForTheFlushInterval(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: time.Hour})
	s := newStreamOn(t, dialConn(t, c.addr))
	for i := range 3 {
		if r, err := s.exchange(&pb.FlowEnvelope{Events: events(fmt.Sprintf("idle-%d", i), 5)}); err != nil || !r.Success {
			t.Fatalf("envelope %d: %+v %v", i, r, err)
		}
	}
	if got := count(t, c.st); got != 15 {
		t.Fatalf("stored %d flows, want 15", got)
	}
}
