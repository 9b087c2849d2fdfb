package freelist

import "testing"

// Get returns what was put, last first, and a fresh value when nothing is kept.
func TestGetReturnsWhatWasPutLastFirst(t *testing.T) {
	var l List[*int]
	made := 0
	fresh := func() *int { made++; return new(int) }
	a, b := new(int), new(int)
	l.Put(a)
	l.Put(b)
	if got := l.Get(fresh); got != b {
		t.Fatal("the value put last was not returned first")
	}
	if got := l.Get(fresh); got != a {
		t.Fatal("the value put first was not returned")
	}
	if l.Get(fresh); made != 1 {
		t.Fatalf("nothing kept: made %d values, want 1", made)
	}
}
