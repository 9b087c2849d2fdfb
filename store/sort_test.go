package store_test

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// The listing sorted by bytes, duration or start, either way, pages by
// cursor and by offset through every connection once, in the order of
// flowlog.Sort: ties (equal bytes, equal durations, equal starts) broken by
// start and flow id, each connection seen from both ends counted once (its
// initiator's observation, never the responder's), open flows longest.
func TestSortedListingPagesThroughTies(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{PeerSkew: 5 * time.Second})
	a := flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1"), Type: flowlog.ParticipantNode, ID: "a", Name: "node-a"}
	b := flowlog.Participant{IP: netip.MustParseAddr("10.0.0.2"), Type: flowlog.ParticipantNode, ID: "b", Name: "node-b"}
	var evs []flowlog.Event
	shadowed := map[string]bool{}
	for i := range 40 {
		// Three days, starts shared by pairs, 4 byte counts, 3 durations.
		start := midnight.Add(-24*time.Hour + time.Duration(i/2)*90*time.Minute)
		sp := uint16(40000 + i)
		st, de := flowSpec{id: fmt.Sprintf("e%02d", i), host: "hA", net: "mesh", src: a, dst: b, proto: 6, sp: sp, dp: 443,
			dir: flowlog.DirEgress, start: start, bs: uint64(1000 * (i % 4)), br: 0, ps: uint64(10 * (i % 4)), pr: 0}.events()
		de.End = start.Add(time.Duration(i%3) * time.Second)
		if i%4 == 0 {
			de.PacketsSent = 0
		}
		evs = append(evs, st)
		if i%7 != 3 { // some stay open
			evs = append(evs, de)
		}
		if i%5 == 0 { // B reported it too, with other counters: it must not show
			ist, ide := flowSpec{id: fmt.Sprintf("i%02d", i), host: "hB", net: "mesh", src: a, dst: b, proto: 6, sp: sp, dp: 443,
				dir: flowlog.DirIngress, start: start.Add(time.Second), bs: 99999, br: 1, ps: 999, pr: 1}.events()
			ide.End = start.Add(time.Hour)
			evs = append(evs, ist, ide)
			shadowed[ist.FlowID] = true
		}
	}
	insert(t, s, evs...)
	want := allFlows(t, s, flowlog.Filter{})
	if len(want) != 40 {
		t.Fatalf("default listing: %d flows, want the 40 connections once each: %s", len(want), ids(want))
	}
	for _, key := range []flowlog.SortKey{flowlog.SortBytes, flowlog.SortDuration, flowlog.SortStart} {
		for _, asc := range []bool{false, true} {
			order := flowlog.Sort{Key: key, Asc: asc}
			t.Run(order.String(), func(t *testing.T) {
				// The duration sorts merge a flow's rows with argMax, the others
				// with FINAL: both merges order alike.
				argMax := key == flowlog.SortDuration
				store.UseArgMax(s, argMax)
				defer store.UseArgMax(s, false)
				exp := slices.Clone(want)
				slices.SortFunc(exp, func(x, y flowlog.Flow) int {
					c := cmp.Or(cmp.Compare(order.SortValue(&x), order.SortValue(&y)), x.Start.Compare(y.Start), cmp.Compare(x.FlowID, y.FlowID))
					if !asc {
						c = -c
					}
					return c
				})
				var byCursor, byOffset []flowlog.Flow
				p := flowlog.Page{PerPage: 3, Sort: order}
				for n := 1; ; n++ {
					page, err := s.Flows(ctx, flowlog.Filter{}, p)
					if err != nil {
						t.Fatal(err)
					}
					byCursor = append(byCursor, page...)
					off, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{Number: n, PerPage: 3, Sort: order})
					if err != nil {
						t.Fatal(err)
					}
					byOffset = append(byOffset, off...)
					if len(page) < p.PerPage {
						break
					}
					p.After = order.CursorOf(&page[len(page)-1])
				}
				if ids(byCursor) != ids(exp) {
					t.Errorf("by cursor:\n got %s\nwant %s", ids(byCursor), ids(exp))
				}
				if ids(byOffset) != ids(exp) {
					t.Errorf("by offset:\n got %s\nwant %s", ids(byOffset), ids(exp))
				}
				for _, f := range byCursor {
					if shadowed[f.FlowID] {
						t.Errorf("%s, the responder's observation of a connection its initiator reported, listed", f.FlowID)
					}
				}
			})
		}
	}
	// What a user relies on, beyond agreeing with SortValue: the biggest
	// first, then open flows (still running) before any ended one.
	top, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{PerPage: 1, Sort: flowlog.Sort{Key: flowlog.SortBytes}})
	if err != nil || len(top) != 1 || top[0].BytesSent != 3000 {
		t.Errorf("largest flow %+v %v, want one of 3000 bytes", top, err)
	}
	long, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{PerPage: 1, Sort: flowlog.Sort{Key: flowlog.SortDuration}})
	if err != nil || len(long) != 1 || long[0].FlowID != "e03" {
		t.Errorf("longest flow %s %v, want e03, the oldest still open", ids(long), err)
	}
}
