package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Hosts name the agent and wire generation each host reports through: per
// generation the latest sighting, whichever collector wrote it and in
// whatever order, within the networks the reader may see.
func TestHostsShowTheirAgents(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	a := ev("f1", flowlog.EventStart, t0, 1) // h1 in net1
	b := ev("f2", flowlog.EventStart, t0, 1)
	b.HostID, b.HostName, b.NetworkID = "h2", "host-2", "net2"
	insert(t, s, a, b)

	stock := "grpc-go/1.64.0"
	ours := "flowlog-agent/v1.2.3 grpc-go/1.70.0"
	for _, batch := range [][]flowlog.AgentSighting{
		// Collector A: h1 spoke v1.4 through a stock agent, then v1.5+
		// through ours.
		{{NetworkID: "net1", HostID: "h1", Generation: "v1.4", Agent: stock, LastSeen: t0},
			{NetworkID: "net1", HostID: "h1", Generation: "v1.5+", Agent: ours, LastSeen: t0.Add(time.Hour)}},
		// Collector B, late: an older sighting of h1's v1.5+ agent, and h2.
		{{NetworkID: "net1", HostID: "h1", Generation: "v1.5+", Agent: "flowlog-agent/v1.2.2 grpc-go/1.70.0", LastSeen: t0.Add(time.Minute)},
			{NetworkID: "net2", HostID: "h2", Generation: "v1.5+", Agent: ours + "\x00\u202e", LastSeen: t0.Add(2 * time.Hour)}},
		// Collector A again, a retry: the same rows.
		{{NetworkID: "net1", HostID: "h1", Generation: "v1.4", Agent: stock, LastSeen: t0}},
	} {
		if err := s.RecordAgents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	show := func(f flowlog.Filter) string {
		t.Helper()
		hosts, err := s.Hosts(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for _, h := range hosts {
			out += h.HostID + ":"
			for _, a := range h.Agents {
				out += fmt.Sprintf(" %s %q %s;", a.Generation, a.Agent, a.LastSeen.Format("15:04"))
			}
			out += " "
		}
		return out
	}
	want := `h1: v1.5+ "flowlog-agent/v1.2.3 grpc-go/1.70.0" 11:00; v1.4 "grpc-go/1.64.0" 10:00; h2: v1.5+ "flowlog-agent/v1.2.3 grpc-go/1.70.0" 12:00; `
	if got := show(flowlog.Filter{}); got != want {
		t.Errorf("hosts:\n got %s\nwant %s", got, want)
	}
	if got, want := show(flowlog.Filter{Networks: []string{"net2"}}), `h2: v1.5+ "flowlog-agent/v1.2.3 grpc-go/1.70.0" 12:00; `; got != want {
		t.Errorf("a reader of net2:\n got %s\nwant %s", got, want)
	}
}
