package bench

// `flowlog bench --queries`: the query table of issue 14 over a
// reproducible synthetic data set (internal/flowgen, the generator the
// store's query-cost tests use), built once in --data and reused by later
// runs, each query timed --runs times through the store's own methods (no
// HTTP), the median reported (BENCHMARKS.md, "Query costs at 10M flows").

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/flowgen"
	"github.com/flowlog/flowlog/store"
	"github.com/flowlog/flowlog/store/chdb"
)

// queriesDatabase is the data set's database: its size in its name, so
// one directory can hold several sizes.
func queriesDatabase(n int) string { return fmt.Sprint("bench_queries_", n) }

// queriesRetention keeps a kept data set whole for a year: the queries
// are relative to the data's end, not to now.
const queriesRetention = 365 * 24 * time.Hour

// queryCase is one line of the table.
type queryCase struct {
	what   string
	target time.Duration // 0: none (keep as is)
	run    func(ctx context.Context) (int, error)
}

// QueryResult is one measured query.
type QueryResult struct {
	What    string    `json:"what"`
	Rows    int       `json:"rows"`
	Median  float64   `json:"median_ms"`
	Runs    []float64 `json:"runs_ms"`
	Target  float64   `json:"target_ms,omitempty"`
	Missed  bool      `json:"missed,omitempty"`
	Comment string    `json:"comment,omitempty"`
}

// QueriesReport is what a --queries run measured.
type QueriesReport struct {
	Command   string        `json:"command"`
	Flows     int           `json:"flows"`
	Reused    bool          `json:"reused"`
	End       time.Time     `json:"end"`
	BuildSec  float64       `json:"build_s,omitempty"`
	RollupSec float64       `json:"rollup_s"`
	Runs      int           `json:"runs"`
	Results   []QueryResult `json:"results"`
}

// RunQueries builds (or reuses) the data set in c.Data and measures the
// query table.
func RunQueries(ctx context.Context, c Config, log *slog.Logger) error {
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	dir, temp := c.Data, false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "flowlog-bench-queries-"); err != nil {
			return err
		}
		temp = true
		if !c.Keep {
			defer os.RemoveAll(dir)
		}
	}
	lib, err := chdb.FindLib(c.ChdbLib)
	if err != nil {
		return err
	}
	eng, err := chdb.Open(lib, dir, 2, chdb.Settings{CacheBytes: store.DefaultEngineCacheBytes}) // the collector's default caches
	if err != nil {
		return err
	}
	defer eng.Close()
	st, err := store.OpenEngine(ctx, eng, store.Options{Database: queriesDatabase(c.Flows), Retention: queriesRetention, MaxOffset: -1})
	if err != nil {
		return err
	}
	rep := &QueriesReport{Command: c.Command, Flows: c.Flows, Runs: c.Runs}
	if err := prepareQueryData(ctx, st, c.Flows, rep, log); err != nil {
		return err
	}
	log.Info("measuring", "runs", c.Runs)
	for _, q := range queryCases(st, rep.End, c.Flows) {
		r, err := measureQuery(ctx, q, c.Runs)
		if err != nil {
			return fmt.Errorf("%s: %w", q.what, err)
		}
		rep.Results = append(rep.Results, r)
		log.Info("measured", "query", r.What, "median_ms", r.Median)
	}
	if c.JSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.print(c.Stdout)
	if temp && c.Keep {
		fmt.Fprintf(c.Stdout, "data kept in %s (rerun with --data %s)\n", dir, dir)
	}
	return nil
}

// prepareQueryData loads the data set unless the database holds it, then
// brings the rollups up to date and makes today dirty again, as between
// two passes of the collector's rollup job (today is read raw).
func prepareQueryData(ctx context.Context, st *store.Store, n int, rep *QueriesReport, log *slog.Logger) error {
	var loaded []struct {
		N   uint64 `json:"n"`
		End int64  `json:"end"`
	}
	if err := st.QueryRows(ctx, "SELECT count() AS n, max(toUnixTimestamp64Milli(start_ts)) AS end FROM "+st.Database()+
		".flows FINAL WHERE flow_id NOT LIKE 'fresh%'", &loaded); err != nil {
		return err
	}
	switch {
	case loaded[0].N >= uint64(n):
		// The build's end: a minute, after every start (flowgen.Gen.Load).
		rep.Reused, rep.End = true, time.UnixMilli(loaded[0].End).UTC().Truncate(time.Minute).Add(time.Minute)
		log.Info("reusing the data set", "flows", loaded[0].N, "end", rep.End)
	case loaded[0].N > 0:
		return fmt.Errorf("database %s holds %d flows, not %d: a build was interrupted; remove the data directory or pick another", st.Database(), loaded[0].N, n)
	default:
		rep.End = time.Now().UTC().Truncate(time.Minute)
		log.Info("building the data set (once: later runs with this --data reuse it)", "flows", n)
		t0 := time.Now()
		rows, err := flowgen.New(n, rep.End).Load(ctx, st.Insert)
		if err != nil {
			return fmt.Errorf("loading the data set: %w", err)
		}
		log.Info("inserted", "flows", n, "rows", rows, "took", time.Since(t0).Round(time.Second))
		// Every day one merged part, as background merges leave old days.
		if err := st.Exec(ctx, "OPTIMIZE TABLE "+st.Database()+".flows FINAL"); err != nil {
			return err
		}
		rep.BuildSec = time.Since(t0).Seconds()
	}
	// The rollups of every dirty day (all of them after a build or a
	// schema change), twice: marks within the job's clock slack of a pass
	// stay dirty until the next one.
	t0 := time.Now()
	for i := 0; i < 2; i++ {
		if _, err := st.Rollup(ctx); err != nil {
			return err
		}
		if i == 0 {
			time.Sleep(2100 * time.Millisecond)
		}
	}
	rep.RollupSec = time.Since(t0).Seconds()
	// Today dirty: 1,000 new flows (the same ones on every run).
	fresh := flowgen.New(1000, rep.End)
	fresh.Prefix = "fresh"
	return st.Insert(ctx, &flowlog.Batch{Events: fresh.BatchAt(rep.End)})
}

// queryCases is the table of issue 14. Ranges are "the last N days" as
// the web page asks for them: from N×24 h before the data's end (to the
// millisecond), no end.
func queryCases(st *store.Store, end time.Time, flows int) []queryCase {
	last := func(days int) flowlog.Filter {
		return flowlog.Filter{From: end.Add(-time.Duration(days) * 24 * time.Hour)}
	}
	top := func(days int, byIP bool) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			r, err := st.Top(ctx, flowlog.TopQuery{Filter: last(days), ByIP: byIP})
			return len(r), err
		}
	}
	filtered := func(f flowlog.Filter, p flowlog.Page) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			r, err := st.Flows(ctx, f, p)
			return len(r), err
		}
	}
	page := func(p flowlog.Page) func(context.Context) (int, error) { return filtered(flowlog.Filter{}, p) }
	// A user of the data set's long tail (flowgen: about 100 flows in 30
	// days at 10M), by name and by address: a filtered first page reads
	// days of windows.
	rare := flowlog.Filter{Username: "user-156"}
	rareIP := flowlog.Filter{IP: netip.MustParsePrefix("10.2.8.156/32")}
	deep := min(5000, flows/100/2) // page 5,000 at 10M flows, halfway down smaller sets
	var cursor *flowlog.Cursor
	return []queryCase{
		{"top talkers, 1 day", 50 * time.Millisecond, top(1, false)},
		{"top talkers, 7 days", 50 * time.Millisecond, top(7, false)},
		{"top talkers, 30 days", 50 * time.Millisecond, top(30, false)},
		{"top talkers, the 30 whole days before today", 0, func(ctx context.Context) (int, error) {
			// No partial day, today left out: what the rollups alone cost.
			today := end.Truncate(24 * time.Hour)
			r, err := st.Top(ctx, flowlog.TopQuery{Filter: flowlog.Filter{From: today.Add(-30 * 24 * time.Hour), To: today}})
			return len(r), err
		}},
		{"matrix, 30 days (top 100 pairs)", 100 * time.Millisecond, func(ctx context.Context) (int, error) {
			r, err := st.Matrix(ctx, last(30), 100)
			return len(r), err
		}},
		{"top IPs, 30 days", 100 * time.Millisecond, top(30, true)},
		{"time series, 30 days, 1 h step", 50 * time.Millisecond, func(ctx context.Context) (int, error) {
			r, err := st.Series(ctx, last(30), time.Hour)
			return len(r), err
		}},
		{"time series, 30 days from the hour to now, 6 h step (the page's)", 50 * time.Millisecond, func(ctx context.Context) (int, error) {
			// The page asks a long range's series from the hour (the
			// buckets it draws whole) to now, at the step the API fits.
			// Now is the clock's: the data set's flows were inserted up
			// to it (their inserted_at), after their own times.
			f := flowlog.Filter{From: end.Add(-30 * 24 * time.Hour).Truncate(time.Hour), To: time.Now().Truncate(time.Second)}
			r, err := st.Series(ctx, f, 6*time.Hour)
			return len(r), err
		}},
		{"flows page 1 (100 rows)", 0, page(flowlog.Page{PerPage: 100})},
		{"flows page 1, one rare user", 0, filtered(rare, flowlog.Page{PerPage: 100})},
		{"flows page 1, one rare address", 0, filtered(rareIP, flowlog.Page{PerPage: 100})},
		{fmt.Sprintf("flows page %d by cursor", deep), 0, func(ctx context.Context) (int, error) {
			if cursor == nil { // the last flow of the page before, found once
				prev, err := st.Flows(ctx, flowlog.Filter{}, flowlog.Page{PerPage: 100, Number: deep - 1})
				if err != nil || len(prev) == 0 {
					return 0, fmt.Errorf("page %d: %d flows, %v", deep-1, len(prev), err)
				}
				cursor = store.CursorOf(&prev[len(prev)-1])
			}
			return page(flowlog.Page{PerPage: 100, After: cursor})(ctx)
		}},
		{fmt.Sprintf("flows page %d by OFFSET (Netmaker's paging)", deep), 308 * time.Millisecond, page(flowlog.Page{PerPage: 100, Number: deep})},
	}
}

// measureQuery runs q runs times (after one unmeasured run, which also
// finds what a case needs once) and keeps the median.
func measureQuery(ctx context.Context, q queryCase, runs int) (QueryResult, error) {
	r := QueryResult{What: q.what, Target: float64(q.target) / float64(time.Millisecond)}
	if _, err := q.run(ctx); err != nil {
		return r, err
	}
	var ds []time.Duration
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		n, err := q.run(ctx)
		if err != nil {
			return r, err
		}
		ds = append(ds, time.Since(t0))
		r.Rows = n
	}
	for _, d := range ds {
		r.Runs = append(r.Runs, ms(d))
	}
	slices.Sort(ds)
	r.Median = ms(ds[len(ds)/2])
	r.Missed = q.target > 0 && ds[len(ds)/2] > q.target
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *QueriesReport) print(out io.Writer) {
	how := "built"
	if r.Reused {
		how = "reused"
	}
	fmt.Fprintf(out, "flowlog bench --queries: %s flows (%s), ending %s; rollup passes %.1fs; median of %d runs\n",
		thousands(int64(r.Flows)), how, r.End.Format(time.RFC3339), r.RollupSec, r.Runs)
	fmt.Fprintf(out, "machine: %d CPUs, %s (shared with whatever else runs: medians, not minima)\n\n", machineInfo().CPUs, machineInfo().CPUModel)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "query\tmedian\truns\trows\ttarget")
	for _, q := range r.Results {
		runs := ""
		for i, x := range q.Runs {
			if i > 0 {
				runs += " "
			}
			runs += fmt.Sprintf("%.0f", x)
		}
		target := ""
		if q.Target > 0 {
			target = fmt.Sprintf("≤ %.0f ms: met", q.Target)
			if q.Missed {
				target = fmt.Sprintf("≤ %.0f ms: MISSED", q.Target)
			}
		}
		fmt.Fprintf(tw, "%s\t%.1f ms\t%s\t%d\t%s\n", q.What, q.Median, runs, q.Rows, target)
	}
	tw.Flush()
}
