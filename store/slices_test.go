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

// A day recomputed host slice by host slice (rollup.go, "Slices"), with
// flows_1h summed from flows_1m, writes exactly the rows the day in one
// statement of raw flows per table writes, in every rollup table:
// connections whose two ends are on hosts of different slices (within
// PeerSkew, at its edge and beyond it, across an hour and across
// midnight), flows whose bytes run into the next hour and the next day,
// addresses seen by several hosts, and a day old enough to have no rollups
// by hour (its addresses summed by day).
func TestRollupSlicesAddUp(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{Retention: 40 * 24 * time.Hour, PeerSkew: 5 * time.Second})
	store.NoClockSlack(s)
	parts := []flowlog.Participant{pN1, pN2, pU1, pE, pX}
	old := day0.AddDate(0, 0, -34) // rolled up without talkers_1h and addrs_1h (RollupHourTTL)
	twinAt := []time.Duration{0, 2 * time.Second, -5 * time.Second, 5 * time.Second, 9 * time.Second, 11 * time.Second}
	var evs []flowlog.Event
	add := func(f flowSpec, life time.Duration) {
		st, de := f.events()
		de.End = f.start.Add(life)
		evs = append(evs, st)
		if !f.active {
			evs = append(evs, de)
		}
	}
	for i := 0; i < 400; i++ {
		start := day0.Add(time.Duration(i) * 577 * time.Second) // two and a half days, every hour and both midnights
		if i%50 == 0 {
			start = old.Add(time.Duration(i) * time.Hour / 25)
		}
		life := time.Duration(i%5) * 17 * time.Minute // into the next hours
		if i%37 == 0 {
			life = 30 * time.Hour // into the next day, past spreadHorizon
		}
		f := flowSpec{id: fmt.Sprint("g", i), host: fmt.Sprint("h", i%4), net: fmt.Sprint("net", i%2), src: parts[i%5], dst: parts[(i/5)%5],
			proto: []uint8{6, 17, 1}[i%3], sp: uint16(30000 + i), dp: []uint16{443, 53, 22, 80}[i%4], dir: flowlog.Direction(1 + i%2),
			start: start, active: i%7 == 0, bs: uint64(i*10 + 1), br: uint64(i * 3), ps: uint64(i + 1), pr: uint64(i / 2)}
		add(f, life)
		if i%2 == 0 { // the other end's observation, on another host, at a skew from twinAt
			o := f
			o.id, o.host, o.dir = fmt.Sprint("o", i), fmt.Sprint("h", (i+1+i/2%3)%4), 3-f.dir
			o.start = f.start.Add(twinAt[i/2%len(twinAt)])
			o.bs, o.br = f.br+1, f.bs+1
			add(o, life)
		}
	}
	// Across midnight: the initiator 1 ms before it, the responder 2 s after.
	day1 := day0.Add(24 * time.Hour)
	add(flowSpec{id: "mid-out", host: "h0", net: "net0", src: pN1, dst: pN2, proto: 6, sp: 999, dp: 443, dir: flowlog.DirEgress,
		start: day1.Add(-time.Millisecond), bs: 5, br: 6, ps: 1, pr: 1}, time.Hour)
	add(flowSpec{id: "mid-in", host: "h3", net: "net0", src: pN1, dst: pN2, proto: 6, sp: 999, dp: 443, dir: flowlog.DirIngress,
		start: day1.Add(2 * time.Second), bs: 6, br: 5, ps: 1, pr: 1}, time.Hour)
	insert(t, s, evs...)

	snapshot := func() map[string][]map[string]any {
		t.Helper()
		out := map[string][]map[string]any{}
		for _, table := range []string{"flows_1m", "flows_1h", "pairs_1d", "talkers_1d", "addrs_1d", "series_1h", "talkers_1h", "addrs_1h", "series_sh"} {
			var rows []map[string]any
			except := "gen"
			if table == "series_sh" {
				except += ", last_end" // the retry below is a later report of the open flows: their lifetimes end later
			}
			q := fmt.Sprintf("SELECT * EXCEPT (%[3]s) FROM `%[1]s`.%[2]s WHERE gen IN (SELECT argMax(gen, stamp) FROM `%[1]s`.rollup_days GROUP BY day) ORDER BY ALL",
				t.Name(), table, except)
			if err := s.QueryRows(ctx, q, &rows); err != nil {
				t.Fatal(err)
			}
			if len(rows) == 0 && table != "flows_1m" || table == "flows_1m" && len(rows) < 100 {
				t.Fatalf("%s: %d rows, the data should fill every table", table, len(rows))
			}
			out[table] = rows
		}
		return out
	}
	store.SliceRollups(s, 1) // each host a slice
	if st, err := s.Rollup(ctx); err != nil || st.Days < 4 {
		t.Fatalf("pass by host: %+v %v, want every day", st, err)
	}
	sliced := snapshot()
	insert(t, s, evs...) // a retry: the same rows, every day dirty again
	store.SliceRollups(s, 1<<40)
	store.HoursFromRaw(s, true) // and flows_1h from the raw flows, not by summing flows_1m
	if st, err := s.Rollup(ctx); err != nil || st.Days < 4 {
		t.Fatalf("pass in one slice: %+v %v, want every day", st, err)
	}
	whole := snapshot()
	for table, rows := range whole {
		if !reflect.DeepEqual(sliced[table], rows) {
			t.Errorf("%s: by host %d rows, in one slice %d; differing rows:", table, len(sliced[table]), len(rows))
			for i := range min(len(rows), len(sliced[table])) {
				if !reflect.DeepEqual(sliced[table][i], rows[i]) {
					t.Errorf("  by host %v\n  whole   %v", sliced[table][i], rows[i])
					break
				}
			}
		}
	}
}
