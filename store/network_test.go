package store_test

import (
	"context"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// External endpoints carry their network (AS, country) as the collector
// named it: it is stored, read back, filtered on and grouped by.
func TestExternalNetworksAreStoredFilteredAndRanked(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	node := flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1"), Type: flowlog.ParticipantNode, ID: "n1", Name: "node-1"}
	cf := flowlog.Participant{IP: netip.MustParseAddr("1.0.0.1"), Type: flowlog.ParticipantExternal, ASN: 13335, ASName: "Cloudflare, Inc.", Country: "AU"}
	gg := flowlog.Participant{IP: netip.MustParseAddr("2001:4860::8888"), Type: flowlog.ParticipantExternal, ASN: 15169, ASName: "Google LLC", Country: "US"}
	unknown := flowlog.Participant{IP: netip.MustParseAddr("203.0.113.9"), Type: flowlog.ParticipantExternal}
	mk := func(id string, src, dst flowlog.Participant, bytes uint64, at time.Duration) flowlog.Event {
		return flowlog.Event{Type: flowlog.EventDestroy, FlowID: id, HostID: "h1", NetworkID: "net1", Protocol: 6,
			SrcPort: 40000, DstPort: 443, Direction: flowlog.DirEgress, Src: src, Dst: dst,
			Start: t0.Add(at), End: t0.Add(at + time.Second), BytesSent: bytes, PacketsSent: 1, Version: 2}
	}
	evs := []flowlog.Event{
		mk("a", node, cf, 100, 0), mk("b", node, gg, 1000, time.Minute), mk("c", gg, node, 500, 2*time.Minute),
		mk("d", node, unknown, 7, 3*time.Minute),
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	flows, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{Number: 1, PerPage: 10})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]flowlog.Flow{}
	for _, f := range flows {
		byID[f.FlowID] = f
	}
	if d := byID["b"].Dst; d.ASN != 15169 || d.ASName != "Google LLC" || d.Country != "US" {
		t.Errorf("flow b's destination read back as %+v", d)
	}
	if src := byID["c"].Src; src.ASN != 15169 || src.Country != "US" || byID["c"].Dst.ASN != 0 {
		t.Errorf("flow c read back as %+v -> %+v", src, byID["c"].Dst)
	}

	for _, c := range []struct {
		f    flowlog.Filter
		want string
	}{
		{flowlog.Filter{ASNs: []uint32{15169}}, "c b"},
		{flowlog.Filter{ASNs: []uint32{13335, 15169}}, "c b a"},
		{flowlog.Filter{Countries: []string{"AU"}}, "a"},
		{flowlog.Filter{Countries: []string{"US"}, ASNs: []uint32{13335}}, ""},
	} {
		got, err := s.Flows(ctx, c.f, flowlog.Page{Number: 1, PerPage: 10})
		if err != nil {
			t.Fatal(err)
		}
		if ids(got) != c.want {
			t.Errorf("%+v: flows %q, want %q", c.f, ids(got), c.want)
		}
	}

	talker := func(p flowlog.Participant, bytes, flows uint64) flowlog.Talker {
		return flowlog.Talker{Participant: p, Totals: flowlog.Totals{Bytes: bytes, Packets: flows, Flows: flows}}
	}
	for _, c := range []struct {
		q    flowlog.TopQuery
		want []flowlog.Talker
	}{
		{flowlog.TopQuery{ByASN: true}, []flowlog.Talker{
			talker(flowlog.Participant{ASN: 15169, ASName: "Google LLC"}, 1500, 2),
			talker(flowlog.Participant{ASN: 13335, ASName: "Cloudflare, Inc."}, 100, 1)}},
		{flowlog.TopQuery{ByASN: true, Side: flowlog.SideSrc}, []flowlog.Talker{
			talker(flowlog.Participant{ASN: 15169, ASName: "Google LLC"}, 500, 1)}},
		{flowlog.TopQuery{ByCountry: true, Metric: flowlog.MetricFlows}, []flowlog.Talker{
			talker(flowlog.Participant{Country: "US"}, 1500, 2), talker(flowlog.Participant{Country: "AU"}, 100, 1)}},
		{flowlog.TopQuery{ByCountry: true, Filter: flowlog.Filter{Countries: []string{"AU"}}}, []flowlog.Talker{
			talker(flowlog.Participant{Country: "AU"}, 100, 1)}},
	} {
		got, err := s.Top(ctx, c.q)
		if err != nil {
			t.Fatalf("top %+v: %v", c.q, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("top %+v:\n got %v\nwant %v", c.q, got, c.want)
		}
	}
}
