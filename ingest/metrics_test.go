package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/metrics"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// histogramCount is how many observations h has.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func wantValue(t *testing.T, name string, c prometheus.Collector, want float64) {
	t.Helper()
	if got := testutil.ToFloat64(c); got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// After known traffic the collector's counters hold exact values: events
// received, stored and rejected by reason class, envelopes acked by result,
// inserts and their batch sizes, store errors; and the gauges come back to
// zero once everything is answered.
func TestMetricsCountIngestExactly(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewCollector(reg)
	c := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond, InsertTimeout: 5 * time.Second, Metrics: m})
	s := dial(t, c.addr)

	// One envelope of 5 events, 2 invalid for different reasons.
	evs := events("m", 5)
	evs[1].Protocol = 300 // out_of_range
	evs[3].FlowId = ""    // missing_field
	if err := s.Send(&pb.FlowEnvelope{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || !r.Success {
		t.Fatalf("ack: %+v %v", r, err)
	}
	if got := gatherValue(t, reg, "flowlog_streams_open"); got != 1 {
		t.Errorf("streams open = %v, want 1", got)
	}

	// A second envelope fails: the store is down.
	ctx := context.Background()
	if err := c.st.Exec(ctx, "DETACH TABLE "+c.st.Database()+".flows"); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&pb.FlowEnvelope{Events: events("down", 4)}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || r.Success {
		t.Fatalf("store down: want success=false, got %+v %v", r, err)
	}
	if err := c.st.Exec(ctx, "ATTACH TABLE "+c.st.Database()+".flows"); err != nil {
		t.Fatal(err)
	}

	wantValue(t, "envelopes received", m.EnvelopesReceived, 2)
	wantValue(t, "events received", m.EventsReceived, 9)
	wantValue(t, "events stored", m.EventsStored, 3)
	for _, reason := range metrics.RejectReasons {
		want := 0.0
		if reason == "out_of_range" || reason == "missing_field" {
			want = 1
		}
		wantValue(t, "rejected "+reason, m.EventsRejected.WithLabelValues(reason), want)
	}
	wantValue(t, "acked success", m.EnvelopesAcked.WithLabelValues(metrics.AckSuccess), 1)
	wantValue(t, "acked failed_transient", m.EnvelopesAcked.WithLabelValues(metrics.AckFailedTransient), 1)
	wantValue(t, "acked overloaded", m.EnvelopesAcked.WithLabelValues(metrics.AckOverloaded), 0)
	wantValue(t, "inserts success", m.Inserts.WithLabelValues(metrics.ResultSuccess), 1)
	wantValue(t, "inserts error", m.Inserts.WithLabelValues(metrics.ResultError), 1)
	wantValue(t, "store errors insert", m.StoreErrors.WithLabelValues(metrics.StoreInsert), 1)
	if n := histogramCount(t, m.InsertRows); n != 2 {
		t.Errorf("insert batch rows: %d observations, want 2", n)
	}
	if n := histogramCount(t, m.InsertDuration); n != 2 {
		t.Errorf("insert duration: %d observations, want 2", n)
	}
	var hm dto.Metric
	m.InsertRows.Write(&hm)
	if sum := hm.GetHistogram().GetSampleSum(); sum != 5+4 { // 3 valid + 2 rejected rows, then 4
		t.Errorf("insert batch rows: sum %v, want 9", sum)
	}
	if got := gatherValue(t, reg, "flowlog_rows_pending_commit"); got != 0 {
		t.Errorf("rows pending commit = %v after every ack, want 0", got)
	}

	// Overload: more rows than MaxPendingRows in one envelope.
	reg2 := prometheus.NewRegistry()
	m2 := metrics.NewCollector(reg2)
	c2 := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond, FlushRows: 2, MaxPendingRows: 3, MaxStreams: 1, Metrics: m2})
	s2 := dial(t, c2.addr)
	if err := s2.Send(&pb.FlowEnvelope{Events: events("big", 4)}); err != nil {
		t.Fatal(err)
	}
	if r, err := s2.Recv(); err != nil || r.Success {
		t.Fatalf("overload: want success=false, got %+v %v", r, err)
	}
	wantValue(t, "acked overloaded", m2.EnvelopesAcked.WithLabelValues(metrics.AckOverloaded), 1)
	wantValue(t, "events stored", m2.EventsStored, 0)
	// A second stream over MaxStreams is refused and counted.
	s3 := dial(t, c2.addr)
	s3.Send(&pb.FlowEnvelope{})
	if _, err := s3.Recv(); err == nil {
		t.Fatal("second stream over --max-streams 1 was not refused")
	}
	wantValue(t, "refused max_streams", m2.StreamsRefused.WithLabelValues(metrics.RefusedMaxStreams), 1)

	// Every family is exported on the registry under its documented name.
	if n := testutil.CollectAndCount(m.EventsRejected, "flowlog_events_rejected_total"); n != len(metrics.RejectReasons) {
		t.Errorf("flowlog_events_rejected_total has %d series, want one per reason class (%d)", n, len(metrics.RejectReasons))
	}
}

// gatherValue reads a gauge or counter without labels from reg.
func gatherValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == name })
	if i < 0 {
		t.Fatalf("%s not exported", name)
	}
	m := mfs[i].GetMetric()[0]
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// Every validation failure has a class of metrics.RejectReasons other than
// "other": the label set is fixed and each reason is counted where it
// belongs.
func TestMetricsReasonClasses(t *testing.T) {
	now := time.Now()
	cases := []struct {
		mutate func(*pb.FlowEvent)
		class  string
	}{
		{func(e *pb.FlowEvent) { e.FlowId = "" }, "missing_field"},
		{func(e *pb.FlowEvent) { e.Type = 0 }, "missing_field"},
		{func(e *pb.FlowEvent) { e.Dst = nil }, "missing_field"},
		{func(e *pb.FlowEvent) { e.Type = 9 }, "bad_type"},
		{func(e *pb.FlowEvent) { e.Direction = 7 }, "bad_type"},
		{func(e *pb.FlowEvent) { e.Src.Type = 42 }, "bad_type"},
		{func(e *pb.FlowEvent) { e.Protocol = 256 }, "out_of_range"},
		{func(e *pb.FlowEvent) { e.DstPort = 70000 }, "out_of_range"},
		{func(e *pb.FlowEvent) { e.Version = 0 }, "out_of_range"},
		{func(e *pb.FlowEvent) { e.Src.Ip = "10.0.0.300" }, "bad_ip"},
		{func(e *pb.FlowEvent) { e.StartTsMs = 5 }, "bad_timestamp"},
		{func(e *pb.FlowEvent) { e.StartTsMs = now.Add(48 * time.Hour).UnixMilli() }, "bad_timestamp"},
		{func(e *pb.FlowEvent) { e.HostId = string(make([]byte, 300)) }, "too_long"},
		{func(e *pb.FlowEvent) { e.BytesSent = 1 }, "bad_counters"},
	}
	for _, tc := range cases {
		ev := events("c", 1)[0]
		tc.mutate(ev)
		_, err := ingest.Convert(ev, now)
		if err == nil {
			t.Errorf("%s: no error", tc.class)
			continue
		}
		if got := ingest.ReasonClass(err); got != tc.class || !slices.Contains(metrics.RejectReasons, got) {
			t.Errorf("%q: class %q, want %q", err, got, tc.class)
		}
	}
	for _, cl := range []string{ingest.ReasonMissingField, ingest.ReasonBadType, ingest.ReasonOutOfRange, ingest.ReasonBadIP,
		ingest.ReasonBadTimestamp, ingest.ReasonBadCounters, ingest.ReasonTooLong, ingest.ReasonForbiddenHost, ingest.ReasonForbiddenNetwork, ingest.ReasonOther} {
		if !slices.Contains(metrics.RejectReasons, cl) {
			t.Errorf("ingest class %q missing from metrics.RejectReasons", cl)
		}
	}
	if got := ingest.ReasonClass(context.Canceled); got != "other" {
		t.Errorf("unclassified error: class %q, want other", got)
	}
}

// Streams refused by authentication and events for a host or network the
// identity may not report for are counted by class.
func TestMetricsCountAuthRefusalsAndForgedEvents(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: h1, networks: [n1], token_sha256: %s}\n", auth.HashToken("t1")))
	set, err := auth.Load(p.identitiesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.ServerTLS(p.certFile, p.keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.NewCollector(prometheus.NewRegistry())
	a := auth.New(set, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond, Auth: a, Metrics: m}, grpc.Creds(credentials.NewTLS(cfg)))

	_, err = exchange(conn(t, p, c.addr, nil, "wrong"), &pb.FlowEnvelope{Events: hostEvents("x", "h1", "n1", 1)})
	wantCode(t, "unknown token", err, codes.Unauthenticated, "unknown bearer token")
	evs := hostEvents("f", "h1", "n1", 4)
	evs[1].HostId = "h2"
	evs[2].NetworkId = "n9"
	r, err := exchange(conn(t, p, c.addr, nil, "t1"), &pb.FlowEnvelope{Events: evs})
	if err != nil || !r.Success {
		t.Fatalf("forged events: %+v %v", r, err)
	}
	wantValue(t, "refused unauthenticated", m.StreamsRefused.WithLabelValues(metrics.RefusedUnauthenticated), 1)
	wantValue(t, "rejected forbidden_host", m.EventsRejected.WithLabelValues("forbidden_host"), 1)
	wantValue(t, "rejected forbidden_network", m.EventsRejected.WithLabelValues("forbidden_network"), 1)
	wantValue(t, "events stored", m.EventsStored, 2)
	wantValue(t, "events received", m.EventsReceived, 4)
}
