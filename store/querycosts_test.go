package store_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/flowgen"
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
		if err := s.Exec(ctx, "INSERT INTO "+s.Database()+".rollup_marks (day, hour, marked) SELECT day, 0, "+
			"toUnixTimestamp64Nano(now64(9)) FROM (SELECT DISTINCT toDate(start_ts) AS day FROM "+s.Database()+".flows)"); err != nil {
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
	fresh.Prefix = "fresh"
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
	measure("Flows page 2 by OFFSET (partitions counted first)", final, flows(flowlog.Filter{}, flowlog.Page{PerPage: 100, Number: 2}))
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

const synthBatchRows = flowgen.BatchRows

// synth is the shared generator (internal/flowgen) with the tests' helpers.
type synth struct{ *flowgen.Gen }

func newSynth(n int, end time.Time) synth { return synth{flowgen.New(n, end)} }

// load inserts the generator's flows (flowgen.Gen.Load) and returns the
// number of rows.
func (g synth) load(t *testing.T, s *store.Store) int {
	t.Helper()
	rows, err := g.Load(context.Background(), s.Insert)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func (g synth) batchAt(at time.Time) []flowlog.Event { return g.BatchAt(at) }
