package store

import (
	"context"
	"fmt"
	"time"

	"github.com/flowlog/flowlog"
)

// FlowsSQL exposes the flows query to tests that EXPLAIN it.
func FlowsSQL(s *Store, f flowlog.Filter, p flowlog.Page) string {
	return s.flowsSQL(f, p, s.staleCutoff())
}

// ForceRaw makes the aggregates read raw flows only (true) or choose (false).
func ForceRaw(s *Store, raw bool) {
	s.path = pathAuto
	if raw {
		s.path = pathRaw
	}
}

// UseArgMax makes raw reads merge with argMax instead of FINAL.
func UseArgMax(s *Store, on bool) {
	s.merge = mergeFinal
	if on {
		s.merge = mergeArgMax
	}
}

// NoClockSlack lets a rollup pass mark days clean at once (one collector).
func NoClockSlack(s *Store) { s.slack = 0 }

// Plan says which rollup an aggregate would read ("" for none) and for how
// many days: the matrix (step 0) or a series of step.
func Plan(s *Store, f flowlog.Filter, step time.Duration) (table string, days int, err error) {
	cands := matrixTables
	if step > 0 {
		cands = seriesTables(step)
	}
	return planOf(s, f, cands, step)
}

// TopPlan is Plan for Top.
func TopPlan(s *Store, q flowlog.TopQuery) (table string, days int, err error) {
	cands := topTables
	switch {
	case q.ByIP:
		cands = ipTables
	case q.ByASN || q.ByCountry:
		cands = nil
	}
	return planOf(s, q.Filter, cands, 0)
}

func planOf(s *Store, f flowlog.Filter, cands []*rollupTable, step time.Duration) (table string, days int, err error) {
	p, err := s.aggregatePlan(context.Background(), f, step, cands)
	if p.h == &seriesSH {
		return p.h.name, len(p.hours) / 24, err // whole days of start hours
	}
	if p.r == nil || len(p.days) == 0 {
		return "", 0, err
	}
	return p.r.name, len(p.days), err
}

// HourPlan says which rollup by hour an aggregate would read ("" for none)
// and for how many hours: the matrix (step 0) or top participants (top).
func HourPlan(s *Store, f flowlog.Filter, top bool) (table string, hours int, err error) {
	cands := matrixTables
	if top {
		cands = topTables
	}
	p, err := s.plan(context.Background(), f, cands, true)
	if p.h == nil {
		return "", 0, err
	}
	return p.h.name, len(p.hours), err
}

// SeriesSQL exposes the query of a Series (counting rows) for tests that EXPLAIN it.
func SeriesSQL(s *Store, f flowlog.Filter, step time.Duration) (string, error) {
	return s.aggregateSQL(context.Background(), f, step, seriesTables(step), "", "count() AS n", "")
}

// MatrixSQL exposes the query of a Matrix (counting rows) for tests that EXPLAIN it.
func MatrixSQL(s *Store, f flowlog.Filter) (string, error) {
	return s.aggregateSQL(context.Background(), f, 0, matrixTables, participantCols, "count() AS n", "")
}

// StopJobs stops the background job without closing the shared engine.
func StopJobs(s *Store) {
	s.closing.Do(func() { close(s.stop) })
	s.jobs.Wait()
}

// RollupQuiet runs a pass as the background job does, leaving days marked
// within quiet for later.
func RollupQuiet(ctx context.Context, s *Store, quiet time.Duration) (RollupStats, error) {
	return s.rollup(ctx, quiet)
}

// SetNow sets the clock of the rollup claims (the lease).
func SetNow(s *Store, now func() time.Time) { s.now = now }

// Claim claims the recomputation of (day, marked) as the job does.
func Claim(ctx context.Context, s *Store, day string, marked int64) (bool, error) {
	return s.claim(ctx, day, marked)
}

// ClusterDDL is the cluster form of one schema statement.
var ClusterDDL = clusterDDL

// Poller is Follow's poll, one call at a time.
func Poller(s *Store, overlap time.Duration) func(context.Context) ([]flowlog.Event, error) {
	return s.newFollower(overlap).poll
}

// OldSchema creates database db at schema version v (its statements and
// functions),
// as a build of that version left it.
func OldSchema(ctx context.Context, eng Engine, db, cluster string, v int) error {
	s := &Store{eng: eng, db: ident(db), cluster: cluster, retention: DefaultRetention, now: time.Now}
	if err := s.execDDL(ctx, "CREATE DATABASE IF NOT EXISTS "+s.db); err != nil {
		return err
	}
	if err := s.execDDL(ctx, "CREATE TABLE IF NOT EXISTS "+s.db+".schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"); err != nil {
		return err
	}
	for _, m := range migrations[:v] {
		if err := s.migrateStep(ctx, m); err != nil {
			return err
		}
		if err := eng.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations (version, name) VALUES (%d, %s)", s.db, m.version, quote(m.name))); err != nil {
			return err
		}
	}
	return nil
}

// SchemaSteps is the number of migrations (versions may have gaps while
// branches that add steps are merged).
var SchemaSteps = len(migrations)

// FlowsOneQuery lists page p by offset in one query over every day, as
// offset pages were read before offsetPage.
func FlowsOneQuery(ctx context.Context, s *Store, f flowlog.Filter, p flowlog.Page) ([]flowlog.Flow, error) {
	var rows []flowRow
	cutoff := s.staleCutoff()
	if err := s.queryRows(ctx, s.flowsSQL(f, p, cutoff), &rows); err != nil {
		return nil, err
	}
	out := make([]flowlog.Flow, len(rows))
	for i := range rows {
		out[i] = rows[i].flow(cutoff)
	}
	return out, nil
}

// SchemaExec runs a schema statement (one server's form) on db in the
// cluster's form when cluster is set.
func SchemaExec(ctx context.Context, eng Engine, db, cluster, stmt string) error {
	s := &Store{eng: eng, db: ident(db), cluster: cluster}
	return s.execDDL(ctx, stmt)
}

// Optimize merges table's parts (FINAL), on every server in cluster mode.
func Optimize(ctx context.Context, s *Store, table string) error {
	on := ""
	if s.cluster != "" {
		on = " ON CLUSTER " + ident(s.cluster)
	}
	return s.eng.Exec(ctx, "OPTIMIZE TABLE "+s.db+"."+s.storageTable(table)+on+" FINAL")
}

// ClaimV3AndCrash does what a collector did in migration 3 up to its claim
// (the copy, then the old flows renamed away), and stops there, as if it
// crashed.
func ClaimV3AndCrash(ctx context.Context, eng Engine, db, cluster string) error {
	s := &Store{eng: eng, db: ident(db), cluster: cluster, retention: DefaultRetention}
	if err := s.copyToV3(ctx, s.db+".flows", s.db+".flows_v3"); err != nil {
		return err
	}
	return s.execDDL(ctx, "RENAME TABLE "+s.db+".flows TO "+s.db+".flows_v2")
}

// SwapV13AndCrash does what a collector does in migration 13 up to its
// swap (an empty flows in time order in place, the old one renamed to
// flows_v12), and stops there, as if it crashed before copying.
func SwapV13AndCrash(ctx context.Context, eng Engine, db, cluster string) error {
	s := &Store{eng: eng, db: ident(db), cluster: cluster, retention: DefaultRetention, now: time.Now}
	return s.swapV13(ctx)
}

// Lookup asks the table for the stored instances of evs' flows, as resolve
// does for the DESTROYs the maps cannot place, and counts the instances.
func Lookup(ctx context.Context, s *Store, evs []flowlog.Event) (int, error) {
	ask := make([]int, len(evs))
	for i := range ask {
		ask[i] = i
	}
	found, err := s.lookup(ctx, evs, ask)
	n := 0
	for _, is := range found {
		n += len(is)
	}
	return n, err
}

// LimitRollupMemory bounds the rollup job's statements as Options.MaxQueryMemory
// would, leaving the other queries' bound alone.
func LimitRollupMemory(s *Store, bytes int64) {
	s.rollupSettings = Options{MaxQueryMemory: bytes}.rollupLimits()
}

// SliceRollups sets how many raw rows a rollup pass's slice of hosts may
// have (rollup.go, "Slices"): 1 gives every host its own slice, as long as
// the day has more than rollupMaxSlices rows per host.
func SliceRollups(s *Store, rows int64) { s.sliceRows = rows }

// HoursFromRaw makes a rollup pass compute flows_1h from the raw flows
// (true), as it does for days without flows_1m, or from flows_1m (false).
func HoursFromRaw(s *Store, on bool) { s.hoursFromRaw = on }

// Stopping says whether Close has begun (a rollup pass stops before its
// next statement).
func Stopping(s *Store) bool { return s.stopping() }
