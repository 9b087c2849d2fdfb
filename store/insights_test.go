package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// A pair talking in the baseline is not new even when it talks again in the
// window; a pair (or another port, or another external address) seen only
// in the window is, ranked by flows, once however many hosts saw it.
// Hosts lists every host, quiet ones included, with its window's counts;
// Suggest finds participants, hosts and networks by part of a name.
func TestInsights(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	win := t0.Add(24 * time.Hour) // window [win, win+24h), baseline [t0, win)
	ext := func(ip string) flowlog.Participant {
		return flowlog.Participant{IP: netip.MustParseAddr(ip), Type: flowlog.ParticipantExternal}
	}
	var evs []flowlog.Event
	add := func(id string, start time.Time, mut func(e *flowlog.Event)) {
		st, d := ev(id, flowlog.EventStart, start, 1), ev(id, flowlog.EventDestroy, start, 2)
		mut(&st)
		mut(&d)
		evs = append(evs, st, d)
	}
	same := func(e *flowlog.Event) {}
	add("old", t0.Add(time.Hour), same)    // node-1 -> alice :443, baseline
	add("again", win.Add(time.Hour), same) // same pair in the window: not new
	for i := range 3 {                     // node-1 -> alice :22, new, 3 flows
		add(fmt.Sprintf("ssh%d", i), win.Add(time.Duration(i+2)*time.Hour), func(e *flowlog.Event) { e.DstPort = 22 })
	}
	// The other end's observation of ssh0: one connection, counted once by
	// new pairs and the stacked series, but shown as reported by h2 in hosts.
	add("ssh-b", win.Add(2*time.Hour), func(e *flowlog.Event) {
		e.DstPort, e.HostID, e.HostName, e.Direction = 22, "h2", "host-2", flowlog.DirIngress
	})
	add("ext1", win.Add(3*time.Hour), func(e *flowlog.Event) { e.Dst = ext("192.0.2.1") })
	add("ext2", win.Add(4*time.Hour), func(e *flowlog.Event) { e.Dst = ext("192.0.2.2") })
	add("ext-old", t0.Add(2*time.Hour), func(e *flowlog.Event) { e.Dst = ext("192.0.2.2") })
	add("quiet", t0.Add(3*time.Hour), func(e *flowlog.Event) { e.HostID, e.HostName, e.NetworkID = "h3", "host-3", "net2" })
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}

	pairs, err := s.NewPairs(ctx, flowlog.NewPairsQuery{Filter: flowlog.Filter{From: win, To: win.Add(24 * time.Hour)}, BaselineFrom: t0})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pairs {
		dst := p.Dst.Name
		if p.Dst.Type == flowlog.ParticipantExternal {
			dst = p.Dst.IP.String()
		}
		got = append(got, fmt.Sprintf("%s>%s:%d/%d n=%d first=%s", p.Src.Name, dst, p.DstPort, p.Protocol, p.Flows, p.First.Sub(win)))
	}
	want := []string{"node-1>alice:22/6 n=3 first=2h0m0s", "node-1>192.0.2.1:443/6 n=1 first=3h0m0s"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("new pairs\n got %q\nwant %q", got, want)
	}

	hosts, err := s.Hosts(ctx, flowlog.Filter{From: win, To: win.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, h := range hosts {
		got = append(got, fmt.Sprintf("%s/%s nets=%v flows=%d events=%d bytes=%d recent=%v", h.HostID, h.HostName, h.Networks, h.Flows, h.Events, h.Bytes,
			time.Since(h.LastReport) < time.Hour))
	}
	want = []string{"h1/host-1 nets=[net1] flows=6 events=12 bytes=18000 recent=true",
		"h2/host-2 nets=[net1] flows=1 events=2 bytes=3000 recent=true",
		"h3/host-3 nets=[] flows=0 events=0 bytes=0 recent=true"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("hosts\n got %q\nwant %q", got, want)
	}
	if scoped, err := s.Hosts(ctx, flowlog.Filter{Networks: []string{"net2"}}); err != nil || len(scoped) != 1 || scoped[0].HostID != "h3" {
		t.Errorf("hosts of net2: %+v %v", scoped, err)
	}

	// Stacked by destination, top 1: alice, and the rest (the two external
	// addresses) in one bucket of a day, aligned to the epoch.
	groups, err := s.SeriesBy(ctx, flowlog.Filter{From: win, To: win.Add(24 * time.Hour)}, 24*time.Hour, "dst", 1)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, g := range groups {
		got = append(got, fmt.Sprintf("%s@%s=%d/%d", g.Key, g.T.Format(time.RFC3339), g.Bytes, g.Flows))
	}
	want = []string{"@2026-11-25T00:00:00Z=6000/2", "alice@2026-11-25T00:00:00Z=12000/4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stacked by dst\n got %q\nwant %q", got, want)
	}

	sugg, err := s.Suggest(ctx, flowlog.Filter{}, "HOST-", 10)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, g := range sugg {
		got = append(got, g.Field+"="+g.Value+"/"+g.Label)
	}
	want = []string{"node_id=h1/host-1", "node_id=h2/host-2", "node_id=h3/host-3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("suggest host-\n got %q\nwant %q", got, want)
	}
	sugg, err = s.Suggest(ctx, flowlog.Filter{NetworkID: "net1"}, "ali", 10)
	if err != nil || len(sugg) != 1 || sugg[0].Field != "participant" || sugg[0].Value != "u1" || sugg[0].Label != "alice" || sugg[0].Type != "user" {
		t.Errorf("suggest ali: %+v %v", sugg, err)
	}
}
