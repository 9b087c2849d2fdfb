package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

// RecordAgents writes sightings (flowlog.AgentRecorder). A sighting older
// than the one stored loses at the next merge, and reads take the latest
// anyway, so collectors need not agree on order.
func (s *Store) RecordAgents(ctx context.Context, sightings []flowlog.AgentSighting) error {
	if len(sightings) == 0 {
		return nil
	}
	vals := make([]string, len(sightings))
	for i, a := range sightings {
		vals[i] = fmt.Sprintf("(%s, %s, %s, %s, %s)", quote(a.NetworkID), quote(a.HostID), quote(a.Generation),
			quote(flowlog.CleanAgent(a.Agent)), ms(a.LastSeen))
	}
	if err := s.eng.Exec(ctx, "INSERT INTO "+s.db+".agents (network_id, host_id, generation, agent, last_seen) VALUES "+
		strings.Join(vals, ", ")); err != nil {
		return fmt.Errorf("recording agents: %w", err)
	}
	return nil
}

// agentsOf reads the latest agent of each (host, generation) in the
// networks f allows (its network, its scope), by host.
func (s *Store) agentsOf(ctx context.Context, f flowlog.Filter) (map[string][]flowlog.AgentSighting, error) {
	var rows []struct {
		HostID string `json:"host_id"`
		Gen    string `json:"generation"`
		Agent  string `json:"a"`
		Net    string `json:"n"`
		LastMS int64  `json:"last_ms"`
	}
	// argMax and max over the raw rows: no FINAL needed.
	if err := s.queryRows(ctx, fmt.Sprintf(`SELECT host_id, generation, argMax(agent, last_seen) AS a, argMax(network_id, last_seen) AS n,
		toUnixTimestamp64Milli(max(last_seen)) AS last_ms FROM %s.agents %s GROUP BY host_id, generation`,
		s.db, whereOf(dimConds(flowlog.Filter{NetworkID: f.NetworkID, Networks: f.Networks, HostID: f.HostID}))), &rows); err != nil {
		return nil, fmt.Errorf("querying agents: %w", err)
	}
	out := map[string][]flowlog.AgentSighting{}
	for _, r := range rows {
		out[r.HostID] = append(out[r.HostID], flowlog.AgentSighting{NetworkID: r.Net, HostID: r.HostID, Generation: r.Gen,
			Agent: r.Agent, LastSeen: time.UnixMilli(r.LastMS).UTC()})
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b flowlog.AgentSighting) int {
			return cmp.Or(b.LastSeen.Compare(a.LastSeen), strings.Compare(a.Generation, b.Generation))
		})
	}
	return out, nil
}
