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

// Time series put a flow's bytes where they flowed: spread evenly over its
// lifetime, on the raw path and from the rollups alike.
func TestSeriesSpreadsBytes(t *testing.T) {
	ctx := context.Background()
	t0 := day0.Add(10 * time.Hour)
	clock := t0
	s := open(t, store.Options{Now: func() time.Time { return clock }})
	store.NoClockSlack(s)
	ev := func(net, id string, typ flowlog.EventType, start, end time.Time, version int64, sent, recv, pkts uint64) flowlog.Event {
		return flowlog.Event{Type: typ, FlowID: id, HostID: "h1", HostName: "host-h1", NetworkID: net, Protocol: 6,
			SrcPort: 40000, DstPort: 443, Direction: flowlog.DirEgress, Src: pN1, Dst: pN2,
			Start: start, End: end, Version: version, BytesSent: sent, BytesRecv: recv, PacketsSent: pkts}
	}
	insert := func(at time.Time, evs ...flowlog.Event) {
		t.Helper()
		clock = at
		if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	// A: 3 minutes, 3 MB and 3,000 packets.
	insert(t0, ev("netA", "a", flowlog.EventStart, t0, time.Time{}, 1, 0, 0, 0))
	insert(t0.Add(3*time.Minute), ev("netA", "a", flowlog.EventDestroy, t0, t0.Add(3*time.Minute), 2, 2_000_000, 1_000_000, 3000))
	// B: open, reported by our agent 2 minutes after its start with its
	// counters so far (a START with a higher version).
	b0 := t0.Add(10 * time.Minute)
	insert(b0, ev("netB", "b", flowlog.EventStart, b0, time.Time{}, 1, 0, 0, 0))
	insert(b0.Add(2*time.Minute), ev("netB", "b", flowlog.EventStart, b0, time.Time{}, 2, 600_000, 0, 600))
	// C: an hour across midnight, 6 MB; D: 100 s, 1,001 bytes (shares
	// that do not divide).
	c0 := day0.Add(23*time.Hour + 30*time.Minute)
	d0 := t0.Add(20*time.Minute + 10*time.Second)
	insert(c0.Add(time.Hour),
		ev("netC", "c", flowlog.EventDestroy, c0, c0.Add(time.Hour), 2, 6_000_000, 0, 6000),
		ev("netD", "d", flowlog.EventDestroy, d0, d0.Add(100*time.Second), 2, 1001, 0, 7))

	pt := func(at time.Time, b, p, f uint64) flowlog.Point {
		return flowlog.Point{T: at, Totals: flowlog.Totals{Bytes: b, Packets: p, Flows: f}}
	}
	mb := uint64(1_000_000)
	first := flowlog.Filter{From: day0, To: day0.Add(24 * time.Hour)}
	second := flowlog.Filter{From: day0.Add(24 * time.Hour), To: day0.Add(48 * time.Hour)}
	on := func(f flowlog.Filter, net string) flowlog.Filter { f.NetworkID = net; return f }
	cases := []struct {
		name string
		f    flowlog.Filter
		step time.Duration
		want []flowlog.Point
	}{
		{"3 minutes, 3 MB, 1m", on(first, "netA"), time.Minute,
			[]flowlog.Point{pt(t0, mb, 1000, 1), pt(t0.Add(time.Minute), mb, 1000, 0), pt(t0.Add(2*time.Minute), mb, 1000, 0)}},
		{"3 minutes, 3 MB, 1h", on(first, "netA"), time.Hour, []flowlog.Point{pt(t0, 3*mb, 3000, 1)}},
		{"open flow, up to its last report", on(first, "netB"), time.Minute,
			[]flowlog.Point{pt(b0, 300_000, 300, 1), pt(b0.Add(time.Minute), 300_000, 300, 0)}},
		// Started the day before the range: its half in the range, its count not.
		{"started before from", on(second, "netC"), time.Hour, []flowlog.Point{pt(day0.Add(24*time.Hour), 3*mb, 3000, 0)}},
		{"started before from, 15m", on(second, "netC"), 15 * time.Minute,
			[]flowlog.Point{pt(day0.Add(24*time.Hour), 1_500_000, 1500, 0), pt(day0.Add(24*time.Hour+15*time.Minute), 1_500_000, 1500, 0)}},
		{"across midnight, whole", flowlog.Filter{NetworkID: "netC", From: day0, To: day0.Add(48 * time.Hour)}, 24 * time.Hour,
			[]flowlog.Point{pt(day0, 3*mb, 3000, 1), pt(day0.Add(24*time.Hour), 3*mb, 3000, 0)}},
		// 1,001 bytes over 100 s: 50 s in the first minute, 50 in the next.
		{"uneven shares", on(first, "netD"), time.Minute,
			[]flowlog.Point{pt(t0.Add(20*time.Minute), 500, 3, 1), pt(t0.Add(21*time.Minute), 501, 4, 0)}},
	}
	check := func(path string) {
		t.Helper()
		for _, tc := range cases {
			got, err := s.Series(ctx, tc.f, tc.step)
			if err != nil {
				t.Fatalf("%s, %s: %v", path, tc.name, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s, %s:\n got %v\nwant %v", path, tc.name, got, tc.want)
			}
		}
		// Over a range holding whole flows, the series sums to their
		// totals exactly, whatever the step.
		for _, step := range []time.Duration{time.Minute, 7 * time.Minute, 90 * time.Second, time.Hour} {
			pts, err := s.Series(ctx, flowlog.Filter{From: day0, To: day0.Add(72 * time.Hour)}, step)
			if err != nil {
				t.Fatal(err)
			}
			var sum flowlog.Totals
			for _, p := range pts {
				sum.Bytes, sum.Packets, sum.Flows = sum.Bytes+p.Bytes, sum.Packets+p.Packets, sum.Flows+p.Flows
			}
			if want := (flowlog.Totals{Bytes: 3*mb + 600_000 + 6*mb + 1001, Packets: 3000 + 600 + 6000 + 7, Flows: 4}); sum != want {
				t.Errorf("%s, step %v: series sums to %+v, want %+v", path, step, sum, want)
			}
		}
		// The stacked series spreads the same way (raw only).
		groups, err := s.SeriesBy(ctx, on(first, "netA"), time.Minute, "protocol", 5)
		gp := func(at time.Time, b, p, f uint64) flowlog.GroupPoint {
			return flowlog.GroupPoint{Key: "6", T: at, Totals: flowlog.Totals{Bytes: b, Packets: p, Flows: f}}
		}
		if want := []flowlog.GroupPoint{gp(t0, mb, 1000, 1), gp(t0.Add(time.Minute), mb, 1000, 0), gp(t0.Add(2*time.Minute), mb, 1000, 0)}; err != nil || !reflect.DeepEqual(groups, want) {
			t.Errorf("%s: stacked series:\n got %v %v\nwant %v", path, groups, err, want)
		}
		// Top talkers and the matrix still count a flow in its start's
		// range: C is not in the second day's.
		top, err := s.Top(ctx, flowlog.TopQuery{Filter: on(second, "netC")})
		if err != nil || len(top) != 0 {
			t.Errorf("%s: top talkers of the second day: %v %v, want none", path, top, err)
		}
		edges, err := s.Matrix(ctx, on(first, "netC"), 0)
		p1, p2 := pN1, pN2
		p1.IP, p2.IP = netip.Addr{}, netip.Addr{}
		if want := []flowlog.Edge{{Src: p1, Dst: p2, Totals: flowlog.Totals{Bytes: 6 * mb, Packets: 6000, Flows: 1}}}; err != nil || !reflect.DeepEqual(edges, want) {
			t.Errorf("%s: matrix of the first day: %v %v, want %v", path, edges, err, want)
		}
	}
	store.ForceRaw(s, true)
	check("raw")
	store.UseArgMax(s, true)
	check("raw argMax")
	store.UseArgMax(s, false)
	store.ForceRaw(s, false)
	rollupOn(t, s)
	for _, f := range []flowlog.Filter{first, second} {
		if table, days, err := store.Plan(s, f, time.Minute); err != nil || table != "flows_1m" || days != 1 {
			t.Fatalf("plan: %q %d %v, want flows_1m for the day", table, days, err)
		}
	}
	check("rollup")
}
