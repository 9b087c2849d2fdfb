package store_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// TestScopeCost measures what an API token's network scope (Filter.Networks,
// rendered as network_id IN (...)) costs the queries (BENCHMARKS.md, "Cost
// of scoping"), over the synthetic flows of TestQueryCosts (3 networks). It
// is skipped unless FLOWLOG_SCOPE_COST_FLOWS is set, so CI does not pay for
// it:
//
//	FLOWLOG_SCOPE_COST_FLOWS=1000000 go test -run TestScopeCost -v -timeout 30m ./store/
//
// FLOWLOG_SCOPE_COST_RUNS sets the runs per query (default 7; the median is
// reported; the scopes take turns within each run). With FLOWLOG_STORE_TEST_DIR set, the flows stay there and a
// later run with the same count reuses them.
func TestScopeCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FLOWLOG_SCOPE_COST_FLOWS"))
	if n <= 0 {
		t.Skip("set FLOWLOG_SCOPE_COST_FLOWS=N to measure the cost of scoping (FLOWLOG_SCOPE_COST_FLOWS=1000000 go test -run TestScopeCost -v ./store/)")
	}
	runs, _ := strconv.Atoi(os.Getenv("FLOWLOG_SCOPE_COST_RUNS"))
	if runs <= 0 {
		runs = 7
	}
	ctx := context.Background()
	s := open(t, store.Options{Database: fmt.Sprint("scopecost_", n), Retention: 40 * 24 * time.Hour})
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
	} else {
		if loaded[0].N > 0 {
			t.Fatalf("database %s holds %d flows, not %d: drop it first", s.Database(), loaded[0].N, n)
		}
		end = time.Now().UTC().Truncate(time.Minute)
		t0 := time.Now()
		rows := newSynth(n, end).load(t, s)
		t.Logf("inserted %d flows (%d rows) in %s", n, rows, time.Since(t0).Round(time.Second))
		if err := s.Exec(ctx, "OPTIMIZE TABLE "+s.Database()+".flows FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Rollup(ctx); err != nil {
		t.Fatal(err)
	}
	// Today dirty, as between two rollup passes: the aggregates read it raw.
	fresh := newSynth(1000, end)
	fresh.Prefix = "fresh"
	if err := s.Insert(ctx, &flowlog.Batch{Events: fresh.batchAt(end)}); err != nil {
		t.Fatal(err)
	}

	absent := func(k int) []string {
		var out []string
		for i := 0; i < k; i++ {
			out = append(out, fmt.Sprintf("mesh-absent-%02d", i))
		}
		return out
	}
	scopes := []struct {
		name string
		f    flowlog.Filter
	}{
		{"none", flowlog.Filter{}},
		{"network_id=net1 (no scope)", flowlog.Filter{NetworkID: "net1"}},
		{"scope of 1 [net1]", flowlog.Filter{Networks: []string{"net1"}}},
		{"scope of 20, net1 among them", flowlog.Filter{Networks: append(absent(19), "net1")}},
		{"scope of 20, every stored network among them", flowlog.Filter{Networks: append(absent(17), "net0", "net1", "net2")}},
	}
	month := flowlog.Filter{From: end.Add(-30 * 24 * time.Hour).Truncate(time.Hour), To: end.Add(time.Hour).Truncate(time.Hour)}
	deep, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{PerPage: 100, Number: 50})
	if err != nil || len(deep) == 0 {
		t.Fatalf("page 50: %v", err)
	}
	cursor := store.CursorOf(&deep[len(deep)-1])

	with := func(base, scope flowlog.Filter) flowlog.Filter {
		base.NetworkID, base.Networks = scope.NetworkID, scope.Networks
		return base
	}
	queries := []struct {
		name string
		raw  bool
		q    func(f flowlog.Filter) (int, error)
	}{
		{"Flows page 1 (100)", false, func(f flowlog.Filter) (int, error) {
			r, err := s.Flows(ctx, f, flowlog.Page{PerPage: 100})
			return len(r), err
		}},
		{"Flows, cursor after page 50", false, func(f flowlog.Filter) (int, error) {
			r, err := s.Flows(ctx, f, flowlog.Page{PerPage: 100, After: cursor})
			return len(r), err
		}},
		{"Top 10 participants, 30 days (rollup + today raw)", false, func(f flowlog.Filter) (int, error) {
			r, err := s.Top(ctx, flowlog.TopQuery{Filter: with(month, f)})
			return len(r), err
		}},
		{"Top 10 participants, 30 days, raw FINAL", true, func(f flowlog.Filter) (int, error) {
			r, err := s.Top(ctx, flowlog.TopQuery{Filter: with(month, f)})
			return len(r), err
		}},
		{"Top 10 IPs, 30 days (raw)", false, func(f flowlog.Filter) (int, error) {
			r, err := s.Top(ctx, flowlog.TopQuery{Filter: with(month, f), ByIP: true})
			return len(r), err
		}},
	}
	header := []string{"query"}
	for _, sc := range scopes {
		header = append(header, sc.name)
	}
	t.Logf("%d flows, median of %d runs", n, runs)
	t.Logf("| %s |", strings.Join(header, " | "))
	t.Logf("|%s", strings.Repeat("---|", len(header)))
	for _, q := range queries {
		store.ForceRaw(s, q.raw)
		// The scopes take turns within each run (after one warm-up run), so
		// that a change of load on the machine weighs on all of them alike.
		ds := make([][]time.Duration, len(scopes))
		got := make([]int, len(scopes))
		for r := -1; r < runs; r++ {
			for i, sc := range scopes {
				t0 := time.Now()
				k, err := q.q(sc.f)
				if err != nil {
					t.Fatalf("%s, %s: %v", q.name, sc.name, err)
				}
				if r >= 0 {
					ds[i] = append(ds[i], time.Since(t0))
				}
				got[i] = k
			}
		}
		cells := []string{q.name}
		for i := range scopes {
			slices.Sort(ds[i])
			cells = append(cells, fmt.Sprintf("%s (%d)", fmtDur(ds[i][len(ds[i])/2]), got[i]))
		}
		store.ForceRaw(s, false)
		t.Logf("| %s |", strings.Join(cells, " | "))
	}
}
