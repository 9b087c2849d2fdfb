package store_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Both ends of a connection run an agent: host A reports it as egress, host
// B as ingress (its clock 1 s behind), under different flow ids, with
// counters from each host's side. Every aggregate counts it once, the flow
// list shows A's observation; a connection one end reports counts once.
func TestEachConnectionCountsOnce(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{PeerSkew: 5 * time.Second})
	a := flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1"), Type: flowlog.ParticipantNode, ID: "a", Name: "node-a"}
	b := flowlog.Participant{IP: netip.MustParseAddr("10.0.0.2"), Type: flowlog.ParticipantNode, ID: "b", Name: "node-b"}
	u := flowlog.Participant{IP: netip.MustParseAddr("10.0.8.5"), Type: flowlog.ParticipantUser, ID: "u", Name: "alice"}
	x := flowlog.Participant{IP: netip.MustParseAddr("203.0.113.9"), Type: flowlog.ParticipantExternal}
	obs := func(id, host string, dir flowlog.Direction, src, dst flowlog.Participant, sp, dp uint16, start time.Time, bs, br uint64) (flowlog.Event, flowlog.Event) {
		return flowSpec{id: id, host: host, net: "mesh", src: src, dst: dst, proto: 6, sp: sp, dp: dp, dir: dir, start: start,
			bs: bs, br: br, ps: max(bs/100, 1), pr: max(br/100, 1)}.events()
	}
	t1 := midnight.Add(2 * time.Hour)
	// P1, open: A's START, B's START.
	p1a, _ := obs("a1", "hA", flowlog.DirEgress, a, b, 40000, 443, t1, 0, 0)
	p1b, _ := obs("b1", "hB", flowlog.DirIngress, a, b, 40000, 443, t1.Add(-time.Second), 0, 0)
	// P2, finished, across midnight: A's egress 1 ms before, B's ingress
	// 500 ms after; B's sent is A's received.
	p2aS, p2aD := obs("a3", "hA", flowlog.DirEgress, a, b, 40001, 22, midnight.Add(-time.Millisecond), 1000, 9000)
	p2bS, p2bD := obs("b3", "hB", flowlog.DirIngress, a, b, 40001, 22, midnight.Add(500*time.Millisecond), 9000, 1000)
	// One-sided: A to an external host; a user (no agent) to B.
	_, q1 := obs("a2", "hA", flowlog.DirEgress, a, x, 40002, 53, t1, 100, 200)
	_, q2 := obs("b2", "hB", flowlog.DirIngress, u, b, 50000, 443, t1, 300, 400)
	insert(t, s, p1b, p2bS, p2bD, q2, p1a, q1)
	store.NoClockSlack(s)
	// B's side of P2 rolled up before A's arrives, in the day before: the
	// rollup of B's day must be recomputed.
	rollupOn(t, s)
	insert(t, s, p2aS, p2aD)

	flowsOf := func(f flowlog.Filter) string { return ids(allFlows(t, s, f)) }
	if got := flowsOf(flowlog.Filter{}); got != "b2 a2 a1 a3" {
		t.Errorf("default list %q, want the initiators' observations and the one-sided flows: b2 a2 a1 a3", got)
	}
	// A short range (the egress set built without the candidates' set:
	// shadowedExpr) answers as the whole range does.
	near, overMidnight := flowlog.Filter{From: t1.Add(-time.Hour), To: t1.Add(time.Hour)}, flowlog.Filter{From: midnight.Add(-time.Hour), To: midnight.Add(time.Hour)}
	if got := flowsOf(near); got != "b2 a2 a1" {
		t.Errorf("list of the two hours around t1 %q, want b2 a2 a1", got)
	}
	if got := flowsOf(overMidnight); got != "a3" {
		t.Errorf("list of the two hours around midnight %q, want a3", got)
	}
	if got := flowsOf(flowlog.Filter{Observations: flowlog.ObserveAll}); len(got) != len("a2 b2 a1 b1 b3 a3") {
		t.Errorf("all observations %q, want 6", got)
	}
	if got := flowsOf(flowlog.Filter{HostID: "hB"}); got != "b2 b1 b3" {
		t.Errorf("host B's flows %q, want all of B's observations", got)
	}
	if got := flowsOf(flowlog.Filter{Direction: flowlog.DirIngress}); got != "b2 b1 b3" {
		t.Errorf("ingress flows %q", got)
	}
	// A flow's detail: both observations, the initiator's first.
	for _, f := range allFlows(t, s, flowlog.Filter{Observations: flowlog.ObserveAll}) {
		if f.FlowID != "b3" {
			continue
		}
		both, err := s.Observations(ctx, f)
		if err != nil || ids(both) != "a3 b3" {
			t.Errorf("observations of b3: %q %v, want a3 b3", ids(both), err)
		}
	}
	bothPaths(t, s, func(t *testing.T) {
		// a3 10000 + a2 300 + b2 700; P1 open, 0 bytes.
		if tot := totalsOf(t, s, flowlog.Filter{}); tot.Flows != 4 || tot.Bytes != 11000 {
			t.Errorf("totals %+v, want 4 connections, 11000 bytes", tot)
		}
		if tot := totalsOf(t, s, near); tot.Flows != 3 || tot.Bytes != 1000 {
			t.Errorf("totals of the two hours around t1 %+v, want 3 connections, 1000 bytes", tot)
		}
		if tot := totalsOf(t, s, overMidnight); tot.Flows != 1 || tot.Bytes != 10000 {
			t.Errorf("totals of the two hours around midnight %+v, want 1 connection, 10000 bytes", tot)
		}
		if tot := totalsOf(t, s, flowlog.Filter{Observations: flowlog.ObserveAll}); tot.Flows != 6 || tot.Bytes != 21000 {
			t.Errorf("all observations: totals %+v, want 6 flows, 21000 bytes", tot)
		}
		if tot := totalsOf(t, s, flowlog.Filter{HostID: "hB"}); tot.Flows != 3 || tot.Bytes != 10700 {
			t.Errorf("host B: totals %+v", tot)
		}
		top, err := s.Top(ctx, flowlog.TopQuery{Side: flowlog.SideAny, Metric: flowlog.MetricFlows, Limit: 1})
		if err != nil || len(top) != 1 || top[0].ID != "a" || top[0].Flows != 3 {
			t.Errorf("top %+v %v, want node-a in 3 connections", top, err)
		}
		pts, err := s.Series(ctx, flowlog.Filter{From: midnight.Add(-24 * time.Hour), To: midnight.Add(24 * time.Hour)}, time.Hour)
		var flows uint64
		for _, p := range pts {
			flows += p.Flows
		}
		if err != nil || flows != 4 {
			t.Errorf("series %+v %v, want 4 connections", pts, err)
		}
		if n, err := s.Active(ctx, flowlog.Filter{}); err != nil || n != 1 {
			t.Errorf("active %d %v, want 1", n, err)
		}
	})
}

// Observations further apart than twice PeerSkew are two connections.
func TestObservationsBeyondTheSkewAreNotMatched(t *testing.T) {
	s := open(t, store.Options{PeerSkew: time.Second})
	st := ev("a", flowlog.EventStart, t0, 1)
	in := st
	in.FlowID, in.HostID, in.Direction, in.Start = "b", "h2", flowlog.DirIngress, t0.Add(2500*time.Millisecond)
	insert(t, s, st, in)
	if got := ids(allFlows(t, s, flowlog.Filter{})); got != "b a" {
		t.Fatalf("%q, want both", got)
	}
}
