package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// External endpoints group by prefix (IPv4 /24, IPv6 /48 unless other
// lengths are asked for); mesh participants are no one's prefix; a source
// or destination prefix filters by that side's address only.
func TestTopByPrefixAndSidePrefixFilters(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	mesh := flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1"), Type: flowlog.ParticipantNode, ID: "a", Name: "node-a"}
	mesh2 := flowlog.Participant{IP: netip.MustParseAddr("10.0.0.2"), Type: flowlog.ParticipantNode, ID: "b", Name: "node-b"}
	ext := func(a string) flowlog.Participant {
		return flowlog.Participant{IP: netip.MustParseAddr(a), Type: flowlog.ParticipantExternal}
	}
	var evs []flowlog.Event
	add := func(id string, src, dst flowlog.Participant, bytes uint64) {
		_, d := flowSpec{id: id, host: "h", net: "mesh", src: src, dst: dst, proto: 6, sp: 40000, dp: 443,
			dir: flowlog.DirEgress, start: t0.Add(time.Duration(len(evs)) * time.Second), bs: bytes, br: 0, ps: 1, pr: 0}.events()
		evs = append(evs, d)
	}
	add("x1", mesh, ext("203.0.113.9"), 1000)
	add("x2", mesh, ext("203.0.113.200"), 2000)
	add("x3", ext("198.51.100.7"), mesh, 500)
	add("x4", mesh, ext("2001:db8:1:2::5"), 700)
	add("x5", ext("2001:db8:1:ff::9"), mesh, 800)
	add("x6", mesh, mesh2, 99999) // the mesh: no prefix
	insert(t, s, evs...)

	top := func(q flowlog.TopQuery) string {
		t.Helper()
		q.ByPrefix = true
		got, err := s.Top(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range got {
			out = append(out, fmt.Sprintf("%s=%d", r.Prefix, r.Bytes))
		}
		return strings.Join(out, " ")
	}
	if got, want := top(flowlog.TopQuery{}), "203.0.113.0/24=3000 2001:db8:1::/48=1500 198.51.100.0/24=500"; got != want {
		t.Errorf("by prefix: %s, want %s", got, want)
	}
	if got, want := top(flowlog.TopQuery{Side: flowlog.SideSrc}), "2001:db8:1::/48=800 198.51.100.0/24=500"; got != want {
		t.Errorf("sources by prefix: %s, want %s", got, want)
	}
	if got, want := top(flowlog.TopQuery{PrefixLens: flowlog.PrefixLens{V4: 32, V6: 64}}),
		"203.0.113.200/32=2000 203.0.113.9/32=1000 2001:db8:1:ff::/64=800 2001:db8:1:2::/64=700 198.51.100.7/32=500"; got != want {
		t.Errorf("by /32 and /64: %s, want %s", got, want)
	}
	if got, want := top(flowlog.TopQuery{PrefixLens: flowlog.PrefixLens{V4: 8, V6: 16}}), "203.0.0.0/8=3000 2001::/16=1500 198.0.0.0/8=500"; got != want {
		t.Errorf("by /8 and /16: %s, want %s", got, want)
	}
	if _, err := s.Top(ctx, flowlog.TopQuery{ByPrefix: true, PrefixLens: flowlog.PrefixLens{V4: 33, V6: 48}}); err == nil {
		t.Error("a /33 IPv4 prefix accepted")
	}

	// Each prefix is a filter: any side, the source, the destination.
	pfx := netip.MustParsePrefix
	for _, c := range []struct {
		f    flowlog.Filter
		want string
	}{
		{flowlog.Filter{IP: pfx("203.0.113.0/24")}, "x2 x1"},
		{flowlog.Filter{DstIP: pfx("203.0.113.0/24")}, "x2 x1"},
		{flowlog.Filter{SrcIP: pfx("203.0.113.0/24")}, ""},
		{flowlog.Filter{SrcIP: pfx("2001:db8:1::/48")}, "x5"},
		{flowlog.Filter{DstIP: pfx("2001:db8:1::/48")}, "x4"},
		{flowlog.Filter{SrcIP: pfx("10.0.0.0/24"), DstIP: pfx("10.0.0.2/32")}, "x6"},
	} {
		if got := ids(allFlows(t, s, c.f)); got != c.want {
			t.Errorf("%+v: %q, want %q", c.f, got, c.want)
		}
		tot := totalsOf(t, s, c.f)
		if want := uint64(len(strings.Fields(c.want))); tot.Flows != want {
			t.Errorf("%+v: totals %+v, want %d flows", c.f, tot, want)
		}
	}
}
