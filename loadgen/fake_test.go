package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog/proto/flow"
)

// fakeCollector is a FlowService that validates every event strictly,
// answers each envelope in order, and computes from what it acked with
// success=true what the store would hold, to compare with Run's Expect.
type fakeCollector struct {
	flow.UnimplementedFlowServiceServer
	failEvery  int // > 0: answer success=false to every failEvery-th envelope of a stream, the first time it comes
	breakAfter int // > 0: end every stream with an error status at its envelope breakAfter+1

	mu                       sync.Mutex
	received, receivedEvents int64
	acked, ackedEvents       int64
	failed, failedEvents     int64
	problems                 []string
	failedOnce               map[string]bool // first event's key of envelopes answered success=false
	starts                   map[string]*flow.FlowEvent
	destroys                 map[string]*flow.FlowEvent
	bytesSent, bytesRecv     uint64
	networks                 map[string]bool
	protocols, types, dirs   map[uint32]int
	v6                       int
}

func newFake() *fakeCollector {
	return &fakeCollector{
		failedOnce: map[string]bool{},
		starts:     map[string]*flow.FlowEvent{},
		destroys:   map[string]*flow.FlowEvent{},
		networks:   map[string]bool{},
		protocols:  map[uint32]int{},
		types:      map[uint32]int{},
		dirs:       map[uint32]int{},
	}
}

// serve starts a real gRPC server on loopback and returns its address.
func (f *fakeCollector) serve(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	flow.RegisterFlowServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func (f *fakeCollector) StreamFlows(st flow.FlowService_StreamFlowsServer) error {
	n := 0
	for {
		env, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		n++
		if f.breakAfter > 0 && n > f.breakAfter {
			return status.Error(codes.Internal, "fake collector breaks the stream")
		}
		ok := f.handle(env, n)
		resp := &flow.FlowResponse{Success: ok}
		if !ok {
			resp.Error = "store unavailable, retry"
		}
		if err := st.Send(resp); err != nil {
			return err
		}
	}
}

func (f *fakeCollector) problem(format string, args ...any) {
	if len(f.problems) < 20 {
		f.problems = append(f.problems, fmt.Sprintf(format, args...))
	}
}

// handle validates an envelope and decides its answer.
func (f *fakeCollector) handle(env *flow.FlowEnvelope, n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	evs := env.GetEvents()
	f.received++
	f.receivedEvents += int64(len(evs))
	now := time.Now()
	for i, ev := range evs {
		if err := validate(ev, now); err != nil {
			f.problem("event %d: %v", i, err)
		}
	}
	if len(evs) == 0 {
		f.problem("empty envelope")
		return true
	}
	key := evs[0].GetFlowId() + "/" + evs[0].GetType().String()
	if f.failEvery > 0 && n%f.failEvery == 0 && !f.failedOnce[key] {
		f.failedOnce[key] = true
		f.failed++
		f.failedEvents += int64(len(evs))
		return false
	}
	f.acked++
	f.ackedEvents += int64(len(evs))
	for _, ev := range evs {
		f.account(ev)
	}
	return true
}

// account records an acked event and checks it against its flow's other event.
func (f *fakeCollector) account(ev *flow.FlowEvent) {
	id := ev.GetFlowId()
	f.networks[ev.GetNetworkId()] = true
	f.protocols[ev.GetProtocol()]++
	f.dirs[uint32(ev.GetDirection())]++
	f.types[uint32(ev.GetSrc().GetType())]++
	if netip.MustParseAddr(ev.GetSrc().GetIp()).Is6() {
		f.v6++
	}
	switch ev.GetType() {
	case flow.EventType_EVENT_START:
		if f.starts[id] != nil {
			f.problem("flow %s: START acked twice", id)
		}
		f.starts[id] = ev
	case flow.EventType_EVENT_DESTROY:
		if f.destroys[id] != nil {
			f.problem("flow %s: DESTROY acked twice", id)
		}
		f.destroys[id] = ev
		f.bytesSent += ev.GetBytesSent()
		f.bytesRecv += ev.GetBytesRecv()
		s := f.starts[id]
		if s == nil {
			f.problem("flow %s: DESTROY acked before its START", id)
			return
		}
		if ev.GetVersion() <= s.GetVersion() {
			f.problem("flow %s: DESTROY version %d <= START version %d", id, ev.GetVersion(), s.GetVersion())
		}
		if ev.GetHostId() != s.GetHostId() || ev.GetNetworkId() != s.GetNetworkId() ||
			ev.GetProtocol() != s.GetProtocol() || ev.GetSrcPort() != s.GetSrcPort() || ev.GetDstPort() != s.GetDstPort() ||
			ev.GetIcmpType() != s.GetIcmpType() || ev.GetIcmpCode() != s.GetIcmpCode() || ev.GetDirection() != s.GetDirection() ||
			ev.GetSrc().GetIp() != s.GetSrc().GetIp() || ev.GetDst().GetIp() != s.GetDst().GetIp() ||
			ev.GetSrc().GetId() != s.GetSrc().GetId() || ev.GetDst().GetId() != s.GetDst().GetId() ||
			ev.GetStartTsMs() != s.GetStartTsMs() {
			f.problem("flow %s: DESTROY does not match its START:\n%v\n%v", id, s, ev)
		}
	}
}

// validate applies the strict rules a collector may enforce.
func validate(ev *flow.FlowEvent, now time.Time) error {
	for name, v := range map[string]string{"flow_id": ev.GetFlowId(), "host_id": ev.GetHostId(), "network_id": ev.GetNetworkId()} {
		if v == "" {
			return fmt.Errorf("empty %s", name)
		}
	}
	for _, v := range []string{ev.GetFlowId(), ev.GetHostId(), ev.GetHostName(), ev.GetNetworkId(),
		ev.GetSrc().GetId(), ev.GetSrc().GetName(), ev.GetDst().GetId(), ev.GetDst().GetName()} {
		if len(v) >= 256 {
			return fmt.Errorf("string of %d bytes", len(v))
		}
	}
	if t := ev.GetType(); t != flow.EventType_EVENT_START && t != flow.EventType_EVENT_DESTROY {
		return fmt.Errorf("type %v", t)
	}
	if ev.GetProtocol() > 255 || ev.GetSrcPort() > 65535 || ev.GetDstPort() > 65535 || ev.GetIcmpType() > 255 || ev.GetIcmpCode() > 255 {
		return fmt.Errorf("field out of range: %v", ev)
	}
	switch ev.GetProtocol() {
	case 6, 17:
		if ev.GetDstPort() == 0 || ev.GetSrcPort() == 0 || ev.GetIcmpType() != 0 {
			return fmt.Errorf("TCP/UDP ports: %v", ev)
		}
	case 1:
		if ev.GetDstPort() != 0 || ev.GetSrcPort() != 0 || ev.GetIcmpType() == 0 && ev.GetIcmpCode() == 0 {
			return fmt.Errorf("ICMP fields: %v", ev)
		}
	default:
		return fmt.Errorf("unexpected protocol %d", ev.GetProtocol())
	}
	if d := ev.GetDirection(); d != flow.Direction_DIR_INGRESS && d != flow.Direction_DIR_EGRESS {
		return fmt.Errorf("direction %v", d)
	}
	for _, p := range []*flow.FlowParticipant{ev.GetSrc(), ev.GetDst()} {
		if p == nil {
			return errors.New("missing participant")
		}
		if _, err := netip.ParseAddr(p.GetIp()); err != nil {
			return err
		}
		if p.GetType() < flow.ParticipantType_PARTICIPANT_NODE || p.GetType() > flow.ParticipantType_PARTICIPANT_EXTERNAL {
			return fmt.Errorf("participant type %v", p.GetType())
		}
	}
	if ev.GetVersion() <= 0 {
		return fmt.Errorf("version %d", ev.GetVersion())
	}
	near := func(ms int64) bool {
		t := time.UnixMilli(ms)
		return t.After(now.Add(-time.Hour)) && t.Before(now.Add(time.Minute))
	}
	if !near(ev.GetStartTsMs()) {
		return fmt.Errorf("start_ts_ms %d not near now", ev.GetStartTsMs())
	}
	if ev.GetType() == flow.EventType_EVENT_START {
		if ev.GetEndTsMs() != 0 || ev.GetBytesSent() != 0 || ev.GetBytesRecv() != 0 || ev.GetPacketsSent() != 0 || ev.GetPacketsRecv() != 0 {
			return fmt.Errorf("START with end or counters: %v", ev)
		}
	} else {
		if !near(ev.GetEndTsMs()) || ev.GetEndTsMs() < ev.GetStartTsMs() {
			return fmt.Errorf("DESTROY end_ts_ms %d (start %d)", ev.GetEndTsMs(), ev.GetStartTsMs())
		}
		if ev.GetPacketsSent() == 0 || ev.GetBytesSent() < ev.GetPacketsSent()*20 || ev.GetBytesRecv() < ev.GetPacketsRecv()*20 {
			return fmt.Errorf("implausible counters: %v", ev)
		}
	}
	return nil
}

// nullCollector acks every envelope at once without looking at it.
type nullCollector struct {
	flow.UnimplementedFlowServiceServer
}

func (n *nullCollector) serve(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	flow.RegisterFlowServiceServer(srv, n)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func (n *nullCollector) StreamFlows(st flow.FlowService_StreamFlowsServer) error {
	ok := &flow.FlowResponse{Success: true}
	for {
		if _, err := st.Recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := st.Send(ok); err != nil {
			return err
		}
	}
}
