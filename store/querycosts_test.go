package store_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// TestQueryCosts measures what each query costs over a large synthetic data
// set (BENCHMARKS.md, "Query costs at 10M flows"). It is skipped unless
// -flows is given, so CI does not pay for it:
//
//	go test -run TestQueryCosts -v -timeout 60m ./store/ -args -flows=10000000
//
// With FLOWLOG_STORE_TEST_DIR set, the data stays there and a later run with
// the same -flows reuses it.
var (
	costFlows = flag.Int("flows", 0, "TestQueryCosts: number of synthetic flows (0: skip)")
	costRuns  = flag.Int("runs", 5, "TestQueryCosts: runs of each query (the median is reported)")
)

func TestQueryCosts(t *testing.T) {
	if *costFlows <= 0 {
		t.Skip("set -flows=N to measure query costs (go test -run TestQueryCosts -v ./store/ -args -flows=10000000)")
	}
	ctx := context.Background()
	n := *costFlows
	// Starts span the 30 days before now; the retention is longer so that
	// nothing expires while measuring.
	s := open(t, store.Options{Database: fmt.Sprint("querycosts_", n), Retention: 40 * 24 * time.Hour, MaxOffset: -1}) // the deep offset page is measured
	store.NoClockSlack(s)
	var loaded []struct {
		N   uint64 `json:"n"`
		End int64  `json:"end"`
	}
	if err := s.QueryRows(ctx, "SELECT count() AS n, max(toUnixTimestamp64Milli(start_ts)) AS end FROM "+s.Database()+".flows FINAL", &loaded); err != nil {
		t.Fatal(err)
	}
	var end time.Time
	if loaded[0].N >= uint64(n) {
		end = time.UnixMilli(loaded[0].End).UTC()
		t.Logf("reusing %d flows ending %s", loaded[0].N, end.Format(time.RFC3339))
		// Every day dirty again, to measure a full rebuild of the rollups.
		if err := s.Exec(ctx, "INSERT INTO "+s.Database()+".rollup_dirty (day, marked) SELECT DISTINCT toDate(start_ts), "+
			"toUnixTimestamp64Nano(now64(9)) FROM "+s.Database()+".flows"); err != nil {
			t.Fatal(err)
		}
	} else {
		if loaded[0].N > 0 {
			t.Fatalf("database %s holds %d flows, not %d: drop it first", s.Database(), loaded[0].N, n)
		}
		end = time.Now().UTC().Truncate(time.Minute)
		g := newSynth(n, end)
		t0 := time.Now()
		rows := g.load(t, s)
		took := time.Since(t0)
		t.Logf("inserted %d flows (%d rows, START then DESTROY in a later batch) in %d-row batches: %s, %.0f rows/s",
			n, rows, synthBatchRows, took.Round(time.Second), float64(rows)/took.Seconds())
		t0 = time.Now()
		if err := s.Exec(ctx, "OPTIMIZE TABLE "+s.Database()+".flows FINAL"); err != nil {
			t.Fatal(err)
		}
		t.Logf("OPTIMIZE TABLE flows FINAL (every START merged with its DESTROY): %s", time.Since(t0).Round(time.Second))
	}
	var parts []struct {
		P    uint64 `json:"p"`
		Rows uint64 `json:"r"`
		B    uint64 `json:"b"`
	}
	if err := s.QueryRows(ctx, "SELECT count() AS p, sum(rows) AS r, sum(bytes_on_disk) AS b FROM system.parts WHERE active AND database = '"+
		strings.Trim(s.Database(), "`")+"'", &parts); err == nil && len(parts) == 1 {
		t.Logf("flows: %d active parts, %d rows, %d MiB on disk (all tables)", parts[0].P, parts[0].Rows, parts[0].B>>20)
	}

	// Full rebuild of the rollups (every day dirty), then the steady state:
	// a new batch makes today dirty again, and one pass recomputes today.
	t0 := time.Now()
	st, err := s.Rollup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rollup pass, every day dirty: %d days in %s", st.Days, time.Since(t0).Round(time.Millisecond))
	fresh := newSynth(1000, end)
	fresh.prefix = "fresh"
	touchToday := func() {
		evs := fresh.batchAt(end)
		if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		touchToday()
		t0 = time.Now()
		if st, err = s.Rollup(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("rollup pass, today dirty: %d day in %s", st.Days, time.Since(t0).Round(time.Millisecond))
	}
	for _, table := range []string{"flows", "flows_1m", "flows_1h"} {
		var c []struct {
			N uint64 `json:"n"`
		}
		if err := s.QueryRows(ctx, "SELECT count() AS n FROM "+s.Database()+"."+table+" FINAL", &c); err == nil {
			t.Logf("%s: %d rows (merged)", table, c[0].N)
		}
	}
	// Steady state: background merges have dropped the rows of older
	// rollup generations (the rebuilds above wrote every day again).
	t0 = time.Now()
	for _, table := range []string{"flows_1m", "flows_1h"} {
		if err := s.Exec(ctx, "OPTIMIZE TABLE "+s.Database()+"."+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("OPTIMIZE TABLE flows_1m, flows_1h FINAL: %s", time.Since(t0).Round(time.Millisecond))
	// Aggregates see today dirty, as they would between passes.
	touchToday()

	type variant struct {
		name   string
		raw    bool
		argMax bool
	}
	rawFinal := variant{"raw FINAL", true, false}
	rawArgMax := variant{"raw argMax", true, true}
	rollup := variant{"rollup (+ today raw)", false, false}
	// Every query is measured twice: each connection once (the default),
	// and every observation (no deduplication), FLOWLOG_COST_OBSERVATIONS=
	// one or all to measure one of them only.
	obs := flowlog.ObserveOne
	var measureOnce func(name string, vs []variant, q func() (int, error))
	measure := func(name string, vs []variant, q func() (int, error)) {
		t.Helper()
		for _, o := range costObservations() {
			obs = o
			measureOnce(name+[]string{"", " [observations=all]"}[o], vs, q)
		}
	}
	measureOnce = func(name string, vs []variant, q func() (int, error)) {
		t.Helper()
		var cells []string
		for _, v := range vs {
			store.ForceRaw(s, v.raw)
			store.UseArgMax(s, v.argMax)
			var ds []time.Duration
			var got int
			for r := 0; r < *costRuns; r++ {
				t0 := time.Now()
				n, err := q()
				if err != nil {
					t.Fatalf("%s, %s: %v", name, v.name, err)
				}
				ds = append(ds, time.Since(t0))
				got = n
			}
			slices.Sort(ds)
			cells = append(cells, fmt.Sprintf("%s %s (%d rows)", v.name, fmtDur(ds[len(ds)/2]), got))
		}
		store.ForceRaw(s, false)
		store.UseArgMax(s, false)
		t.Logf("| %s | %s |", name, strings.Join(cells, " | "))
	}
	flows := func(f flowlog.Filter, p flowlog.Page) func() (int, error) {
		return func() (int, error) {
			f.Observations = obs
			r, err := s.Flows(ctx, f, p)
			return len(r), err
		}
	}
	month := flowlog.Filter{From: end.Add(-30 * 24 * time.Hour).Truncate(time.Hour), To: end.Add(time.Hour).Truncate(time.Hour)}
	day := flowlog.Filter{From: end.Add(-24 * time.Hour).Truncate(time.Minute), To: end.Add(time.Minute).Truncate(time.Minute)}
	dayUnaligned := flowlog.Filter{From: end.Add(-24*time.Hour + 7*time.Second), To: end.Add(7 * time.Second)}
	// argMax is measured once per kind of query, one run: it is an order
	// of magnitude slower than FINAL here, tens of seconds a query.
	pair := []variant{rawFinal, rawArgMax}
	three := []variant{rawFinal, rawArgMax, rollup}
	final := []variant{rawFinal}
	two := []variant{rawFinal, rollup}

	measure("Flows page 1 (100)", pair, flows(flowlog.Filter{}, flowlog.Page{PerPage: 100}))
	measure("Flows page 1, participant filter", final, flows(flowlog.Filter{Participant: "user-7"}, flowlog.Page{PerPage: 100}))
	measure("Flows page 1, last hour, port 22", final, flows(flowlog.Filter{From: end.Add(-time.Hour), Port: 22}, flowlog.Page{PerPage: 100}))
	measure("Flows page 2 by OFFSET (one query over every day)", final, flows(flowlog.Filter{}, flowlog.Page{PerPage: 100, Number: 2}))
	deep := min(5000, n/100/2)
	measure(fmt.Sprintf("Flows page %d by OFFSET", deep), final, flows(flowlog.Filter{}, flowlog.Page{PerPage: 100, Number: deep}))
	prev, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{PerPage: 100, Number: deep - 1})
	if err != nil || len(prev) == 0 {
		t.Fatalf("page %d: %v", deep-1, err)
	}
	measure(fmt.Sprintf("Flows page %d by cursor", deep), final, flows(flowlog.Filter{}, flowlog.Page{PerPage: 100, After: store.CursorOf(&prev[len(prev)-1])}))
	top := func(q flowlog.TopQuery) func() (int, error) {
		return func() (int, error) {
			q.Filter.Observations = obs
			r, err := s.Top(ctx, q)
			return len(r), err
		}
	}
	measure("Top 10 participants, any side, bytes, 30 days", three, top(flowlog.TopQuery{Filter: month}))
	measure("Top 10 participants, src, flows, all", two, top(flowlog.TopQuery{Side: flowlog.SideSrc, Metric: flowlog.MetricFlows}))
	measure("Top 10 IPs, any side, bytes, 30 days", final, top(flowlog.TopQuery{Filter: month, ByIP: true}))
	measure("Top 10 external prefixes (/24, /48), any side, bytes, 30 days", final, top(flowlog.TopQuery{Filter: month, ByPrefix: true}))
	// The listing sorted by bytes or duration reads the whole range in one
	// query (days do not order them); its cursor pages cost the same.
	byBytes := flowlog.Sort{Key: flowlog.SortBytes}
	measure("Flows page 1 by bytes, 30 days", final, flows(month, flowlog.Page{PerPage: 100, Sort: byBytes}))
	measure("Flows page 1 by duration, last day", final, flows(day, flowlog.Page{PerPage: 100, Sort: flowlog.Sort{Key: flowlog.SortDuration}}))
	if first, err := s.Flows(ctx, month, flowlog.Page{PerPage: 100, Sort: byBytes}); err == nil && len(first) > 0 {
		measure("Flows page 2 by bytes by cursor, 30 days", final, flows(month, flowlog.Page{PerPage: 100, Sort: byBytes, After: byBytes.CursorOf(&first[len(first)-1])}))
	}
	measure("Matrix top 100, 30 days", two, func() (int, error) {
		f := month
		f.Observations = obs
		r, err := s.Matrix(ctx, f, 100)
		return len(r), err
	})
	series := func(f flowlog.Filter, step time.Duration) func() (int, error) {
		return func() (int, error) {
			f.Observations = obs
			r, err := s.Series(ctx, f, step)
			return len(r), err
		}
	}
	measure("Series 30 days, 1h step", three, series(month, time.Hour))
	measure("Series 1 day, 1m step", two, series(day, time.Minute))
	measure("Series 1 day, 1m step, unaligned from/to", two, series(dayUnaligned, time.Minute))
	week := flowlog.Filter{From: end.Add(-6 * 24 * time.Hour).Truncate(24 * time.Hour), To: end.Add(time.Minute).Truncate(time.Minute)}
	measure("Series 6 days from midnight, 5m step", two, series(week, 5*time.Minute))
	measure("Series 1 day, 5m step, network filter", two, series(flowlog.Filter{From: day.From, To: day.To, NetworkID: "net1"}, 5*time.Minute))
	// Active always reads raw (measured faster than through the rollups).
	measure("Active, all", pair, func() (int, error) {
		n, err := s.Active(ctx, flowlog.Filter{Observations: obs})
		return int(n), err
	})
	measure("Active, 30 days, one host", final, func() (int, error) {
		n, err := s.Active(ctx, flowlog.Filter{From: month.From, To: month.To, HostID: "host-07", Observations: obs})
		return int(n), err
	})
}

// costObservations: FLOWLOG_COST_OBSERVATIONS=one|all measures one way only.
func costObservations() []flowlog.Observations {
	switch os.Getenv("FLOWLOG_COST_OBSERVATIONS") {
	case "one":
		return []flowlog.Observations{flowlog.ObserveOne}
	case "all":
		return []flowlog.Observations{flowlog.ObserveAll}
	}
	return []flowlog.Observations{flowlog.ObserveOne, flowlog.ObserveAll}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

const synthBatchRows = 100_000

// synth generates flows with realistic cardinalities: 50 hosts in 3
// networks, 2,000 participants (50 nodes, 800 users, 600 external clients,
// 50 egress routes, 500 external addresses), peers Zipf-distributed, starts
// spread evenly over the 30 days before end; most flows last seconds, the
// ones started in the last 10 minutes are half still active, and 0.1% never
// end.
type synth struct {
	n      int
	end    time.Time
	rng    *rand.Rand
	zipf   *rand.Zipf
	perm   []int
	parts  []flowlog.Participant
	prefix string
	seq    uint64
}

func newSynth(n int, end time.Time) *synth {
	g := &synth{n: n, end: end, rng: rand.New(rand.NewPCG(1, 2)), prefix: "synth"}
	g.zipf = rand.NewZipf(g.rng, 1.1, 4, 1999)
	g.perm = g.rng.Perm(2000)
	for i := 0; i < 2000; i++ {
		var p flowlog.Participant
		switch {
		case i < 50:
			p = flowlog.Participant{Type: flowlog.ParticipantNode, ID: fmt.Sprintf("node-%02d", i), Name: fmt.Sprintf("host-%02d", i),
				IP: netip.AddrFrom4([4]byte{10, byte(i % 3), 0, byte(i + 1)})}
		case i < 850:
			p = flowlog.Participant{Type: flowlog.ParticipantUser, ID: fmt.Sprintf("user-%d", i-50), Name: fmt.Sprintf("user%d@example.com", i-50),
				IP: netip.AddrFrom4([4]byte{10, byte(i % 3), 8 + byte((i-50)/250), byte((i - 50) % 250)})}
		case i < 1450:
			p = flowlog.Participant{Type: flowlog.ParticipantExtClient, ID: fmt.Sprintf("ext-%d", i-850), Name: fmt.Sprintf("phone-%d", i-850)}
			var a [16]byte
			a[0], a[1] = 0xfd, 0x00
			binary.BigEndian.PutUint32(a[12:], uint32(i))
			p.IP = netip.AddrFrom16(a)
		case i < 1500:
			p = flowlog.Participant{Type: flowlog.ParticipantEgressRoute, ID: fmt.Sprintf("egress-%d", i-1450), Name: fmt.Sprintf("office-%d", i-1450),
				IP: netip.AddrFrom4([4]byte{192, 168, byte(i - 1450), 10})}
		default:
			p = flowlog.Participant{Type: flowlog.ParticipantExternal, IP: netip.AddrFrom4([4]byte{198, 51, byte(i / 256), byte(i)})}
		}
		g.parts = append(g.parts, p)
	}
	return g
}

var dports = []uint16{443, 443, 443, 443, 80, 22, 5432, 6443, 8080, 3000}

// flow returns the events of flow i starting at start.
func (g *synth) flow(start time.Time) (st, de flowlog.Event, ends bool) {
	r := g.rng
	g.seq++
	var id [16]byte
	binary.BigEndian.PutUint64(id[:8], splitmix(g.seq))
	binary.BigEndian.PutUint64(id[8:], splitmix(g.seq^0x5eed))
	h := r.IntN(50)
	peer := g.parts[g.perm[g.zipf.Uint64()]]
	if peer.Type == flowlog.ParticipantNode && peer.ID == g.parts[h].ID {
		peer = g.parts[50+r.IntN(800)]
	}
	st = flowlog.Event{
		Type: flowlog.EventStart, FlowID: g.prefix + hex.EncodeToString(id[:]), HostID: fmt.Sprintf("host-%02d", h), HostName: g.parts[h].Name,
		NetworkID: fmt.Sprint("net", h%3), Protocol: 6, SrcPort: uint16(32768 + r.IntN(28000)), DstPort: dports[r.IntN(len(dports))],
		Direction: flowlog.DirEgress, Src: g.parts[h], Dst: peer, Start: start, Version: 1,
	}
	switch x := r.IntN(100); {
	case x < 25:
		st.Protocol, st.DstPort = 17, []uint16{53, 51820, 123}[r.IntN(3)]
	case x < 30:
		st.Protocol, st.SrcPort, st.DstPort, st.ICMPType = 1, 0, 0, 8
	}
	if r.IntN(100) < 40 {
		st.Direction, st.Src, st.Dst = flowlog.DirIngress, peer, g.parts[h]
	}
	de = st
	de.Type, de.Version = flowlog.EventDestroy, 2
	de.End = start.Add(time.Duration(r.ExpFloat64() * 30 * float64(time.Second)))
	de.BytesSent = uint64(r.ExpFloat64() * 20000)
	de.BytesRecv = uint64(r.ExpFloat64() * 50000)
	de.PacketsSent, de.PacketsRecv = de.BytesSent/800+1, de.BytesRecv/1000+1
	ends = r.IntN(1000) != 0 && (g.end.Sub(start) > 10*time.Minute || r.IntN(2) == 0)
	return st, de, ends
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// batchAt is one batch of START and DESTROY events of 1,000 flows starting
// just before at.
func (g *synth) batchAt(at time.Time) []flowlog.Event {
	var evs []flowlog.Event
	for i := 0; i < 1000; i++ {
		st, de, _ := g.flow(at.Add(-time.Duration(i) * time.Second))
		evs = append(evs, st, de)
	}
	return evs
}

// load inserts the n flows in time order: batch k holds the STARTs of one
// stretch of flows and the DESTROYs of the previous stretch (so a flow's
// two rows are in different inserts), 100,000 rows a batch, by two
// inserters. It returns the number of rows.
func (g *synth) load(t *testing.T, s *store.Store) int {
	span := 30 * 24 * time.Hour
	first := g.end.Add(-span)
	per := synthBatchRows / 2
	batches := make(chan []flowlog.Event, 2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := s.Insert(context.Background(), &flowlog.Batch{Events: b}); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		}()
	}
	rows := 0
	var pending []flowlog.Event
	step := float64(span) / float64(g.n)
	for i := 0; i < g.n; i += per {
		b := pending
		pending = make([]flowlog.Event, 0, per)
		for j := i; j < i+per && j < g.n; j++ {
			start := first.Add(time.Duration(math.Floor(float64(j)*step + g.rng.Float64()*step)))
			st, de, ends := g.flow(start.Truncate(time.Millisecond))
			b = append(b, st)
			if ends {
				pending = append(pending, de)
			}
		}
		rows += len(b)
		batches <- b
	}
	rows += len(pending)
	batches <- pending
	close(batches)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return rows
}
