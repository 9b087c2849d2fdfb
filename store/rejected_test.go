package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Rejected events are listed newest first, a retry's twins once, filtered
// by host, reason class and an inclusive time range, and paged.
func TestRejectedListingFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	var batch []flowlog.Rejected
	for i := range 6 {
		host, class := "h1", "bad_ip"
		if i%2 == 1 {
			host, class = "h2", "missing_field"
		}
		batch = append(batch, flowlog.Rejected{
			Received: t0.Add(time.Duration(i) * time.Minute), Peer: "10.0.0.1:5", HostID: host, Index: i,
			Reason: fmt.Sprintf("reason %d", i), Class: class, Event: fmt.Sprintf(`{"i":%d}`, i),
		})
	}
	for range 2 { // the agent retried the envelope
		if err := s.Insert(ctx, &flowlog.Batch{Rejected: batch}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(f flowlog.RejectedFilter, p flowlog.Page) string {
		t.Helper()
		rs, err := s.Rejected(ctx, f, p)
		if err != nil {
			t.Fatal(err)
		}
		var idx []string
		for _, r := range rs {
			idx = append(idx, fmt.Sprint(r.Index))
		}
		return strings.Join(idx, " ")
	}
	for _, tc := range []struct {
		name string
		f    flowlog.RejectedFilter
		p    flowlog.Page
		want string
	}{
		{"all, newest first, once", flowlog.RejectedFilter{}, flowlog.Page{}, "5 4 3 2 1 0"},
		{"host", flowlog.RejectedFilter{HostID: "h2"}, flowlog.Page{}, "5 3 1"},
		{"class", flowlog.RejectedFilter{Class: "bad_ip"}, flowlog.Page{}, "4 2 0"},
		{"time range, both ends inclusive", flowlog.RejectedFilter{From: t0.Add(time.Minute), To: t0.Add(3 * time.Minute)}, flowlog.Page{}, "3 2 1"},
		{"page 2 of 2", flowlog.RejectedFilter{}, flowlog.Page{Number: 2, PerPage: 4}, "1 0"},
	} {
		if got := list(tc.f, tc.p); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	rs, err := s.Rejected(ctx, flowlog.RejectedFilter{HostID: "h1"}, flowlog.Page{PerPage: 1})
	if err != nil || len(rs) != 1 {
		t.Fatal(rs, err)
	}
	want := flowlog.Rejected{Received: t0.Add(4 * time.Minute), Peer: "10.0.0.1:5", HostID: "h1", Index: 4, Reason: "reason 4", Class: "bad_ip", Event: `{"i":4}`}
	if rs[0] != want {
		t.Errorf("got %+v, want %+v", rs[0], want)
	}
}

// node_id (Filter.Node) is the flows a host reported or that a node (a
// participant of type node with that id) is an endpoint of; in raw reads
// and in aggregates, rolled up or not.
func TestNodeFilter(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	reported := ev("reported", flowlog.EventStart, t0, 1) // h1 reported it; src n1, dst user u1
	peer := ev("peer", flowlog.EventStart, t0.Add(time.Second), 1)
	peer.HostID, peer.Src.ID, peer.Dst = "h9", "n9", flowlog.Participant{IP: peer.Src.IP, Type: flowlog.ParticipantNode, ID: "n1"}
	userNamedLikeANode := ev("user", flowlog.EventStart, t0.Add(2*time.Second), 1)
	userNamedLikeANode.HostID, userNamedLikeANode.Src.ID, userNamedLikeANode.Dst.ID = "h9", "n9", "n1" // dst is a user
	if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{reported, peer, userNamedLikeANode}}); err != nil {
		t.Fatal(err)
	}
	ids := func(f flowlog.Filter) string {
		t.Helper()
		flows, err := s.Flows(ctx, f, flowlog.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, fl := range flows {
			out = append(out, fl.FlowID)
		}
		return strings.Join(out, " ")
	}
	for node, want := range map[string]string{"n1": "peer reported", "h1": "reported", "h9": "user peer", "u1": "", "n9": "user peer"} {
		if got := ids(flowlog.Filter{Node: node}); got != want {
			t.Errorf("node %s: %q, want %q", node, got, want)
		}
	}
	n, err := s.Active(ctx, flowlog.Filter{Node: "n1"})
	if err != nil || n != 2 {
		t.Errorf("active flows of node n1: %d %v, want 2", n, err)
	}
}
