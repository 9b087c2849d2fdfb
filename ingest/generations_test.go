package ingest_test

// Both FlowEvent wire generations over real gRPC into the real engine
// (hand-encoded bytes: wirevectors_test.go): every field lands in its
// column, generations mix on one stream and across streams, each stream
// logs the generation its agent speaks, and the metric counts both.

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/wiretest"
	"github.com/flowlog/flowlog/metrics"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// logBuffer is a slog destination tests can read while the server writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wantStored is the domain event f must be stored as, sent in gen: written
// out field by field, independently of the decoder.
func wantStored(gen string, f wiretest.Fields) flowlog.Event {
	part := func(k string) flowlog.Participant {
		p := f[k].(wiretest.Part)
		name := p.Name
		if gen == wiretest.GenLegacy {
			name = ""
		}
		return flowlog.Participant{IP: netip.MustParseAddr(p.IP), Type: flowlog.ParticipantType(p.Type), ID: p.ID, Name: name}
	}
	hostName := f["host_name"].(string)
	if gen == wiretest.GenLegacy {
		hostName = ""
	}
	e := flowlog.Event{
		Type: flowlog.EventType(f["type"].(uint64)), FlowID: f["flow_id"].(string), HostID: f["host_id"].(string),
		HostName: hostName, NetworkID: f["network_id"].(string), Protocol: uint8(f["protocol"].(uint64)),
		SrcPort: uint16(f["src_port"].(uint64)), DstPort: uint16(f["dst_port"].(uint64)),
		ICMPType: uint8(f["icmp_type"].(uint64)), ICMPCode: uint8(f["icmp_code"].(uint64)),
		Direction: flowlog.Direction(f["direction"].(uint64)), Src: part("src"), Dst: part("dst"),
		Start:     time.UnixMilli(f["start_ts_ms"].(int64)).UTC(),
		BytesSent: f["bytes_sent"].(uint64), BytesRecv: f["bytes_recv"].(uint64),
		PacketsSent: f["packets_sent"].(uint64), PacketsRecv: f["packets_recv"].(uint64),
		Status: uint32(f["status"].(uint64)), Version: f["version"].(int64),
	}
	if end := f["end_ts_ms"].(int64); end != 0 {
		e.End = time.UnixMilli(end).UTC()
	}
	return e
}

// rawStream is a stream that sends hand-encoded envelopes.
type rawStream struct {
	t *testing.T
	s grpc.ClientStream
}

func newRawStream(t *testing.T, addr string) *rawStream {
	t.Helper()
	s, err := pb.NewFlowServiceClient(dialConn(t, addr)).StreamFlows(context.Background(), grpc.ForceCodecV2(wiretest.RawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	return &rawStream{t: t, s: s}
}

// exchange sends one envelope of events and returns the ack's error text.
func (r *rawStream) exchange(events ...[]byte) string {
	r.t.Helper()
	if err := r.s.SendMsg(wiretest.RawMsg(wiretest.Envelope(events...))); err != nil {
		r.t.Fatal(err)
	}
	var resp pb.FlowResponse
	if err := r.s.RecvMsg(&resp); err != nil {
		r.t.Fatal(err)
	}
	if !resp.Success {
		r.t.Fatalf("success=false: %s", resp.Error)
	}
	return resp.Error
}

func TestBothWireGenerationsLandInTheirColumns(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewCollector(reg)
	var logs logBuffer
	c := startLogging(t, ingest.Options{FlushInterval: 10 * time.Millisecond, Metrics: m},
		slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Now()

	type sent struct {
		gen string
		f   wiretest.Fields
	}
	var all []sent
	event := func(gen, id string, start bool) []byte {
		f := wiretest.FullEvent(id, now)
		if start {
			f["type"], f["end_ts_ms"] = uint64(1), int64(0)
		}
		all = append(all, sent{gen, f})
		return wiretest.EncodeEvent(gen, f, false)
	}
	// Mixed on one stream, within one envelope and envelope by envelope.
	mixed := newRawStream(t, c.addr)
	if note := mixed.exchange(event(wiretest.GenLegacy, "m-old-destroy", false), event(wiretest.GenCurrent, "m-new-destroy", false),
		event(wiretest.GenLegacy, "m-old-start", true)); note != "" {
		t.Fatalf("mixed envelope: %s", note)
	}
	if note := mixed.exchange(event(wiretest.GenCurrent, "m-new-start", true)); note != "" {
		t.Fatal(note)
	}
	// One generation per stream, side by side.
	old, cur := newRawStream(t, c.addr), newRawStream(t, c.addr)
	for i := range 3 {
		if note := old.exchange(event(wiretest.GenLegacy, "o-"+string(rune('a'+i)), i%2 == 0)); note != "" {
			t.Fatal(note)
		}
		if note := cur.exchange(event(wiretest.GenCurrent, "c-"+string(rune('a'+i)), i%2 == 0)); note != "" {
			t.Fatal(note)
		}
	}

	flows, err := c.st.Flows(context.Background(), flowlog.Filter{}, flowlog.Page{PerPage: 100})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]flowlog.Flow{}
	for _, f := range flows {
		byID[f.FlowID] = f
	}
	if len(byID) != len(all) {
		t.Fatalf("%d flows stored, want %d", len(byID), len(all))
	}
	for _, s := range all {
		want := wantStored(s.gen, s.f)
		got, ok := byID[want.FlowID]
		if !ok || got.Event != want {
			t.Errorf("%s %s:\n got %+v\nwant %+v", s.gen, want.FlowID, got.Event, want)
		}
		if got.Active != (want.Type == flowlog.EventStart) {
			t.Errorf("%s: active %v", want.FlowID, got.Active)
		}
	}
	wantValue(t, "v1.4 events", m.EventsByGeneration.WithLabelValues("v1.4"), 5)
	wantValue(t, "v1.5+ events", m.EventsByGeneration.WithLabelValues("v1.5+"), 5)
	// Three streams open: the mixed one counts for both generations.
	speaking := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "flowlog_streams_wire_generation" {
			for _, mm := range mf.GetMetric() {
				speaking[mm.GetLabel()[0].GetValue()] = mm.GetGauge().GetValue()
			}
		}
	}
	if speaking["v1.4"] != 2 || speaking["v1.5+"] != 2 {
		t.Errorf("flowlog_streams_wire_generation %v, want 2 and 2", speaking)
	}
	// One line per stream and generation: the mixed stream says both.
	out := logs.String()
	if n := strings.Count(out, "agent speaks wire generation v1.4"); n != 2 {
		t.Errorf("%d v1.4 lines, want 2 (mixed and old streams):\n%s", n, out)
	}
	if n := strings.Count(out, "agent speaks wire generation v1.5+"); n != 2 {
		t.Errorf("%d v1.5+ lines, want 2 (mixed and current streams):\n%s", n, out)
	}
}

// Rejections are never silent: a WARN per stream naming the peer, the host
// and the first reasons (at most one per 10 s, the rest summed up when the
// stream ends), and an agent whose every event is rejected shows in
// flowlog_streams_all_rejected and in one WARN.
func TestRejectionsAreLoggedAndAnAllRejectedAgentStandsOut(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewCollector(reg)
	var logs logBuffer
	c := startLogging(t, ingest.Options{FlushInterval: 10 * time.Millisecond, Metrics: m},
		slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Now()
	// v1.5+ bytes with a v1.4 start_ts_ms at 13: fits neither generation.
	neither := func(id string) []byte {
		b := wiretest.EncodeEvent(wiretest.GenCurrent, wiretest.FullEvent(id, now), false)
		return append(b, 0x68, 0x05)
	}
	s := newRawStream(t, c.addr)
	if note := s.exchange(neither("r1"), neither("r2")); !strings.HasPrefix(note, "rejected 2 of 2 events: [0] fits neither wire generation") {
		t.Fatalf("ack: %q", note)
	}
	if got := gatherValue(t, reg, "flowlog_streams_all_rejected"); got != 1 {
		t.Errorf("flowlog_streams_all_rejected = %v, want 1", got)
	}
	wantValue(t, "events of neither generation", m.EventsByGeneration.WithLabelValues("neither"), 2)
	s.exchange(neither("r3")) // within 10 s of the first WARN: summed up later
	out := logs.String()
	if n := strings.Count(out, "every event of this agent is rejected"); n != 1 {
		t.Errorf("%d all-rejected lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `msg="rejected events`); n != 1 || !strings.Contains(out, "host=host-B") ||
		!strings.Contains(out, "peer=127.0.0.1:") || !strings.Contains(out, "first_reasons=") || !strings.Contains(out, "rejected=2") {
		t.Errorf("want one WARN with peer, host, count and reasons:\n%s", out)
	}
	// A valid event: the agent is no longer all rejected.
	if note := s.exchange(wiretest.EncodeEvent(wiretest.GenLegacy, wiretest.FullEvent("ok", now), false)); note != "" {
		t.Fatal(note)
	}
	if got := gatherValue(t, reg, "flowlog_streams_all_rejected"); got != 0 {
		t.Errorf("flowlog_streams_all_rejected = %v after a stored event, want 0", got)
	}
	// The stream ends: what was not logged yet is.
	if err := s.s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := s.s.RecvMsg(new(pb.FlowResponse)); err == nil {
		t.Fatal("stream not ended")
	}
	out = logs.String()
	if n := strings.Count(out, `msg="rejected events`); n != 2 || !strings.Contains(out, "rejected=1 stream_rejected=3 stream_accepted=1") {
		t.Errorf("want the last rejection summed up at the end:\n%s", out)
	}
}
