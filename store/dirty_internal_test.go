package store

import (
	"slices"
	"testing"
)

// A sole writer marks a day again only once a rollup pass began after its
// last mark of it; collectors sharing a server mark every commit.
func TestMarksSkipOnlyWhatNoPassCanHaveCovered(t *testing.T) {
	days := map[int64]struct{}{10: {}, 11: {}}
	m := &marks{sole: true, last: map[int64]int64{}}
	need := func() []int64 { d := m.needed(days); slices.Sort(d); return d }

	if got := need(); !slices.Equal(got, []int64{10, 11}) {
		t.Fatalf("never marked: need %v, want both days", got)
	}
	m.marked([]int64{10, 11}, 100)
	if got := need(); len(got) != 0 {
		t.Fatalf("marked, no pass since: need %v, want none", got)
	}
	m.passBegins(101)
	if got := need(); !slices.Equal(got, []int64{10, 11}) {
		t.Fatalf("a pass began after the marks: need %v, want both days again", got)
	}
	m.marked([]int64{10}, 102)
	if got := need(); !slices.Equal(got, []int64{11}) {
		t.Fatalf("day 10 marked after the pass began: need %v, want [11]", got)
	}

	shared := &marks{sole: false, last: map[int64]int64{}}
	shared.marked([]int64{10, 11}, 100)
	if got := shared.needed(days); len(got) != 2 {
		t.Fatalf("not the sole writer: need %v, want every day every time", got)
	}
}

// A sole writer's rollup state is read from memory until it writes marks
// or rollup_days; an answer read while a write was under way is not kept;
// collectors sharing a server always read it from the server.
func TestRollupStateIsCachedOnlyBetweenWrites(t *testing.T) {
	m := &marks{sole: true, last: map[int64]int64{}}
	one := map[string]cleanDay{"2026-11-28": {gen: 7}}
	if _, _, ok := m.cached("k"); ok {
		t.Fatal("nothing read yet, but a cached answer")
	}
	_, at, _ := m.cached("k")
	m.keep("k", one, at)
	if got, _, ok := m.cached("k"); !ok || got["2026-11-28"].gen != 7 {
		t.Fatalf("read and kept: cached %v %v, want it", got, ok)
	}
	if _, _, ok := m.cached("other"); ok {
		t.Fatal("another range's query answered from this one")
	}
	m.wroteState()
	if _, _, ok := m.cached("k"); ok {
		t.Fatal("a mark written since: the answer is still served")
	}
	_, at, _ = m.cached("k") // a read begins...
	m.wroteState()           // ...while a write ends
	m.keep("k", one, at)
	if _, _, ok := m.cached("k"); ok {
		t.Fatal("an answer read while a write was under way was kept")
	}

	shared := &marks{sole: false, last: map[int64]int64{}}
	_, at, _ = shared.cached("k")
	shared.keep("k", one, at)
	if _, _, ok := shared.cached("k"); ok {
		t.Fatal("not the sole writer: the rollup state came from memory")
	}
}
