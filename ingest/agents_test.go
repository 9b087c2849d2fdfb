package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/internal/wiretest"
	pb "github.com/flowlog/flowlog/proto/flow"
	"github.com/flowlog/flowlog/store"
)

// sightings counts what ingest records, and records it in the store.
type sightings struct {
	st *store.Store
	mu sync.Mutex
	n  map[string]int // by "host generation"
}

func (s *sightings) RecordAgents(ctx context.Context, l []flowlog.AgentSighting) error {
	s.mu.Lock()
	for _, a := range l {
		s.n[a.HostID+" "+a.Generation]++
	}
	s.mu.Unlock()
	return s.st.RecordAgents(ctx, l)
}

func (s *sightings) counts() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.n)
}

// Each host's agent (the stream's user-agent) and the wire generations it
// speaks reach the hosts view: recorded once per stream per generation,
// not per envelope, again after an hour on a long stream; a rejected
// event records nothing.
func TestHostsLearnTheirAgentAndGeneration(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rec := &sightings{n: map[string]int{}}
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond, Clock: clock, Agents: rec})
	rec.st = c.st

	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent("test-agent/v9.8.7"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s, err := pb.NewFlowServiceClient(conn).StreamFlows(context.Background(), grpc.ForceCodecV2(wiretest.RawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	raw := &rawStream{t: t, s: s}
	event := func(gen, id, host string) []byte {
		f := wiretest.FullEvent(id, now)
		f["host_id"] = host
		return wiretest.EncodeEvent(gen, f, false)
	}
	bad := wiretest.FullEvent("bad", now)
	bad["host_id"], bad["protocol"] = "host-X", uint64(300)
	for i := range 5 {
		if note := raw.exchange(event(wiretest.GenLegacy, fmt.Sprint("old", i), "host-B"), event(wiretest.GenCurrent, fmt.Sprint("new", i), "host-B"),
			wiretest.EncodeEvent(wiretest.GenCurrent, bad, false)); note == "" {
			t.Fatal("the bad event was accepted")
		}
	}
	hosts := func() string {
		h, err := c.st.Hosts(context.Background(), flowlog.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range h {
			for _, a := range x.Agents {
				out = append(out, fmt.Sprintf("%s %s %s %s", x.HostID, a.NetworkID, a.Generation, strings.Fields(a.Agent)[0]))
			}
		}
		return strings.Join(out, "; ")
	}
	want := "host-B net-A v1.4 test-agent/v9.8.7; host-B net-A v1.5+ test-agent/v9.8.7"
	testutil.WaitFor(t, 0, "the agents in the hosts view", func() bool { return hosts() == want })
	if got := rec.counts(); got != "map[host-B v1.4:1 host-B v1.5+:1]" {
		t.Errorf("sightings recorded %s, want one per generation for 5 envelopes", got)
	}
	// An hour later on the same stream: recorded again, with its time.
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	raw.exchange(event(wiretest.GenCurrent, "later", "host-B"))
	testutil.WaitFor(t, 0, "the refreshed sighting", func() bool { return rec.counts() == "map[host-B v1.4:1 host-B v1.5+:2]" })
}
