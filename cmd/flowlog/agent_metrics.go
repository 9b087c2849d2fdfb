package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowlog/flowlog/agent"
	"github.com/flowlog/flowlog/agent/conntrack"
	"github.com/flowlog/flowlog/agent/export"
	"github.com/flowlog/flowlog/agent/spool"
	"github.com/flowlog/flowlog/metrics"
)

// ackFreshness is how recent the last ack must be for the agent to be ready
// while it has envelopes to send.
const ackFreshness = time.Minute

// agentParts are the components whose counters the agent's metrics read;
// nil ones (--stdout has no spool, batcher or exporter) are left out.
type agentParts struct {
	src   *conntrack.Source
	pipe  *agent.Pipeline
	spool *spool.Spool
	batch *export.Batcher
	exp   *export.Exporter
}

// serveMetrics serves GET /metrics, /healthz and /readyz on --metrics-addr
// until the returned stop is called; with no --metrics-addr it does nothing.
func (c *agentCmd) serveMetrics(log *slog.Logger, parts agentParts) (stop func(), err error) {
	if c.MetricsAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", c.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	hs := &http.Server{Handler: agentMetricsHandler(parts, log), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}

// agentMetricsHandler binds the agent's metrics to the parts' counters and
// serves them with the probes: /healthz is liveness (the process answers),
// /readyz is 200 while the agent delivers (agentReady).
func agentMetricsHandler(parts agentParts, log *slog.Logger) http.Handler {
	reg := metrics.NewRegistry()
	m := metrics.NewAgent(reg)
	u := func(v uint64) float64 { return float64(v) }
	if src := parts.src; src != nil {
		m.ConntrackEvents.Set(func() map[string]float64 {
			st := src.Stats()
			return map[string]float64{"new": u(st.News), "destroy": u(st.Destroys)}
		})
		m.ConntrackResyncFlows.Set(func() map[string]float64 {
			st := src.Stats()
			return map[string]float64{"new": u(st.ResyncStarts), "destroy": u(st.ResyncDestroys)}
		})
		m.ConntrackOverruns.Set(func() float64 { return u(src.Stats().Overruns) })
		m.ConntrackResyncs.Set(func() float64 { return u(src.Stats().Resyncs) })
		m.ConntrackUndecodable.Set(func() float64 { return u(src.Stats().Undecodable) })
		m.ConntrackOpenFlows.Set(func() float64 { return u(src.Stats().Open) })
	}
	if p := parts.pipe; p != nil {
		m.Flows.Set(func() map[string]float64 {
			out := map[string]float64{}
			for verdict, n := range p.Stats.Snapshot() {
				out[verdict] = u(n)
			}
			return out
		})
	}
	if b := parts.batch; b != nil {
		m.EventsEnqueued.Set(func() float64 { return u(b.Enqueued.Load()) })
		m.EventsDropped.Set(func() float64 { return u(b.Dropped.Load()) })
	}
	if sp := parts.spool; sp != nil {
		m.SpoolEntries.Set(func() float64 { return u(sp.Stats().Entries) })
		m.SpoolBytes.Set(func() float64 { return float64(sp.Stats().Bytes) })
	}
	if e := parts.exp; e != nil {
		s := &e.Stats
		m.EnvelopesSent.Set(func() float64 { return u(s.Sent.Load()) })
		m.EnvelopesAcked.Set(func() float64 { return u(s.Acked.Load()) })
		m.EnvelopesFailed.Set(func() float64 { return u(s.Failed.Load()) })
		m.EventsRejected.Set(func() float64 { return u(s.RejectedEvents.Load()) })
		m.Reconnects.Set(func() float64 { return u(s.Reconnects.Load()) })
		m.Connected.Set(func() float64 {
			if s.Connected.Load() {
				return 1
			}
			return 0
		})
		m.LastAck.Set(func() float64 { return float64(s.LastAck.Load()) / 1e9 })
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := agentReady(parts.exp, parts.spool, time.Now()); err != nil {
			log.DebugContext(r.Context(), "not ready", "reason", err)
			writeProbe(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
		writeProbe(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// agentReady is nil while the agent delivers: a stream to the collector is
// open and either nothing waits to be sent or an ack came within the last
// ackFreshness. Without an exporter (--stdout) there is nothing to deliver.
func agentReady(exp *export.Exporter, sp *spool.Spool, now time.Time) error {
	if exp == nil {
		return nil
	}
	if !exp.Stats.Connected.Load() {
		return errors.New("not connected to the collector")
	}
	waiting := sp.Stats().Entries
	if waiting == 0 {
		return nil
	}
	last := exp.Stats.LastAck.Load()
	if last == 0 {
		return fmt.Errorf("%d envelopes waiting and no ack yet", waiting)
	}
	if age := now.Sub(time.Unix(0, last)); age > ackFreshness {
		return fmt.Errorf("%d envelopes waiting and no ack for %s", waiting, age.Round(time.Second))
	}
	return nil
}
