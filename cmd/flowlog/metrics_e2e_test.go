package main

// Metrics and probes: GET /metrics and /readyz of `flowlog serve` through
// the built binary, the readiness rules of the collector, and the agent's
// --metrics-addr endpoints over an in-process collector.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/agent/export"
	"github.com/flowlog/flowlog/agent/spool"
	"github.com/flowlog/flowlog/ingest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// metricsEvents are n valid START events and one invalid one (protocol 300).
func metricsEvents(prefix string, n int) []*pb.FlowEvent {
	now := time.Now().UnixMilli()
	evs := make([]*pb.FlowEvent, 0, n+1)
	for i := range n {
		evs = append(evs, &pb.FlowEvent{
			Type: pb.EventType_EVENT_START, FlowId: fmt.Sprintf("%s-%d", prefix, i), HostId: "h", NetworkId: "metrics",
			Protocol: 6, SrcPort: 40000, DstPort: 443,
			Src:       &pb.FlowParticipant{Ip: "10.7.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE},
			Dst:       &pb.FlowParticipant{Ip: "10.7.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE},
			StartTsMs: now, Version: now,
		})
	}
	bad := &pb.FlowEvent{Type: pb.EventType_EVENT_START, FlowId: prefix + "-bad", HostId: "h", NetworkId: "metrics", Protocol: 300}
	return append(evs, bad)
}

func httpText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// wantSamples wants each "name{labels} value" line in the exposition text.
func wantSamples(t *testing.T, text string, samples ...string) {
	t.Helper()
	for _, s := range samples {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s) + `$`).MatchString(text) {
			t.Errorf("/metrics lacks %q", s)
		}
	}
}

func TestMetricsEndpointOfServe(t *testing.T) {
	c := serve(t, t.TempDir())
	if code, body := httpText(t, c.http+"/readyz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/readyz after start: %d %s", code, body)
	}
	a := connect(t, c.grpc)
	envs := []*pb.FlowEnvelope{{Events: metricsEvents("a", 3)}, {Events: metricsEvents("b", 4)}}
	for i, r := range a.exchange(t, envs) {
		if !r.Success || !strings.HasPrefix(r.Error, "rejected 1 of") {
			t.Fatalf("ack %d: %+v", i, r)
		}
	}
	if code, _ := get(t, c.http, "/api/v1/flows?network_id=metrics"); code != 200 {
		t.Fatalf("flows: %d", code)
	}
	code, text := httpText(t, c.http+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	wantSamples(t, text,
		"flowlog_events_received_total 9",
		"flowlog_events_stored_total 7",
		`flowlog_events_rejected_total{reason="out_of_range"} 2`,
		`flowlog_events_rejected_total{reason="missing_field"} 0`,
		`flowlog_envelopes_acked_total{result="success"} 2`,
		`flowlog_envelopes_acked_total{result="overloaded"} 0`,
		`flowlog_inserts_total{result="error"} 0`,
		`flowlog_store_errors_total{op="insert"} 0`,
		"flowlog_streams_open 1",
		"flowlog_rows_pending_commit 0",
		"flowlog_tail_subscribers 0",
		`flowlog_http_requests_total{code="200",route="GET /readyz"} 1`,
		`flowlog_http_requests_total{code="200",route="GET /api/v1/flows"} 1`,
	)
	for _, family := range []string{"flowlog_insert_batch_rows_count", "flowlog_insert_duration_seconds_bucket", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(text, family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
	if code, _ := httpText(t, c.http+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	c.stop(t)
}

type pingStore struct {
	flowlog.Store
	err error
}

func (s *pingStore) Ping(context.Context) error { return s.err }

// /readyz is 200 only while the store answers, the gRPC listener serves and
// shutdown has not begun; each refusal names its reason.
func TestMetricsReadinessRules(t *testing.T) {
	st := &pingStore{}
	r := &readiness{store: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	probe := func(wantCode int, wantBody string) {
		t.Helper()
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		if w.Code != wantCode || !strings.Contains(w.Body.String(), wantBody) {
			t.Fatalf("/readyz: %d %s, want %d with %q", w.Code, w.Body.String(), wantCode, wantBody)
		}
	}
	probe(503, "gRPC listener not serving")

	srv := ingest.New(st, ingest.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g := srv.GRPCServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.serveGRPC(g, ln) }()
	deadline := time.Now().Add(5 * time.Second)
	for !r.grpcServing.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	probe(200, `"ok"`)
	st.err = errors.New("engine gone")
	probe(503, "store not answering: engine gone")
	st.err = nil
	r.stopping.Store(true)
	probe(503, "collector shutting down")
	r.stopping.Store(false)
	g.Stop()
	<-served
	probe(503, "gRPC listener not serving")
}

// memStore is a store that keeps nothing and always succeeds.
type memStore struct{ flowlog.Store }

func (memStore) Insert(context.Context, *flowlog.Batch) error { return nil }
func (memStore) Ping(context.Context) error                   { return nil }

// The agent's /metrics reads the spool's, batcher's and exporter's own
// counters; /readyz is 503 until a stream is open, then 200 once acked.
func TestMetricsAgentEndpoints(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := ingest.New(memStore{}, ingest.Options{FlushInterval: 5 * time.Millisecond}, log)
	g := srv.GRPCServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	defer g.Stop()

	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	b := export.NewBatcher(sp, 10, log)
	for _, ev := range metricsEvents("ag", 4) {
		slot := b.Slot()
		proto.Reset(slot)
		proto.Merge(slot, ev)
		b.Commit()
	}
	b.Flush()
	exp := export.New(sp, export.Options{Addr: ln.Addr().String(), BackoffMin: 10 * time.Millisecond, Log: log})
	h := httptest.NewServer(agentMetricsHandler(agentParts{spool: sp, batch: b, exp: exp}, log))
	defer h.Close()

	if code, body := httpText(t, h.URL+"/readyz"); code != 503 || !strings.Contains(body, "not connected") {
		t.Fatalf("/readyz before the exporter runs: %d %s", code, body)
	}
	if code, _ := httpText(t, h.URL+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exp.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for exp.Stats.Acked.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if code, body := httpText(t, h.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz after the ack: %d %s", code, body)
	}
	_, text := httpText(t, h.URL+"/metrics")
	wantSamples(t, text,
		"flowlog_agent_events_enqueued_total 5",
		"flowlog_agent_events_dropped_total 0",
		"flowlog_agent_envelopes_sent_total 1",
		"flowlog_agent_envelopes_acked_total 1",
		"flowlog_agent_envelopes_failed_total 0",
		"flowlog_agent_events_rejected_total 1",
		"flowlog_agent_spool_entries 0",
		"flowlog_agent_collector_connected 1",
	)
	if !strings.Contains(text, "go_goroutines") {
		t.Error("/metrics lacks the Go runtime collector")
	}
	if err := agentReady(exp, sp, time.Now()); err != nil {
		t.Fatalf("ready with nothing to send: %v", err)
	}
}

// metricValue is the value of one sample line "name{labels} value" (-1 when
// absent).
func metricValue(text, sample string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	var v float64
	fmt.Sscan(m[1], &v)
	return v
}

// The agent binary with --metrics-addr, against the real kernel: conntrack
// events by kind, verdicts and acks are exported, and /readyz is 200 once
// it delivers.
func TestMetricsAgentThroughTheBinary(t *testing.T) {
	m := newMesh(t)
	c := serve(t, t.TempDir())
	addr := freePort(t)
	startAgent(t, m, c.grpc, t.TempDir(), "--metrics-addr", addr)
	tcpExchange(t, m.a, m.b, m.bIP, 9100, 1_000, 1_000)
	finishedFlows(t, m, c.http, 1, 60*time.Second)

	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	var text string
	for {
		_, text = httpText(t, base+"/metrics")
		if metricValue(text, "flowlog_agent_spool_entries") == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for sample, min := range map[string]float64{
		`flowlog_agent_conntrack_events_total{kind="new"}`:     1,
		`flowlog_agent_conntrack_events_total{kind="destroy"}`: 1,
		`flowlog_agent_flows_total{verdict="keep"}`:            2,
		"flowlog_agent_events_enqueued_total":                  2,
		"flowlog_agent_envelopes_acked_total":                  1,
		"flowlog_agent_collector_connected":                    1,
		"flowlog_agent_last_ack_timestamp_seconds":             1,
	} {
		if v := metricValue(text, sample); v < min {
			t.Errorf("%s = %v, want at least %v", sample, v, min)
		}
	}
	for _, sample := range []string{"flowlog_agent_events_dropped_total", "flowlog_agent_envelopes_failed_total", "flowlog_agent_spool_entries"} {
		if v := metricValue(text, sample); v != 0 {
			t.Errorf("%s = %v, want 0", sample, v)
		}
	}
	if code, body := httpText(t, base+"/readyz"); code != 200 {
		t.Errorf("agent /readyz: %d %s", code, body)
	}
	if code, _ := httpText(t, base+"/healthz"); code != 200 {
		t.Errorf("agent /healthz: %d", code)
	}
}
