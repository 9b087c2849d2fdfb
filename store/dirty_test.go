package store_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// On the embedded engine (not in cluster mode) a commit writes the dirty
// mark of a day only when a rollup pass began since the day was last marked, and the rollups stay
// exact (TestRollupAnswersEqualRaw inserts after a pass, unmarked, too).
func TestDirtyMarksAreWrittenOncePerPass(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	store.NoClockSlack(s)
	st, de := known[0].events()
	marks := func() int {
		t.Helper()
		var rows []struct {
			N int `json:"n"`
		}
		if err := s.QueryRows(ctx, "SELECT toInt64(count()) AS n FROM "+s.Database()+".rollup_marks", &rows); err != nil {
			t.Fatal(err)
		}
		return rows[0].N
	}
	insert := func(evs ...flowlog.Event) {
		t.Helper()
		if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	insert(st)
	first := marks()
	if first == 0 {
		t.Fatal("the first commit wrote no dirty mark")
	}
	insert(st) // a retry, same day
	switch n := marks(); {
	case cluster == "" && n != first:
		t.Errorf("a second commit to the same days, no pass since: %d marks, want %d", n, first)
	case cluster != "" && n <= first: // collectors sharing a server cannot skip
		t.Errorf("cluster mode: a second commit wrote no mark (%d marks, had %d)", n, first)
	}
	rollupOn(t, s)
	insert(de)
	if n := marks(); n <= first {
		t.Errorf("after a pass the next commit must mark again: %d marks, had %d", n, first)
	}
	rollupOn(t, s)
	top, err := s.Top(ctx, flowlog.TopQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	store.ForceRaw(s, true)
	raw, err := s.Top(ctx, flowlog.TopQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(top) == 0 || !reflect.DeepEqual(top, raw) {
		t.Errorf("rollup answer %v, raw %v", top, raw)
	}
}
