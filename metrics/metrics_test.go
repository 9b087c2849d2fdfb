package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/metrics"
)

func want(t *testing.T, name string, c prometheus.Collector, v float64) {
	t.Helper()
	if got := testutil.ToFloat64(c); got != v {
		t.Errorf("%s = %v, want %v", name, got, v)
	}
}

// Fresh registries do not collide, and every collector family is exported
// under its documented name (labelled families with every value at 0).
func TestMetricsNamesOnAFreshRegistry(t *testing.T) {
	for range 2 {
		reg := metrics.NewRegistry()
		metrics.NewCollector(reg)
		metrics.NewAgent(reg)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, mf := range mfs {
			got[mf.GetName()] = len(mf.GetMetric())
		}
		for name, n := range map[string]int{
			"flowlog_events_received_total": 1, "flowlog_events_stored_total": 1,
			"flowlog_events_rejected_total": len(metrics.RejectReasons), "flowlog_envelopes_acked_total": 3,
			"flowlog_inserts_total": 2, "flowlog_store_errors_total": 3, "flowlog_streams_refused_total": len(metrics.StreamRefusals),
			"flowlog_streams_ended_total": len(metrics.StreamEndings), "flowlog_tls_handshake_failures_total": 1, "flowlog_agent_spool_damaged_total": 1,
			"flowlog_streams_open": 1, "flowlog_rows_pending_commit": 1, "flowlog_tail_subscribers": 1,
			"flowlog_tail_events_lost_total": 1, "flowlog_insert_batch_rows": 1, "flowlog_insert_duration_seconds": 1,
			"flowlog_agent_spool_entries": 1, "flowlog_agent_events_dropped_total": 1, "flowlog_agent_reconnects_total": 1,
			"go_goroutines": 1, "process_cpu_seconds_total": 1,
		} {
			if got[name] != n {
				t.Errorf("%s: %d series, want %d", name, got[name], n)
			}
		}
	}
}

// Func and FuncVec read the component's own counters at scrape time; unset
// they read 0 (or nothing).
func TestMetricsFuncsReadAtScrapeTime(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := metrics.NewAgent(reg)
	if n := testutil.CollectAndCount(a.Flows); n != 0 {
		t.Fatalf("unset FuncVec exported %d series", n)
	}
	var dropped uint64
	a.EventsDropped.Set(func() float64 { return float64(dropped) })
	a.Flows.Set(func() map[string]float64 { return map[string]float64{"keep": 5, "drop_port": 2} })
	dropped = 7
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP flowlog_agent_events_dropped_total Events lost because the spool was full (--spool-max-bytes).
# TYPE flowlog_agent_events_dropped_total counter
flowlog_agent_events_dropped_total 7
# HELP flowlog_agent_flows_total Conntrack flows by verdict of the config: keep (sent), out_of_scope, drop_protocol, drop_port, drop_cidr.
# TYPE flowlog_agent_flows_total counter
flowlog_agent_flows_total{verdict="drop_port"} 2
flowlog_agent_flows_total{verdict="keep"} 5
# HELP flowlog_agent_spool_entries Envelopes in the spool not yet acknowledged by the collector.
# TYPE flowlog_agent_spool_entries gauge
flowlog_agent_spool_entries 0
`), "flowlog_agent_events_dropped_total", "flowlog_agent_flows_total", "flowlog_agent_spool_entries")
	if err != nil {
		t.Fatal(err)
	}
}

func TestMetricsUnknownReasonClassIsOther(t *testing.T) {
	c := metrics.NewCollector(nil)
	c.Rejected("bad_ip")
	c.Rejected("protocol 300 > 255") // free text never becomes a label
	want(t, "bad_ip", c.EventsRejected.WithLabelValues("bad_ip"), 1)
	want(t, "other", c.EventsRejected.WithLabelValues("other"), 1)
	if n := testutil.CollectAndCount(c.EventsRejected); n != len(metrics.RejectReasons) {
		t.Fatalf("%d reason series, want %d", n, len(metrics.RejectReasons))
	}
}

// The route label is the pattern of the mux that served the request, also
// of a mux nested inside the instrumented handler; never the raw path.
func TestMetricsHTTPRouteIsTheMuxPattern(t *testing.T) {
	c := metrics.NewCollector(prometheus.NewRegistry())
	inner := http.NewServeMux()
	inner.HandleFunc("GET /api/v1/flows", func(w http.ResponseWriter, r *http.Request) {})
	inner.HandleFunc("GET /api/v1/flows/stream", func(w http.ResponseWriter, r *http.Request) {
		// The live tail flushes through http.ResponseController.
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the instrumented writer: %v", err)
		}
	})
	outer := http.NewServeMux()
	outer.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	outer.Handle("/", inner)
	srv := httptest.NewServer(c.InstrumentHTTP(outer))
	defer srv.Close()
	for _, p := range []string{"/api/v1/flows?x=1", "/api/v1/flows", "/metrics", "/api/v1/flows/stream", "/nope/1", "/nope/2"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // to its end: the request is counted by then
		resp.Body.Close()
	}
	want(t, "flows", c.HTTPRequests.WithLabelValues("GET /api/v1/flows", "200"), 2)
	want(t, "metrics", c.HTTPRequests.WithLabelValues("GET /metrics", "418"), 1)
	want(t, "stream", c.HTTPRequests.WithLabelValues("GET /api/v1/flows/stream", "200"), 1)
	want(t, "unmatched", c.HTTPRequests.WithLabelValues("unmatched", "404"), 2)
	if n := testutil.CollectAndCount(c.HTTPRequests); n != 4 {
		t.Fatalf("%d request series, want 4 (no raw paths)", n)
	}
	if n := testutil.CollectAndCount(c.HTTPDuration); n != 4 {
		t.Fatalf("%d duration series, want 4", n)
	}
}

type failingStore struct{ flowlog.Store }

func (failingStore) Ping(context.Context) error { return errors.New("down") }
func (failingStore) Flows(context.Context, flowlog.Filter, flowlog.Page) ([]flowlog.Flow, error) {
	return nil, errors.New("down")
}

type failingAgg struct{ flowlog.Aggregator }

func (failingAgg) Active(context.Context, flowlog.Filter) (uint64, error) {
	return 0, errors.New("down")
}

// Store errors count by op; a request whose client left does not count.
func TestMetricsStoreErrors(t *testing.T) {
	c := metrics.NewCollector(nil)
	s := c.InstrumentStore(failingStore{}, failingAgg{})
	ctx := context.Background()
	s.Ping(ctx)
	s.Flows(ctx, flowlog.Filter{}, flowlog.Page{})
	s.Active(ctx, flowlog.Filter{})
	gone, cancel := context.WithCancel(ctx)
	cancel()
	s.Flows(gone, flowlog.Filter{}, flowlog.Page{})
	want(t, "ping", c.StoreErrors.WithLabelValues(metrics.StorePing), 1)
	want(t, "query", c.StoreErrors.WithLabelValues(metrics.StoreQuery), 2)
	want(t, "insert", c.StoreErrors.WithLabelValues(metrics.StoreInsert), 0)
}
