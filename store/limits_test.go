package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Deep offset pages are refused with an error that points to cursor
// paging (page=2000000&per_page=1000 took 0.9 s each and, in parallel,
// starved inserts); pages within the bound and cursor pages work.
func TestDeepOffsetPagesAreRefused(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{MaxOffset: 50})
	var evs []flowlog.Event
	for i := range 120 {
		evs = append(evs, ev(fmt.Sprintf("f%03d", i), flowlog.EventStart, t0.Add(time.Duration(i)*time.Second), 1))
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{Number: 6, PerPage: 10}); err != nil || len(got) != 10 {
		t.Fatalf("page 6 of 10 (50 deep): %d flows, %v", len(got), err)
	}
	for _, p := range []flowlog.Page{{Number: 7, PerPage: 10}, {Number: 2_000_000, PerPage: 1000}, {Number: 1 << 62, PerPage: 1000}} {
		_, err := s.Flows(ctx, flowlog.Filter{}, p)
		if !errors.Is(err, flowlog.ErrPageTooDeep) || !strings.Contains(err.Error(), "use cursor paging") {
			t.Fatalf("page %d of %d: %v, want ErrPageTooDeep pointing to cursor paging", p.Number, p.PerPage, err)
		}
	}
	last := flowlog.Flow{Event: evs[20]}
	if got, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{Number: 99, PerPage: 10, After: store.CursorOf(&last)}); err != nil || len(got) != 10 {
		t.Fatalf("a cursor page (its number ignored): %d flows, %v", len(got), err)
	}
}

// A read over the store's limits (here: rows read) is stopped by the
// engine and reported as ErrQueryLimit, saying what to do.
func TestQueriesOverTheLimitsAreStopped(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{MaxQueryRows: 50})
	var evs []flowlog.Event
	for i := range 200 {
		evs = append(evs, ev(fmt.Sprintf("f%03d", i), flowlog.EventStart, t0.Add(time.Duration(i)*time.Second), 1))
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{Number: 1, PerPage: 100})
	if !errors.Is(err, flowlog.ErrQueryLimit) || !strings.Contains(err.Error(), "narrow the time range or the filters") {
		t.Fatalf("listing 200 flows with max 50 rows read: %v, want ErrQueryLimit", err)
	}
	// Inserts are not reads: they go on.
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs[:10]}); err != nil {
		t.Fatal(err)
	}
}
