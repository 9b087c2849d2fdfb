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
