package ingest

import (
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/auth"
)

// agentView is what one stream has shown of its agent, told to the operator
// so that nothing is lost silently: the wire generation it speaks (one log
// line per generation per stream, and flowlog_streams_wire_generation),
// its rejected events (a WARN at most once
// per logEvery per stream, with the first reasons and how many), and whether
// every event it sent was rejected (a WARN once, and the
// flowlog_streams_all_rejected gauge). One goroutine at a time uses it: the
// stream's handler, or the one preparing its envelope while the handler
// waits (Server.ticket).
type agentView struct {
	s    *Server
	peer string
	host string // the authenticated host, else the host_id its events claim

	spoken      [3]bool // by generation
	accepted    int
	rejected    int
	allRejected bool // counted in Server.allRejected

	unlogged int      // rejected since the last WARN
	reasons  []string // the first of those, at most maxLoggedReasons
	loggedAt time.Time

	// The agent's software (gRPC user-agent), and when each (network,
	// host) was last recorded speaking each generation (agents.go).
	agent   string
	sighted map[agentKey]*[3]time.Time
}

const maxLoggedReasons = 3

func (s *Server) newAgentView(peer, agent string, id *auth.Identity) *agentView {
	v := &agentView{s: s, peer: peer, agent: agent}
	if id != nil {
		v.host = id.HostID
	}
	return v
}

// saw takes the outcome of one prepared envelope.
func (v *agentView) saw(w *wireEnvelope, t *ticket) {
	for i, we := range w.events {
		if v.host == "" {
			v.host = w.env.Events[i].GetHostId()
		}
		if we.gen != genNone && !v.spoken[we.gen] {
			v.spoken[we.gen] = true
			v.s.speaking[we.gen].Add(1)
			v.s.log.Info("agent speaks wire generation "+we.gen.String(), "peer", v.peer, "host", v.host,
				"generation", we.gen.String(), "numbering", numberingOf(we.gen))
		}
	}
	v.sight(w, t)
	v.rejected += len(t.rejected)
	v.accepted += len(t.events)
	for _, r := range t.rejected {
		if len(v.reasons) < maxLoggedReasons {
			v.reasons = append(v.reasons, r.Reason)
		}
	}
	v.unlogged += len(t.rejected)
	if now := v.s.now(); v.unlogged > 0 && now.Sub(v.loggedAt) >= logEvery {
		v.logRejected()
		v.loggedAt = now
	}
	v.setAllRejected(v.accepted == 0 && v.rejected > 0)
}

// sight records the generation each (network, host) of the accepted
// events speaks, once per stream and then every agentRefresh.
func (v *agentView) sight(w *wireEnvelope, t *ticket) {
	if v.s.agents == nil || len(t.events) == 0 {
		return
	}
	var skip map[int]bool
	for _, r := range t.rejected {
		if skip == nil {
			skip = map[int]bool{}
		}
		skip[r.Index] = true
	}
	now := v.s.now()
	for i, we := range w.events {
		if we.gen == genNone || skip[i] {
			continue
		}
		ev := w.env.Events[i]
		k := agentKey{ev.GetNetworkId(), ev.GetHostId()}
		at := v.sighted[k]
		if at == nil {
			if len(v.sighted) >= maxStreamSightings {
				continue
			}
			if v.sighted == nil {
				v.sighted = map[agentKey]*[3]time.Time{}
			}
			at = new([3]time.Time)
			v.sighted[k] = at
		}
		if !at[we.gen].IsZero() && now.Sub(at[we.gen]) < agentRefresh {
			continue
		}
		at[we.gen] = now
		v.s.agents.note(flowlog.AgentSighting{NetworkID: k.network, HostID: k.host, Generation: we.gen.String(), Agent: v.agent, LastSeen: now})
	}
}

func (v *agentView) setAllRejected(all bool) {
	if all == v.allRejected {
		return
	}
	v.allRejected = all
	if all {
		v.s.allRejected.Add(1)
		v.s.log.Warn("every event of this agent is rejected: nothing it sends is stored", "peer", v.peer, "host", v.host,
			"rejected", v.rejected)
	} else {
		v.s.allRejected.Add(-1)
	}
}

func (v *agentView) logRejected() {
	v.s.log.Warn("rejected events (kept in rejected_events, named in the ack)", "peer", v.peer, "host", v.host,
		"rejected", v.unlogged, "stream_rejected", v.rejected, "stream_accepted", v.accepted, "first_reasons", v.reasons)
	v.unlogged, v.reasons = 0, nil
}

// end is called when the stream ends: what was not logged yet is.
func (v *agentView) end() {
	if v.unlogged > 0 {
		v.logRejected()
	}
	v.setAllRejected(false)
	for g, spoke := range v.spoken {
		if spoke {
			v.s.speaking[g].Add(-1)
		}
	}
}

func numberingOf(g generation) string {
	if g == genLegacy {
		return "netclient <= v1.4.x (network_id=3, host_id=4, no host_name)"
	}
	return "proto/flow/flow.proto (host_id=3, host_name=4, network_id=5)"
}
