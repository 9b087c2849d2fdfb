package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/agent/export"
	"github.com/flowlog/flowlog/agent/spool"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/internal/wiretest"
)

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
	for _, ev := range wiretest.StartsAndOneInvalid("ag", 4) {
		slot := b.Slot()
		proto.Reset(slot)
		proto.Merge(slot, ev)
		b.Commit()
	}
	b.Flush()
	exp := export.New(sp, export.Options{Addr: ln.Addr().String(), BackoffMin: 10 * time.Millisecond, Log: log})
	h := httptest.NewServer(metricsHandler(parts{spool: sp, batch: b, exp: exp}, log))
	defer h.Close()

	if code, body := testutil.HTTPText(t, h.URL+"/readyz"); code != 503 || !strings.Contains(body, "not connected") {
		t.Fatalf("/readyz before the exporter runs: %d %s", code, body)
	}
	if code, _ := testutil.HTTPText(t, h.URL+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exp.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.WaitFor(t, 0, "the first ack", func() bool { return exp.Stats.Acked.Load() >= 1 })
	if code, body := testutil.HTTPText(t, h.URL+"/readyz"); code != 200 {
		t.Fatalf("/readyz after the ack: %d %s", code, body)
	}
	_, text := testutil.HTTPText(t, h.URL+"/metrics")
	testutil.WantSamples(t, text,
		"flowlog_agent_events_enqueued_total 5",
		"flowlog_agent_events_dropped_total 0",
		"flowlog_agent_envelopes_sent_total 1",
		"flowlog_agent_envelopes_acked_total 1",
		"flowlog_agent_envelopes_failed_total 0",
		"flowlog_agent_events_rejected_total 1",
		"flowlog_agent_spool_entries 0",
		"flowlog_agent_collector_connected 1",
	)
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "flowlog_build_info{") {
		t.Error("/metrics lacks the Go runtime collector or flowlog_build_info")
	}
	if err := ready(exp, sp, time.Now()); err != nil {
		t.Fatalf("ready with nothing to send: %v", err)
	}
}
