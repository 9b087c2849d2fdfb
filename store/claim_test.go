package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Two collectors sharing one database: the stores a and b, on the same
// engine and schema, each with its own owner name.
func twoCollectors(t *testing.T) (a, b *store.Store) {
	t.Helper()
	a = open(t, store.Options{})
	b = open(t, store.Options{Database: strings.Trim(a.Database(), "`")})
	store.NoClockSlack(a)
	store.NoClockSlack(b)
	return a, b
}

// A change of a day is recomputed by one collector: the other sees the live
// claim and leaves the day alone, until the claim's lease ran out (its
// owner died mid-recomputation), when it takes the day over.
func TestRollupClaimOneCollectorRecomputesAndALeaseExpires(t *testing.T) {
	ctx := context.Background()
	a, b := twoCollectors(t)
	now := time.Now()
	store.SetNow(a, func() time.Time { return now })
	store.SetNow(b, func() time.Time { return now })
	s, d := ev("f1", flowlog.EventStart, t0, 1), ev("f1", flowlog.EventDestroy, t0, 2)
	if err := a.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{s, d}}); err != nil {
		t.Fatal(err)
	}
	marked := latestMark(t, a, "2026-11-24")

	// a claims the change and "dies" before recomputing it.
	if mine, err := store.Claim(ctx, a, "2026-11-24", marked); err != nil || !mine {
		t.Fatalf("first claim: %v %v, want it won", mine, err)
	}
	st, err := b.Rollup(ctx)
	if err != nil || st.Days != 0 || st.Others != 1 {
		t.Fatalf("b's pass with a's live claim: %+v %v, want the day left to a", st, err)
	}
	// b's claim of the same round was dropped as a duplicate: one row.
	var n []struct {
		N int `json:"n"`
	}
	if err := b.QueryRows(ctx, "SELECT count() AS n FROM "+b.Database()+".rollup_claims", &n); err != nil || n[0].N != 1 {
		t.Fatalf("claims stored: %+v %v, want 1 (one per round)", n, err)
	}
	if _, days, _ := store.Plan(b, flowlog.Filter{}, 0); days != 0 {
		t.Fatalf("no collector recomputed the day, yet %d days are clean", days)
	}

	// After the lease b takes the day over, and a then finds it clean.
	store.SetNow(b, func() time.Time { return now.Add(11 * time.Minute) })
	if st, err = b.Rollup(ctx); err != nil || st.Days != 1 || st.Others != 0 {
		t.Fatalf("b's pass after a's lease: %+v %v, want the day recomputed", st, err)
	}
	if st, err = a.Rollup(ctx); err != nil || st.Days != 0 || st.Others != 0 {
		t.Fatalf("a's pass after b's: %+v %v, want nothing to do", st, err)
	}
	top, err := a.Top(ctx, flowlog.TopQuery{Metric: flowlog.MetricBytes, Limit: 1})
	if err != nil || len(top) != 1 || top[0].Bytes != 3000 {
		t.Fatalf("top after the recomputation: %+v %v, want the flow's 3000 bytes once", top, err)
	}
}

// Collectors whose passes run at once: one claim per round lands (the
// others are deduplicated), so exactly one of them recomputes the day.
func TestRollupClaimConcurrentPassesRecomputeOnce(t *testing.T) {
	ctx := context.Background()
	a, b := twoCollectors(t)
	now := time.Now()
	store.SetNow(a, func() time.Time { return now })
	store.SetNow(b, func() time.Time { return now })
	if err := a.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{ev("f1", flowlog.EventStart, t0, 1)}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stats := make([]store.RollupStats, 2)
	errs := make([]error, 2)
	for i, s := range []*store.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = s.Rollup(ctx)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if n := stats[0].Days + stats[1].Days; n != 1 {
		t.Fatalf("the day was recomputed %d times (%+v), want once", n, stats)
	}
}

func latestMark(t *testing.T, s *store.Store, day string) int64 {
	t.Helper()
	var rows []struct {
		M int64 `json:"m"`
	}
	if err := s.QueryRows(context.Background(), "SELECT max(marked) AS m FROM "+s.Database()+".rollup_marks WHERE day = '"+day+"'", &rows); err != nil || len(rows) != 1 {
		t.Fatalf("reading the mark: %v", err)
	}
	return rows[0].M
}
