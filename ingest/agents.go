package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/flowlog/flowlog"
)

// Which agent (software, wire generation) each host reports through is
// recorded in the store (flowlog.AgentRecorder) for the hosts view: once
// per stream per (network, host, generation), again every agentRefresh on
// a long stream, never per envelope. A stream records at most
// maxStreamSightings keys (it may claim any host when unauthenticated).
const (
	agentRefresh       = time.Hour
	maxStreamSightings = 64
	maxPendingAgents   = 10_000
	agentWriteTimeout  = 30 * time.Second
)

type agentKey struct{ network, host string }

// agentLog hands sightings to the store off the streams' goroutines: one
// write at a time, taking every sighting that arrived meanwhile (the latest
// of each key). A failed write is logged and dropped: the next stream of
// the host, or the hourly refresh, records it again.
type agentLog struct {
	rec  flowlog.AgentRecorder
	log  *slog.Logger
	mu   sync.Mutex
	busy bool
	// pending by network, host and generation.
	pending map[[3]string]flowlog.AgentSighting
	written sync.WaitGroup // the flush in flight (shutdown waits for it)
}

func newAgentLog(rec flowlog.AgentRecorder, log *slog.Logger) *agentLog {
	if rec == nil {
		return nil
	}
	return &agentLog{rec: rec, log: log, pending: map[[3]string]flowlog.AgentSighting{}}
}

func (a *agentLog) note(s flowlog.AgentSighting) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := [3]string{s.NetworkID, s.HostID, s.Generation}
	if _, ok := a.pending[k]; !ok && len(a.pending) >= maxPendingAgents {
		return // the store is far behind: this one is seen again later
	}
	a.pending[k] = s
	if !a.busy {
		a.busy = true
		a.written.Add(1)
		go a.flush()
	}
}

func (a *agentLog) flush() {
	defer a.written.Done()
	for {
		a.mu.Lock()
		if len(a.pending) == 0 {
			a.busy = false
			a.mu.Unlock()
			return
		}
		batch := make([]flowlog.AgentSighting, 0, len(a.pending))
		for _, s := range a.pending {
			batch = append(batch, s)
		}
		clear(a.pending)
		a.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), agentWriteTimeout)
		if err := a.rec.RecordAgents(ctx, batch); err != nil {
			a.log.Warn("recording which agents hosts run (hosts view); seen again at their next stream", "sightings", len(batch), "err", err)
		}
		cancel()
	}
}

// wait waits for the write in flight, if any, at most until ctx ends. Only
// once no stream notes any more (shutdown).
func (a *agentLog) wait(ctx context.Context) {
	if a == nil {
		return
	}
	done := make(chan struct{})
	go func() { a.written.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// userAgent is the stream's gRPC user-agent, as kept.
func userAgent(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if ua := md.Get("user-agent"); len(ua) > 0 {
		return flowlog.CleanAgent(ua[0])
	}
	return ""
}
