package store

import (
	"strconv"
	"testing"
)

// The recent cache gives back what was committed, ends and approximate ends
// included, keeps a reused id's latest two instances and replaces a key's
// instances by the newer batch's.
func TestRecentCacheKeepsWhatWasCommitted(t *testing.T) {
	var c recent
	k := func(id string) flowFP { return fpOf(flowKey{"net", "host", id}) }
	get := func(id string) []instance {
		var out []instance
		if !c.get(k(id), &out) {
			return nil
		}
		return out
	}
	if get("a") != nil {
		t.Fatal("an empty cache answered")
	}
	c.add(k("a"), []instance{{start: 1}})
	c.add(k("a"), []instance{{start: 1, end: 1 << 47, approx: true}}) // its DESTROY replaces the START
	if got := get("a"); len(got) != 1 || got[0] != (instance{start: 1, end: 1 << 47, approx: true}) {
		t.Fatalf("a = %+v; want the ended instance", got)
	}
	c.add(k("b"), []instance{{start: 30}, {start: 10, end: 20}, {start: 20, end: 25}})
	if got := get("b"); len(got) != 2 || got[0] != (instance{start: 20, end: 25}) || got[1] != (instance{start: 30}) {
		t.Fatalf("b = %+v; want its latest two instances", got)
	}
	c.add(k("b"), []instance{{start: 30, end: 40}})
	if got := get("b"); len(got) != 1 || got[0] != (instance{start: 30, end: 40}) {
		t.Fatalf("b after a one-instance batch = %+v; want only that instance", got)
	}
	for i := range recentFlows / 2 { // a generation's worth: "a" moves to the older one, still found
		c.add(fpOf(flowKey{"net", "other", strconv.Itoa(i)}), []instance{{start: int64(i)}})
	}
	if get("a") == nil {
		t.Error("a flow of the older generation is lost")
	}
}

// Every key added within the current and the previous generation is found,
// however the keys fall into sets (a full set moves its oldest to the
// spill), and older ones are forgotten, spill included.
func TestRecentCacheFindsEveryKeyOfTwoGenerations(t *testing.T) {
	var c recent
	found := func(k flowFP) bool {
		var out []instance
		return c.get(k, &out) && len(out) == 1 && out[0].start == int64(k.b)
	}
	// 20 keys in one set: 12 more than it holds.
	same := func(i int) flowFP { return flowFP{a: uint64(i) << 40, b: uint64(i)} }
	for i := range 20 {
		c.add(same(i), []instance{{start: int64(i)}})
	}
	if len(c.spill) != 20-recentWays {
		t.Fatalf("spill holds %d; want %d", len(c.spill), 20-recentWays)
	}
	for i := range 20 {
		if !found(same(i)) {
			t.Fatalf("key %d of a full set is lost", i)
		}
	}
	// Three generations of keys spread by their fingerprints: the last two
	// are found, the first is not, and the spill forgot it.
	spread := func(i int) flowFP { return fpOf(flowKey{"net", "host", strconv.Itoa(i)}) }
	n := 3*recentGen - 20
	for i := range n {
		k := spread(i)
		k.b = uint64(i)
		c.add(k, []instance{{start: int64(i)}})
	}
	for i := range n {
		k := spread(i)
		k.b = uint64(i)
		if want := 20+i >= recentGen; found(k) != want { // add number 20+i; the first recentGen are the forgotten generation
			t.Fatalf("key %d of %d: found = %v; want %v", i, n, !want, want)
		}
	}
	for i := range 20 {
		if found(same(i)) {
			t.Fatalf("key %d of the first generation is still found", i)
		}
	}
	if len(c.spill) > recentFlows/20 {
		t.Errorf("spill holds %d entries: sets overflow far more than expected", len(c.spill))
	}
}
