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
