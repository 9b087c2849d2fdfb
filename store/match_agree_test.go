package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// The live tail judges events with Filter.Match and queries judge stored
// flows with the store's SQL: one filter must select the same flows in both,
// or a tail and a refresh of the same view disagree. Every flow here is one
// event (no START/DESTROY pairs), so "the flow" and "the event" coincide.
func TestSQLFiltersAgreeWithFilterMatch(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	rng := rand.New(rand.NewPCG(8, 8))
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	pick := func(vs ...string) string { return vs[rng.IntN(len(vs))] }
	addrs := []string{"10.0.0.1", "10.0.0.2", "10.0.1.9", "fd00::2", "192.168.5.5", "::ffff:10.0.0.3"}
	types := []flowlog.ParticipantType{flowlog.ParticipantNode, flowlog.ParticipantUser, flowlog.ParticipantExtClient, flowlog.ParticipantExternal}
	party := func(i int) flowlog.Participant {
		p := flowlog.Participant{IP: netip.MustParseAddr(addrs[rng.IntN(len(addrs))]),
			Type: types[rng.IntN(len(types))], ID: pick("n1", "n2", "alice", ""), Name: pick("node-1", "alice", "bob", "")}
		if p.Type == flowlog.ParticipantExternal { // named by the collector (ipdb), or not found
			p.ASN = []uint32{0, 13335, 15169}[rng.IntN(3)]
			p.Country = pick("", "US", "AU")
		}
		return p
	}
	var evs []flowlog.Event
	for i := range 400 {
		e := flowlog.Event{
			Type: flowlog.EventStart, FlowID: fmt.Sprintf("f%04d", i), HostID: pick("h1", "h2"), HostName: "host",
			NetworkID: pick("mesh1", "mesh2"), Protocol: []uint8{1, 6, 17, 47}[rng.IntN(4)],
			SrcPort: uint16(40000 + i), DstPort: []uint16{22, 443, 5353}[rng.IntN(3)],
			Direction: flowlog.Direction(1 + rng.IntN(2)), Src: party(i), Dst: party(i),
			Start: base.Add(time.Duration(rng.IntN(72*3600*1000)) * time.Millisecond), Version: 1,
		}
		if rng.IntN(2) == 0 {
			e.Type, e.End, e.Version = flowlog.EventDestroy, e.Start.Add(time.Second), 2
			e.BytesSent, e.PacketsSent = 100, 1
		}
		evs = append(evs, e)
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	filters := []flowlog.Filter{
		{}, {NetworkID: "mesh1"}, {Networks: []string{"mesh2"}}, {Networks: []string{}}, {HostID: "h2"},
		{SrcEntityID: "alice"}, {DstEntityID: "n1"}, {Username: "alice"}, {Participant: "bob"}, {Participant: "n2"},
		{From: base.Add(24 * time.Hour), To: base.Add(36 * time.Hour)}, {To: base.Add(time.Hour)},
		{SrcTypes: []flowlog.ParticipantType{flowlog.ParticipantUser}}, {DstTypes: []flowlog.ParticipantType{flowlog.ParticipantExternal, flowlog.ParticipantNode}},
		{Protocols: []uint8{6, 17}}, {Protocols: []uint8{47}}, {State: flowlog.StateActive}, {State: flowlog.StateFinished},
		{IP: pfx("10.0.0.0/24")}, {IP: pfx("fd00::2/128")}, {IP: pfx("::ffff:10.0.0.0/104")}, {IP: pfx("0.0.0.0/0")},
		{SrcIP: pfx("10.0.0.0/24")}, {DstIP: pfx("10.0.0.0/24")}, {DstIP: pfx("fd00::/64")}, {SrcIP: pfx("10.0.0.0/8"), DstIP: pfx("0.0.0.0/0")},
		{Port: 443}, {Port: 40007}, {Direction: flowlog.DirIngress},
		{ASNs: []uint32{13335}}, {ASNs: []uint32{13335, 15169}}, {Countries: []string{"AU"}}, {Countries: []string{"US", "AU"}},
		{ASNs: []uint32{15169}, Countries: []string{"AU"}, Protocols: []uint8{6, 17}},
		{NetworkID: "mesh1", Protocols: []uint8{6}, Direction: flowlog.DirEgress, State: flowlog.StateFinished},
	}
	for i, f := range filters {
		var want []string
		for j := range evs {
			if f.Match(&evs[j]) {
				want = append(want, evs[j].FlowID)
			}
		}
		flows, err := s.Flows(ctx, f, flowlog.Page{Number: 1, PerPage: 1000})
		if err != nil {
			t.Fatalf("filter %d %+v: %v", i, f, err)
		}
		var got []string
		for _, fl := range flows {
			got = append(got, fl.FlowID)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("filter %d %+v: SQL selects %d flows, Match %d\nSQL only:   %v\nMatch only: %v",
				i, f, len(got), len(want), minus(got, want), minus(want, got))
		}
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
