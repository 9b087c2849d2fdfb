package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// A small known data set, times relative to now (so within every TTL), with
// its totals computed by hand below.
var (
	day0 = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	base = day0.Add(10 * time.Hour)

	pN1 = flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1"), Type: flowlog.ParticipantNode, ID: "n1", Name: "node-1"}
	pN2 = flowlog.Participant{IP: netip.MustParseAddr("10.0.0.2"), Type: flowlog.ParticipantNode, ID: "n2", Name: "node-2"}
	pU1 = flowlog.Participant{IP: netip.MustParseAddr("10.0.8.5"), Type: flowlog.ParticipantUser, ID: "u1", Name: "alice"}
	pE  = flowlog.Participant{IP: netip.MustParseAddr("203.0.113.9"), Type: flowlog.ParticipantExternal}
	pX  = flowlog.Participant{IP: netip.MustParseAddr("fd00::7"), Type: flowlog.ParticipantExtClient, ID: "x1", Name: "phone"}
)

type flowSpec struct {
	id       string
	host     string
	net      string
	src, dst flowlog.Participant
	proto    uint8
	sp, dp   uint16
	dir      flowlog.Direction
	start    time.Time
	active   bool
	bs, br   uint64 // bytes sent, received (DESTROY)
	ps, pr   uint64
}

func (f flowSpec) events() (start, destroy flowlog.Event) {
	start = flowlog.Event{
		Type: flowlog.EventStart, FlowID: f.id, HostID: f.host, HostName: "host-" + f.host, NetworkID: f.net,
		Protocol: f.proto, SrcPort: f.sp, DstPort: f.dp, Direction: f.dir, Src: f.src, Dst: f.dst,
		Start: f.start, Version: 1,
	}
	destroy = start
	destroy.Type, destroy.Version, destroy.End = flowlog.EventDestroy, 2, f.start.Add(3*time.Second)
	destroy.BytesSent, destroy.BytesRecv, destroy.PacketsSent, destroy.PacketsRecv = f.bs, f.br, f.ps, f.pr
	return start, destroy
}

var known = []flowSpec{
	{"f1", "h1", "net1", pN1, pU1, 6, 40000, 443, flowlog.DirEgress, base, false, 1000, 2000, 10, 20},
	{"f2", "h1", "net1", pN1, pE, 17, 50000, 53, flowlog.DirEgress, base.Add(90 * time.Second), false, 100, 200, 1, 2},
	{"f3", "h2", "net2", pU1, pN2, 6, 51000, 22, flowlog.DirIngress, base.Add(65 * time.Minute), false, 5000, 7000, 50, 70},
	{"f4", "h2", "net2", pX, pN2, 6, 52000, 443, flowlog.DirIngress, day0.Add(27 * time.Hour), true, 0, 0, 0, 0},
	{"f5", "h1", "net1", pN2, pN1, 1, 0, 0, flowlog.DirEgress, base.Add(2 * time.Minute), true, 0, 0, 0, 0},
	{"f6", "h1", "net1", pN1, pX, 6, 40001, 8080, flowlog.DirEgress, day0.Add(27*time.Hour + 30*time.Minute), false, 300, 400, 3, 4},
}

// loadKnown inserts the STARTs, then the DESTROYs, each batch twice (an
// agent's retry).
func loadKnown(t *testing.T, s *store.Store) {
	t.Helper()
	var starts, destroys []flowlog.Event
	for _, f := range known {
		st, de := f.events()
		starts = append(starts, st)
		if !f.active {
			destroys = append(destroys, de)
		}
	}
	for _, b := range [][]flowlog.Event{starts, starts, destroys, destroys} {
		if err := s.Insert(context.Background(), &flowlog.Batch{Events: b}); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(flows []flowlog.Flow) string {
	var s []string
	for _, f := range flows {
		s = append(s, f.FlowID)
	}
	return strings.Join(s, " ")
}

func TestNewFilters(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	loadKnown(t, s)
	cases := []struct {
		name string
		f    flowlog.Filter
		want string
	}{
		{"all", flowlog.Filter{}, "f6 f4 f3 f5 f2 f1"},
		{"v4 prefix", flowlog.Filter{IP: netip.MustParsePrefix("10.0.8.0/24")}, "f3 f1"},
		{"v4 prefix not masked", flowlog.Filter{IP: netip.MustParsePrefix("10.0.8.77/24")}, "f3 f1"},
		{"v4 address", flowlog.Filter{IP: netip.PrefixFrom(netip.MustParseAddr("203.0.113.9"), 32)}, "f2"},
		{"v4 wide prefix", flowlog.Filter{IP: netip.MustParsePrefix("10.0.0.0/8")}, "f6 f4 f3 f5 f2 f1"},
		{"v4 prefix misses v6", flowlog.Filter{IP: netip.MustParsePrefix("0.0.0.0/0"), HostID: "h2"}, "f4 f3"},
		{"v6 prefix", flowlog.Filter{IP: netip.MustParsePrefix("fd00::/64")}, "f6 f4"},
		{"v6 address", flowlog.Filter{IP: netip.MustParsePrefix("fd00::7/128")}, "f6 f4"},
		{"v6 other", flowlog.Filter{IP: netip.MustParsePrefix("fd00:1::/64")}, ""},
		{"v4-mapped prefix", flowlog.Filter{IP: netip.MustParsePrefix("::ffff:203.0.113.0/120")}, "f2"},
		{"port dst", flowlog.Filter{Port: 443}, "f4 f1"},
		{"port src", flowlog.Filter{Port: 40001}, "f6"},
		{"direction ingress", flowlog.Filter{Direction: flowlog.DirIngress}, "f4 f3"},
		{"direction egress", flowlog.Filter{Direction: flowlog.DirEgress}, "f6 f5 f2 f1"},
		{"participant by name", flowlog.Filter{Participant: "alice"}, "f3 f1"},
		{"participant by id", flowlog.Filter{Participant: "n2"}, "f4 f3 f5"},
		{"participant none", flowlog.Filter{Participant: "nobody"}, ""},
		{"combined", flowlog.Filter{Participant: "alice", Port: 22}, "f3"},
		{"combined active", flowlog.Filter{IP: netip.MustParsePrefix("fd00::/16"), State: flowlog.StateActive}, "f4"},
	}
	for _, tc := range cases {
		flows, err := s.Flows(ctx, tc.f, flowlog.Page{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := ids(flows); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// rollupOn brings every day's rollup up to date.
func rollupOn(t *testing.T, s *store.Store) {
	t.Helper()
	if _, err := s.Rollup(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAggregatesByHand(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	store.NoClockSlack(s)
	loadKnown(t, s)
	// Once raw only, once from the rollups.
	for _, mode := range []string{"raw", "rollup"} {
		t.Run(mode, func(t *testing.T) {
			store.ForceRaw(s, mode == "raw")
			if mode == "rollup" {
				rollupOn(t, s)
				if table, days, err := store.Plan(s, flowlog.Filter{}, 0); err != nil || table != "pairs_1d" || days != 2 {
					t.Fatalf("plan: %q %d %v, want pairs_1d over 2 days", table, days, err)
				}
			}
			checkKnownAggregates(t, s)
		})
	}
	// Rollup rows exist and hold each flow once.
	var sum []struct {
		F uint64 `json:"f"`
		B uint64 `json:"b"`
	}
	if err := s.QueryRows(ctx, "SELECT sum(flows) AS f, sum(bytes) AS b FROM "+s.Database()+".flows_1m", &sum); err != nil {
		t.Fatal(err)
	}
	if sum[0].F != 6 || sum[0].B != 16000 {
		t.Errorf("flows_1m holds %+v, want 6 flows, 16000 bytes", sum[0])
	}
}

func checkKnownAggregates(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	tk := func(p flowlog.Participant, b, pk, f uint64) flowlog.Talker {
		p.IP = netip.Addr{}
		return flowlog.Talker{Participant: p, Totals: flowlog.Totals{Bytes: b, Packets: pk, Flows: f}}
	}
	ipt := func(ip string, b, pk, f uint64) flowlog.Talker {
		return flowlog.Talker{Participant: flowlog.Participant{IP: netip.MustParseAddr(ip)}, Totals: flowlog.Totals{Bytes: b, Packets: pk, Flows: f}}
	}
	pE := pE
	tops := []struct {
		name string
		q    flowlog.TopQuery
		want []flowlog.Talker
	}{
		{"any by bytes", flowlog.TopQuery{}, []flowlog.Talker{
			tk(pU1, 15000, 150, 2), tk(pN2, 12000, 120, 3), tk(pN1, 4000, 40, 4), tk(pX, 700, 7, 2), tk(pE, 300, 3, 1)}},
		{"any by flows, limit 2", flowlog.TopQuery{Metric: flowlog.MetricFlows, Limit: 2}, []flowlog.Talker{
			tk(pN1, 4000, 40, 4), tk(pN2, 12000, 120, 3)}},
		{"src by flows", flowlog.TopQuery{Metric: flowlog.MetricFlows, Side: flowlog.SideSrc}, []flowlog.Talker{
			tk(pN1, 4000, 40, 3), tk(pN2, 0, 0, 1), tk(pU1, 12000, 120, 1), tk(pX, 0, 0, 1)}},
		{"dst by packets, net1", flowlog.TopQuery{Metric: flowlog.MetricPackets, Side: flowlog.SideDst, Filter: flowlog.Filter{NetworkID: "net1"}},
			[]flowlog.Talker{tk(pU1, 3000, 30, 1), tk(pX, 700, 7, 1), tk(pE, 300, 3, 1), tk(pN1, 0, 0, 1)}},
		{"dst by ip", flowlog.TopQuery{ByIP: true, Side: flowlog.SideDst}, []flowlog.Talker{
			ipt("10.0.0.2", 12000, 120, 2), ipt("10.0.8.5", 3000, 30, 1), ipt("fd00::7", 700, 7, 1), ipt("203.0.113.9", 300, 3, 1), ipt("10.0.0.1", 0, 0, 1)}},
		{"any by ip, port 443", flowlog.TopQuery{ByIP: true, Filter: flowlog.Filter{Port: 443}}, []flowlog.Talker{
			ipt("10.0.0.1", 3000, 30, 1), ipt("10.0.8.5", 3000, 30, 1), ipt("10.0.0.2", 0, 0, 1), ipt("fd00::7", 0, 0, 1)}},
		{"any, participant alice, first day", flowlog.TopQuery{Filter: flowlog.Filter{Participant: "alice", From: day0, To: day0.Add(24 * time.Hour)}},
			[]flowlog.Talker{tk(pU1, 15000, 150, 2), tk(pN2, 12000, 120, 1), tk(pN1, 3000, 30, 1)}},
	}
	for _, tc := range tops {
		got, err := s.Top(ctx, tc.q)
		if err != nil {
			t.Fatalf("top %s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("top %s:\n got %v\nwant %v", tc.name, got, tc.want)
		}
	}

	e := func(a, b flowlog.Participant, by, pk, f uint64) flowlog.Edge {
		a.IP, b.IP = netip.Addr{}, netip.Addr{}
		return flowlog.Edge{Src: a, Dst: b, Totals: flowlog.Totals{Bytes: by, Packets: pk, Flows: f}}
	}
	edges, err := s.Matrix(ctx, flowlog.Filter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantEdges := []flowlog.Edge{e(pU1, pN2, 12000, 120, 1), e(pN1, pU1, 3000, 30, 1), e(pN1, pX, 700, 7, 1),
		e(pN1, pE, 300, 3, 1), e(pN2, pN1, 0, 0, 1), e(pX, pN2, 0, 0, 1)}
	if !reflect.DeepEqual(edges, wantEdges) {
		t.Errorf("matrix:\n got %v\nwant %v", edges, wantEdges)
	}
	edges, err = s.Matrix(ctx, flowlog.Filter{Direction: flowlog.DirIngress}, 1)
	if err != nil || !reflect.DeepEqual(edges, wantEdges[:1]) {
		t.Errorf("matrix ingress, limit 1: got %v %v", edges, err)
	}

	pt := func(t time.Time, b, pk, f uint64) flowlog.Point {
		return flowlog.Point{T: t, Totals: flowlog.Totals{Bytes: b, Packets: pk, Flows: f}}
	}
	two := flowlog.Filter{From: day0, To: day0.Add(48 * time.Hour)}
	series := []struct {
		name string
		f    flowlog.Filter
		step time.Duration
		want []flowlog.Point
	}{
		{"1h", two, time.Hour, []flowlog.Point{pt(base, 3300, 33, 3), pt(base.Add(time.Hour), 12000, 120, 1), pt(day0.Add(27*time.Hour), 700, 7, 2)}},
		{"1m", two, time.Minute, []flowlog.Point{pt(base, 3000, 30, 1), pt(base.Add(time.Minute), 300, 3, 1), pt(base.Add(2*time.Minute), 0, 0, 1),
			pt(base.Add(65*time.Minute), 12000, 120, 1), pt(day0.Add(27*time.Hour), 0, 0, 1), pt(day0.Add(27*time.Hour+30*time.Minute), 700, 7, 1)}},
		{"1d", two, 24 * time.Hour, []flowlog.Point{pt(day0, 15300, 153, 4), pt(day0.Add(24*time.Hour), 700, 7, 2)}},
		{"10s", two, 10 * time.Second, []flowlog.Point{pt(base, 3000, 30, 1), pt(base.Add(90*time.Second), 300, 3, 1), pt(base.Add(2*time.Minute), 0, 0, 1),
			pt(base.Add(65*time.Minute), 12000, 120, 1), pt(day0.Add(27*time.Hour), 0, 0, 1), pt(day0.Add(27*time.Hour+30*time.Minute), 700, 7, 1)}},
		{"unbounded 1h", flowlog.Filter{}, time.Hour, []flowlog.Point{pt(base, 3300, 33, 3), pt(base.Add(time.Hour), 12000, 120, 1), pt(day0.Add(27*time.Hour), 700, 7, 2)}},
		// f3 lasts 3 s, one of them in the range: a third of its bytes.
		{"unaligned range, 1h", flowlog.Filter{From: base.Add(time.Minute), To: base.Add(65*time.Minute + time.Second)}, time.Hour,
			[]flowlog.Point{pt(base, 300, 3, 2), pt(base.Add(time.Hour), 4000, 40, 1)}},
		{"unaligned range, 5m", flowlog.Filter{From: base.Add(time.Minute + time.Second), To: day0.Add(27*time.Hour + 30*time.Minute)}, 5 * time.Minute,
			[]flowlog.Point{pt(base, 300, 3, 2), pt(base.Add(65*time.Minute), 12000, 120, 1), pt(day0.Add(27*time.Hour), 0, 0, 1)}},
		{"net2, 1h", flowlog.Filter{NetworkID: "net2"}, time.Hour, []flowlog.Point{pt(base.Add(time.Hour), 12000, 120, 1), pt(day0.Add(27*time.Hour), 0, 0, 1)}},
		{"ip filter, 1h", flowlog.Filter{IP: netip.MustParsePrefix("10.0.8.5/32")}, time.Hour, []flowlog.Point{pt(base, 3000, 30, 1), pt(base.Add(time.Hour), 12000, 120, 1)}},
	}
	for _, tc := range series {
		got, err := s.Series(ctx, tc.f, tc.step)
		if err != nil {
			t.Fatalf("series %s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("series %s:\n got %v\nwant %v", tc.name, got, tc.want)
		}
	}

	actives := []struct {
		name string
		f    flowlog.Filter
		want uint64
	}{
		{"all", flowlog.Filter{}, 2},
		{"net2", flowlog.Filter{NetworkID: "net2"}, 1},
		{"port 443", flowlog.Filter{Port: 443}, 1},
		{"first day", flowlog.Filter{From: day0, To: day0.Add(24 * time.Hour)}, 1},
		{"finished", flowlog.Filter{State: flowlog.StateFinished}, 0},
		{"participant n1", flowlog.Filter{Participant: "n1"}, 1},
	}
	for _, tc := range actives {
		got, err := s.Active(ctx, tc.f)
		if err != nil || got != tc.want {
			t.Errorf("active %s: got %d %v, want %d", tc.name, got, err, tc.want)
		}
	}
}

// Same answers from the rollups as from the raw flows, for many queries,
// including while a day is dirty (changed after its rollup), from every
// rollup table (each is checked to be the one read): flows whose DESTROY
// replaces their START, connections both ends report (the egress
// observation counts, the ingress one is shadowed), and late events that
// dirty an old day, a DESTROY and an egress observation that shadows an
// ingress one counted until then.
func TestRollupAnswersEqualRaw(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	store.NoClockSlack(s)
	store.SliceRollups(s, 1) // every host its own slice: the slices add up to the raw answers
	loadKnown(t, s)
	// More flows, spread over three days, many sharing rollup keys.
	var evs []flowlog.Event
	parts := []flowlog.Participant{pN1, pN2, pU1, pE, pX}
	for i := 0; i < 600; i++ {
		f := flowSpec{id: fmt.Sprint("g", i), host: fmt.Sprint("h", i%3), net: fmt.Sprint("net", i%2), src: parts[i%5], dst: parts[(i/5)%5],
			proto: []uint8{6, 17, 1}[i%3], sp: uint16(30000 + i), dp: []uint16{443, 53, 22, 80}[i%4], dir: flowlog.Direction(1 + i%2),
			start: day0.Add(time.Duration(i) * 397 * time.Second), active: i%7 == 0,
			bs: uint64(i * 10), br: uint64(i * 3), ps: uint64(i), pr: uint64(i / 2)}
		st, de := f.events()
		evs = append(evs, st)
		if !f.active {
			evs = append(evs, de)
		}
		// Every third connection is reported by its other end too: the
		// initiator's egress observation when g is the ingress one (2 s
		// apart: clocks differ), else the responder's ingress one, with
		// other counters.
		if i%3 == 0 {
			o := f
			o.id, o.host, o.start = fmt.Sprint("o", i), fmt.Sprint("h", (i+1)%3), f.start.Add(2*time.Second)
			o.dir = 3 - f.dir
			o.bs, o.br = f.br+1, f.bs+1
			ost, ode := o.events()
			evs = append(evs, ost)
			if !f.active {
				evs = append(evs, ode)
			}
		}
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	// An ingress observation whose egress twin arrives late, after the
	// rollup of its day: counted until then, shadowed after.
	lone := flowSpec{id: "lone-in", host: "h2", net: "net1", src: pN1, dst: pU1, proto: 6, sp: 777, dp: 443, dir: flowlog.DirIngress,
		start: day0.Add(20 * time.Hour), bs: 11, br: 12, ps: 1, pr: 1}
	lst, lde := lone.events()
	if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{lst, lde}}); err != nil {
		t.Fatal(err)
	}
	rollupOn(t, s)

	now := time.Now().UTC()
	filters := []flowlog.Filter{
		{},
		{From: day0, To: day0.Add(72 * time.Hour)},
		{From: day0.Add(90 * time.Minute), To: day0.Add(50 * time.Hour)},                                              // hour-aligned, partial days
		{From: day0.Add(7*time.Hour + 3*time.Minute), To: day0.Add(30*time.Hour + 17*time.Minute)},                    // minute-aligned
		{From: day0.Add(7*time.Hour + 3*time.Minute + 5*time.Second), To: now.Add(-time.Millisecond)},                 // unaligned
		{NetworkID: "net1", Direction: flowlog.DirEgress, Protocols: []uint8{6, 17}},                                  // dims
		{Participant: "alice", SrcTypes: []flowlog.ParticipantType{flowlog.ParticipantUser, flowlog.ParticipantNode}}, // dims
		{Username: "u1", HostID: "h1", From: day0.Add(24 * time.Hour)},
		{DstEntityID: "n2", SrcEntityID: "u1"},
	}
	steps := []time.Duration{time.Minute, 5 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 90 * time.Second}
	compare := func(label string) {
		t.Helper()
		for i, f := range filters {
			var raw, auto []any
			for _, force := range []bool{true, false} {
				store.ForceRaw(s, force)
				var res []any
				for _, q := range []flowlog.TopQuery{
					{Filter: f, Limit: 100}, {Filter: f, Side: flowlog.SideSrc, Metric: flowlog.MetricPackets, Limit: 100},
					{Filter: f, Side: flowlog.SideDst, Metric: flowlog.MetricFlows, Limit: 3},
					{Filter: f, ByIP: true, Limit: 100}, {Filter: f, ByIP: true, Side: flowlog.SideDst, Metric: flowlog.MetricFlows, Limit: 100},
				} {
					top, err := s.Top(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					res = append(res, top)
				}
				m, err := s.Matrix(ctx, f, 1000)
				if err != nil {
					t.Fatal(err)
				}
				a, err := s.Active(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				res = append(res, m, a)
				for _, step := range steps {
					p, err := s.Series(ctx, f, step)
					if err != nil {
						t.Fatal(err)
					}
					res = append(res, p)
				}
				if force {
					raw = res
				} else {
					auto = res
				}
			}
			for j := range raw {
				if !reflect.DeepEqual(raw[j], auto[j]) {
					t.Errorf("%s: filter %d, result %d differs:\n raw    %v\n rollup %v", label, i, j, raw[j], auto[j])
				}
			}
		}
	}
	compare("all days clean")
	// Each aggregate read the cheapest table that answers it exactly.
	observeAll := filters[1]
	observeAll.Observations = flowlog.ObserveAll
	for _, c := range []struct {
		what  string
		table func() (string, int, error)
		want  string
	}{
		{"matrix", func() (string, int, error) { return store.Plan(s, filters[1], 0) }, "pairs_1d"},
		{"top participants", func() (string, int, error) { return store.TopPlan(s, flowlog.TopQuery{Filter: filters[1]}) }, "talkers_1d"},
		{"top participants, every observation", func() (string, int, error) {
			return store.TopPlan(s, flowlog.TopQuery{Filter: observeAll})
		}, "talkers_1d"},
		{"top participants, participant filter", func() (string, int, error) {
			return store.TopPlan(s, flowlog.TopQuery{Filter: flowlog.Filter{From: day0, To: day0.Add(72 * time.Hour), Participant: "alice"}})
		}, "pairs_1d"},
		{"top participants, host filter", func() (string, int, error) {
			return store.TopPlan(s, flowlog.TopQuery{Filter: flowlog.Filter{From: day0, To: day0.Add(72 * time.Hour), HostID: "h1"}})
		}, "flows_1h"},
		{"top IPs", func() (string, int, error) { return store.TopPlan(s, flowlog.TopQuery{Filter: filters[1], ByIP: true}) }, "addrs_1d"},
		{"series, 1 h", func() (string, int, error) { return store.Plan(s, filters[1], time.Hour) }, "series_sh"},
		{"series, 1 d, network and direction", func() (string, int, error) {
			return store.Plan(s, flowlog.Filter{From: day0, To: day0.Add(72 * time.Hour), NetworkID: "net1", Direction: flowlog.DirEgress}, 24*time.Hour)
		}, "series_sh"},
		{"series, 1 h, from 01:30", func() (string, int, error) {
			return store.Plan(s, flowlog.Filter{From: day0.Add(-90 * time.Minute), To: day0.Add(72 * time.Hour)}, time.Hour)
		}, "series_1h"},
		{"series, 1 h, participant filter", func() (string, int, error) {
			return store.Plan(s, flowlog.Filter{From: day0, To: day0.Add(72 * time.Hour), Participant: "alice"}, time.Hour)
		}, "flows_1h"},
	} {
		want := 3
		if c.want == "series_sh" {
			want = 4 // and the start hours of the day before, whose bytes may reach the range
		}
		if table, days, err := c.table(); err != nil || table != c.want || days != want {
			t.Errorf("%s over three whole days: reads %q for %d days (%v), want %s for %d", c.what, table, days, err, c.want, want)
		}
	}
	if table, days, _ := store.Plan(s, filters[1], 5*time.Minute); table != "flows_1m" || days != 3 {
		t.Errorf("5m step: plan uses %q for %d days, want flows_1m for 3", table, days)
	}
	if table, days, _ := store.Plan(s, filters[2], 0); table != "pairs_1d" || days != 1 {
		t.Errorf("range with one whole day: plan uses %q for %d days, want pairs_1d for 1", table, days)
	}
	if table, _, _ := store.Plan(s, filters[3], 0); table != "" {
		t.Errorf("range without a whole day: plan uses %q, want raw", table)
	}
	if table, _, _ := store.Plan(s, flowlog.Filter{Port: 443}, 0); table != "" {
		t.Errorf("port filter: plan uses %q, want raw", table)
	}
	// Days the rollup serves are not read raw.
	q, err := store.SeriesSQL(s, filters[1], time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	est := estimate(t, s, q)
	for _, e := range est {
		if e.Table == "flows" && e.Parts != 0 || e.Table == "series_sh" && e.Parts == 0 {
			t.Errorf("reads %d parts of %s; want none of flows, some of series_sh (%+v)", e.Parts, e.Table, est)
		}
	}
	if table, _, _ := store.Plan(s, filters[1], 90*time.Second); table != "" {
		t.Errorf("90s step: plan uses %q, want raw", table)
	}

	// Day 0 changes after its rollup: f5 ends, a late flow arrives, and an
	// old batch is retried. Answers stay exact (day 0 is read raw) ...
	_, d5 := known[4].events()
	d5.BytesSent, d5.BytesRecv, d5.PacketsSent, d5.PacketsRecv = 50, 60, 5, 6
	late := flowSpec{id: "late", host: "h1", net: "net1", src: pU1, dst: pN1, proto: 6, sp: 1, dp: 443, dir: flowlog.DirEgress,
		start: base.Add(3 * time.Minute), bs: 7, br: 8, ps: 1, pr: 1}
	ls, ld := late.events()
	twin := lone
	twin.id, twin.host, twin.dir, twin.start = "lone-out", "h1", flowlog.DirEgress, lone.start.Add(-time.Second)
	tst, tde := twin.events()
	for _, b := range [][]flowlog.Event{{d5, ls}, {ld}, evs[:50], {tst, tde}} {
		if err := s.Insert(ctx, &flowlog.Batch{Events: b}); err != nil {
			t.Fatal(err)
		}
	}
	if _, days, _ := store.Plan(s, filters[1], 0); days != 2 {
		t.Errorf("with day 0 dirty the rollup should serve 2 days, serves %d", days)
	}
	compare("day 0 dirty")
	// ... and again once recomputed.
	rollupOn(t, s)
	if _, days, _ := store.Plan(s, filters[1], 0); days != 3 {
		t.Errorf("after the pass the rollup should serve 3 days, serves %d", days)
	}
	compare("recomputed")
}

// The rollup job's bookkeeping: a pass leaves nothing dirty, a second pass
// has nothing to do, and with the clock slack a fresh mark stays dirty
// until the next pass.
func TestRollupPasses(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	loadKnown(t, s)
	st, err := s.Rollup(ctx)
	if err != nil || st.Days != 2 {
		t.Fatalf("first pass: %+v %v, want 2 days", st, err)
	}
	// With the slack, marks newer than (pass stamp - slack) are not covered.
	if _, days, _ := store.Plan(s, flowlog.Filter{}, 0); days != 0 {
		t.Errorf("marks within the slack should keep days dirty, %d clean", days)
	}
	time.Sleep(2100 * time.Millisecond)
	if st, err = s.Rollup(ctx); err != nil || st.Days != 2 {
		t.Fatalf("second pass: %+v %v, want 2 days", st, err)
	}
	if _, days, _ := store.Plan(s, flowlog.Filter{}, 0); days != 2 {
		t.Errorf("after the slack, %d days clean, want 2", days)
	}
	if st, err = s.Rollup(ctx); err != nil || st.Days != 0 {
		t.Fatalf("third pass: %+v %v, want nothing to do", st, err)
	}
	// The background job leaves a day being written for later.
	store.NoClockSlack(s)
	st1, _ := known[0].events()
	if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{st1}}); err != nil {
		t.Fatal(err)
	}
	if st, err = store.RollupQuiet(ctx, s, time.Hour); err != nil || st.Days != 0 || st.Busy != 1 {
		t.Fatalf("pass with a busy day: %+v %v, want it left for later", st, err)
	}
	time.Sleep(20 * time.Millisecond)
	if st, err = store.RollupQuiet(ctx, s, 10*time.Millisecond); err != nil || st.Days != 1 || st.Busy != 0 {
		t.Fatalf("pass once quiet: %+v %v, want the day recomputed", st, err)
	}
	// A day whose current hour is being written but that has another
	// dirty hour no longer written (an hour that ended) is recomputed:
	// its other hours then serve from the rollups by hour.
	other, _ := known[2].events() // an hour after st1's
	if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{other}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{st1}}); err != nil {
		t.Fatal(err)
	}
	if st, err = store.RollupQuiet(ctx, s, time.Second); err != nil || st.Days != 1 || st.Busy != 0 {
		t.Fatalf("pass with a quiet dirty hour and a busy one: %+v %v, want the day recomputed", st, err)
	}
}

// The background job runs and stops with Close.
func TestRollupJob(t *testing.T) {
	s := open(t, store.Options{RollupEvery: 50 * time.Millisecond})
	loadKnown(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, days, _ := store.Plan(s, flowlog.Filter{}, 0); days == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background job did not roll up the two days")
		}
		time.Sleep(50 * time.Millisecond)
	}
	store.StopJobs(s)
}

// The rollup job's statements are bound by the query memory limit: one
// over it fails, and its days stay dirty (readers read them raw, exactly)
// instead of the recomputation taking the collector's memory with it.
func TestRollupRespectsTheQueryMemoryLimit(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	loadKnown(t, s)
	store.LimitRollupMemory(s, 1000)
	if _, err := s.Rollup(ctx); err == nil || !strings.Contains(err.Error(), "memory limit") {
		t.Fatalf("a pass over a 1,000-byte limit: err = %v, want the engine's memory limit", err)
	}
	if _, days, _ := store.Plan(s, flowlog.Filter{}, 0); days != 0 {
		t.Errorf("%d days served by rollups after a failed pass, want 0", days)
	}
}
