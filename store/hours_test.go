package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// The rollups by hour of start answer as the raw flows do, hour by hour:
// after a pass, a day that inserts made dirty keeps its untouched hours
// served by the rollups, and only its dirty hours are read raw. Dirty
// hours here: a DESTROY landing hours after its START (the start's hour,
// and the hour its bytes run to), an egress observation just past an hour
// boundary that shadows an ingress one just before it (both hours), and a
// retried batch.
func TestRollupHoursEqualRaw(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	store.NoClockSlack(s)
	parts := []flowlog.Participant{pN1, pN2, pU1, pE, pX}
	var evs []flowlog.Event
	for i := 0; i < 300; i++ { // 36 hours from day0, both ends reporting every third connection
		f := flowSpec{id: fmt.Sprint("h", i), host: fmt.Sprint("h", i%3), net: fmt.Sprint("net", i%2), src: parts[i%5], dst: parts[(i/5)%5],
			proto: []uint8{6, 17}[i%2], sp: uint16(20000 + i), dp: []uint16{443, 53, 22}[i%3], dir: flowlog.Direction(1 + i%2),
			start: day0.Add(time.Duration(i) * 433 * time.Second), bs: uint64(i * 11), br: uint64(i * 5), ps: uint64(i), pr: 1}
		st, de := f.events()
		evs = append(evs, st, de)
		if i%3 == 0 {
			o := f
			o.id, o.host, o.dir, o.start, o.bs, o.br = fmt.Sprint("ho", i), fmt.Sprint("h", (i+1)%3), 3-f.dir, f.start.Add(2*time.Second), f.br, f.bs
			ost, ode := o.events()
			evs = append(evs, ost, ode)
		}
	}
	long := flowSpec{id: "long", host: "h1", net: "net1", src: pN1, dst: pU1, proto: 6, sp: 999, dp: 22, dir: flowlog.DirEgress,
		start: day0.Add(2*time.Hour + 10*time.Minute), bs: 70000, br: 90000, ps: 70, pr: 90}
	longStart, longEnd := long.events()
	longEnd.End = day0.Add(5*time.Hour + 40*time.Minute)
	edgeIn := flowSpec{id: "edge-in", host: "h2", net: "net1", src: pU1, dst: pN2, proto: 6, sp: 4242, dp: 443, dir: flowlog.DirIngress,
		start: day0.Add(4*time.Hour - time.Second), bs: 123, br: 456, ps: 2, pr: 3}
	inSt, inDe := edgeIn.events()
	evs = append(evs, longStart, inSt, inDe)
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	rollupOn(t, s)

	// After the pass: the long flow ends, the other end of edge-in reports
	// (2 s later, past 04:00), and a batch of hour 20 comes twice.
	edgeOut := edgeIn
	edgeOut.id, edgeOut.host, edgeOut.dir, edgeOut.start = "edge-out", "h1", flowlog.DirEgress, edgeIn.start.Add(2*time.Second)
	outSt, outDe := edgeOut.events()
	late := flowSpec{id: "late", host: "h0", net: "net0", src: pX, dst: pE, proto: 17, sp: 5353, dp: 53, dir: flowlog.DirEgress,
		start: day0.Add(20*time.Hour + 5*time.Minute), bs: 9, br: 8, ps: 1, pr: 1}
	lateSt, lateDe := late.events()
	for _, b := range [][]flowlog.Event{{longEnd}, {outSt, outDe}, {lateSt, lateDe}, {lateSt, lateDe}} {
		if err := s.Insert(ctx, &flowlog.Batch{Events: b}); err != nil {
			t.Fatal(err)
		}
	}

	filters := []flowlog.Filter{
		{From: day0.Add(90 * time.Minute), To: day0.Add(30 * time.Hour)}, // partial first and last day
		{From: day0.Add(2 * time.Hour), To: day0.Add(6 * time.Hour)},     // dirty hours only
		{From: day0.Add(4*time.Hour - 2*time.Second), To: day0.Add(4*time.Hour + 3*time.Second)},
		{From: day0.Add(2*time.Hour + 10*time.Minute + time.Millisecond)}, // unaligned, unbounded
		{From: day0, To: day0.Add(48 * time.Hour)},                        // a dirty day and a clean one
		{},
		{NetworkID: "net1", From: day0.Add(time.Hour)},
		{Participant: "alice", From: day0.Add(time.Hour)},       // pairs_1d, hours from flows_1h
		{HostID: "h1", From: day0.Add(time.Hour + time.Minute)}, // flows_1h both ways
		{From: day0.Add(90 * time.Minute), Observations: flowlog.ObserveAll},
		{From: day0.Add(3 * time.Hour)},                                                   // on the hour: series by hour of start
		{From: day0.Add(26 * time.Hour), To: day0.Add(29 * time.Hour), NetworkID: "net1"}, // its lookback: dirty hours of day0
		{From: day0.Add(3 * time.Hour), To: day0.Add(4*time.Hour + 30*time.Minute)},       // ends while the long flow runs
		{From: day0.Add(24 * time.Hour), To: time.Now()},                                  // ends now, as the page's
	}
	compare := func(label string) {
		t.Helper()
		for i, f := range filters {
			var got [2][]any
			for j, raw := range []bool{true, false} {
				store.ForceRaw(s, raw)
				for _, q := range []flowlog.TopQuery{
					{Filter: f, Limit: 100}, {Filter: f, Side: flowlog.SideSrc, Metric: flowlog.MetricPackets, Limit: 100},
					{Filter: f, Side: flowlog.SideDst, Metric: flowlog.MetricFlows, Limit: 3},
					{Filter: f, ByIP: true, Limit: 100}, {Filter: f, ByIP: true, Side: flowlog.SideDst, Limit: 100},
				} {
					top, err := s.Top(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					got[j] = append(got[j], top)
				}
				m, err := s.Matrix(ctx, f, 1000)
				if err != nil {
					t.Fatal(err)
				}
				got[j] = append(got[j], m)
				for _, step := range []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour, 5 * time.Minute} {
					p, err := s.Series(ctx, f, step)
					if err != nil {
						t.Fatal(err)
					}
					got[j] = append(got[j], p)
				}
			}
			store.ForceRaw(s, false)
			for k := range got[0] {
				if !reflect.DeepEqual(got[0][k], got[1][k]) {
					t.Errorf("%s: filter %d, result %d differs:\n raw    %v\n rollup %v", label, i, k, got[0][k], got[1][k])
				}
			}
		}
	}
	// day0 01:30 to day1 06:00: day0's whole hours 02-23 but the dirty
	// 2, 3, 4, 5 and 20 (17), and day1's 00-05 (6).
	for _, c := range []struct {
		top         bool
		table       string
		hours, days int
	}{{true, "talkers_1h", 23, 0}, {false, "flows_1h", 23, 0}} {
		table, hours, err := store.HourPlan(s, filters[0], c.top)
		if err != nil || table != c.table || hours != c.hours {
			t.Errorf("top %v, day0 01:30 to day1 06:00 with 5 dirty hours: %d hours of %q (%v), want %d of %s", c.top, hours, table, err, c.hours, c.table)
		}
	}
	if _, hours, _ := store.HourPlan(s, filters[1], true); hours != 0 {
		t.Errorf("hours 2-5, all dirty: %d served by the rollups, want none", hours)
	}
	if table, hours, _ := store.HourPlan(s, flowlog.Filter{HostID: "h1", From: day0.Add(time.Hour)}, true); table != "flows_1h" || hours == 0 {
		t.Errorf("top with a host filter: %d hours of %q, want flows_1h's", hours, table)
	}
	// A series on the hour reads the clean start hours by hour of start.
	if table, _, err := store.Plan(s, filters[10], time.Hour); err != nil || table != "series_sh" {
		t.Errorf("series from 03:00 with dirty hours: read from %q (%v), want series_sh", table, err)
	}
	compare("hours dirty")
	// Passes recomputing day0 (dirty) have written later generations'
	// rows by hour (the same as the named one's for the clean hours), for
	// some hours only, as one stopped midway leaves them: the engine
	// merged the first into the named generation's (ReplacingMergeTree(gen)
	// keeps the later: the named one no longer has those keys), not yet
	// the second (two rows of a key).
	for _, table := range []string{"talkers_1h", "addrs_1h", "flows_1h", "series_sh"} {
		col, db := "hour", s.Database()
		if table == "flows_1h" {
			col = "bucket"
		}
		if cluster != "" {
			table += "_local" // every shard on this one server
		}
		for _, sql := range []string{
			fmt.Sprintf("INSERT INTO %[1]s.%[2]s SELECT * REPLACE (gen + 1 AS gen) FROM (SELECT * FROM %[1]s.%[2]s WHERE toHour(%[3]s) %% 2 = 0 "+
				"AND toDate(%[3]s) = '%[4]s' AND gen IN (SELECT argMax(gen, stamp) FROM %[1]s.rollup_days GROUP BY day))", db, table, col, day0.Format("2006-01-02")),
			fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", db, table),
			// and another pass, not merged yet: two generations of a key
			fmt.Sprintf("SYSTEM STOP MERGES %s.%s", db, table),
			fmt.Sprintf("INSERT INTO %[1]s.%[2]s SELECT * REPLACE (gen + 2 AS gen) FROM (SELECT * FROM %[1]s.%[2]s WHERE toHour(%[3]s) %% 3 = 0 "+
				"AND toDate(%[3]s) = '%[4]s' AND gen IN (SELECT argMax(gen, stamp) FROM %[1]s.rollup_days GROUP BY day))", db, table, col, day0.Format("2006-01-02")),
		} {
			if err := s.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
	}
	compare("later generations, merged in and not")
	for _, table := range []string{"talkers_1h", "addrs_1h", "flows_1h", "series_sh"} {
		if cluster != "" {
			table += "_local"
		}
		if err := s.Exec(ctx, "SYSTEM START MERGES "+s.Database()+"."+table); err != nil {
			t.Fatal(err)
		}
	}
	rollupOn(t, s)
	if _, hours, _ := store.HourPlan(s, filters[0], true); hours != 28 {
		t.Errorf("after the pass: %d hours served, want 28", hours)
	}
	compare("recomputed")
	// Whole hours and days the rollups serve are not read raw.
	for _, f := range []flowlog.Filter{{From: day0.Add(24 * time.Hour), To: day0.Add(48 * time.Hour)}, {From: day0.Add(3 * time.Hour), To: day0.Add(29 * time.Hour)}} {
		for _, sql := range []func(*store.Store, flowlog.Filter) (string, error){
			store.MatrixSQL, func(s *store.Store, f flowlog.Filter) (string, error) { return store.SeriesSQL(s, f, time.Hour) },
		} {
			q, err := sql(s, f)
			if err != nil {
				t.Fatal(err)
			}
			est := estimate(t, s, q)
			for _, e := range est {
				if e.Table == "flows" && e.Parts != 0 {
					t.Errorf("%v to %v: reads %d parts of flows, want none (%+v)", f.From, f.To, e.Parts, est)
				}
			}
		}
	}
}
