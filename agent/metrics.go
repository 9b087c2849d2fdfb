package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowlog/flowlog/agent/conntrack"
	"github.com/flowlog/flowlog/agent/export"
	"github.com/flowlog/flowlog/agent/spool"
	"github.com/flowlog/flowlog/metrics"
)

// ackFreshness is how recent the last ack must be for the agent to be ready
// while it has envelopes to send.
const ackFreshness = time.Minute

// parts are the components whose counters the agent's metrics read; nil
// ones (Stdout has no spool, batcher or exporter) are left out.
type parts struct {
	src   *conntrack.Source
	pipe  *Pipeline
	spool *spool.Spool
	batch *export.Batcher
	exp   *export.Exporter
}

// serveMetrics serves GET /metrics, /healthz and /readyz on addr until the
// returned stop is called; with no addr it does nothing.
func serveMetrics(addr string, log *slog.Logger, p parts) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	hs := &http.Server{Handler: metricsHandler(p, log), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}

// metricsHandler binds the agent's metrics to the parts' counters and
// serves them with the probes: /healthz is liveness (the process answers),
// /readyz is 200 while the agent delivers (ready).
func metricsHandler(p parts, log *slog.Logger) http.Handler {
	reg := metrics.NewRegistry()
	m := metrics.NewAgent(reg)
	p.bind(m)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		metrics.Probe(w, r, nil, log)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		metrics.Probe(w, r, ready(p.exp, p.spool, time.Now()), log)
	})
	return mux
}

// bind points m's scrape-time values at the parts' own counters.
func (p parts) bind(m *metrics.Agent) {
	u := func(v uint64) float64 { return float64(v) }
	if src := p.src; src != nil {
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
		m.ConntrackUpdates.Set(func() float64 { return u(src.Stats().Updates) })
		m.StateFlows.Set(func() map[string]float64 {
			st := src.Stats()
			return map[string]float64{"restored": u(st.StateRestored), "corrupt": u(st.StateCorrupt), "redelivered": u(st.Redelivered)}
		})
		m.ConntrackUndecodable.Set(func() float64 { return u(src.Stats().Undecodable) })
		m.ConntrackOpenFlows.Set(func() float64 { return u(src.Stats().Open) })
	}
	if pipe := p.pipe; pipe != nil {
		m.Flows.Set(func() map[string]float64 {
			out := map[string]float64{}
			for verdict, n := range pipe.Stats.Snapshot() {
				out[verdict] = u(n)
			}
			return out
		})
	}
	if b := p.batch; b != nil {
		m.EventsEnqueued.Set(func() float64 { return u(b.Enqueued.Load()) })
		m.EventsDropped.Set(func() float64 { return u(b.Dropped.Load()) })
	}
	if sp := p.spool; sp != nil {
		m.SpoolEntries.Set(func() float64 { return u(sp.Stats().Entries) })
		m.SpoolBytes.Set(func() float64 { return float64(sp.Stats().Bytes) })
		m.SpoolDamaged.Set(func() float64 { return u(sp.Stats().Damaged) })
	}
	if e := p.exp; e != nil {
		s := &e.Stats
		m.EnvelopesSent.Set(func() float64 { return u(s.Sent.Load()) })
		m.EnvelopesAcked.Set(func() float64 { return u(s.Acked.Load()) })
		m.EnvelopesFailed.Set(func() float64 { return u(s.Failed.Load()) })
		m.EventsRejected.Set(func() float64 { return u(s.RejectedEvents.Load()) })
		m.EventsOversize.Set(func() float64 { return u(s.Oversize.Load()) })
		m.Reconnects.Set(func() float64 { return u(s.Reconnects.Load()) })
		m.Connected.Set(func() float64 {
			if s.Connected.Load() {
				return 1
			}
			return 0
		})
		m.LastAck.Set(func() float64 { return float64(s.LastAck.Load()) / 1e9 })
	}
}

// ready is nil while the agent delivers: a stream to the collector is open
// and either nothing waits to be sent or an ack came within the last
// ackFreshness. Without an exporter (Stdout) there is nothing to deliver.
func ready(exp *export.Exporter, sp *spool.Spool, now time.Time) error {
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
