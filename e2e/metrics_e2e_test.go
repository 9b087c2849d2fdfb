package e2e

// Metrics and probes: GET /metrics and /readyz of `flowlog serve` through
// the built binary, the readiness rules of the collector, and the agent's
// --metrics-addr endpoints over an in-process collector.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/internal/wiretest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

func TestMetricsEndpointOfServe(t *testing.T) {
	c := serve(t, t.TempDir())
	if code, body := testutil.HTTPText(t, c.http+"/readyz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("/readyz after start: %d %s", code, body)
	}
	a := connect(t, c.grpc)
	envs := []*pb.FlowEnvelope{{Events: wiretest.StartsAndOneInvalid("a", 3)}, {Events: wiretest.StartsAndOneInvalid("b", 4)}}
	for i, r := range a.exchange(t, envs) {
		if !r.Success || !strings.HasPrefix(r.Error, "rejected 1 of") {
			t.Fatalf("ack %d: %+v", i, r)
		}
	}
	if code, _ := get(t, c.http, "/api/v1/flows?network_id=metrics"); code != 200 {
		t.Fatalf("flows: %d", code)
	}
	code, text := testutil.HTTPText(t, c.http+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	testutil.WantSamples(t, text,
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
	if code, _ := testutil.HTTPText(t, c.http+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	c.stop(t)
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
	var text string
	testutil.Eventually(10*time.Second, func() bool { // the checks below say what is wrong
		_, text = testutil.HTTPText(t, base+"/metrics")
		return metricValue(text, "flowlog_agent_spool_entries") == 0
	})
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
	if code, body := testutil.HTTPText(t, base+"/readyz"); code != 200 {
		t.Errorf("agent /readyz: %d %s", code, body)
	}
	if code, _ := testutil.HTTPText(t, base+"/healthz"); code != 200 {
		t.Errorf("agent /healthz: %d", code)
	}
}
