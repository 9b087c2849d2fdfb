package store

import "testing"

// A listing's windows double while nothing is found, and once flows are
// found jump to the hours the rest takes at their density: a first page
// filtered to an address seen about once an hour reads 3 windows, not 8.
func TestListingWindowsGrowWithTheDensityFound(t *testing.T) {
	for _, c := range []struct {
		n, done, seen, want, atLeast, atMost int
	}{
		{1, 1, 0, 100, 2, 2},                 // nothing yet: double
		{1, 1, 1, 100, 124, 125},             // 1 flow an hour: 99 more take 99 hours, plus a quarter
		{2, 3, 3, 100, 121, 122},             // the same density, counted over 3 hours
		{4, 7, 100, 100, 8, 8},               // enough: double (the loop stops anyway)
		{1, 1, 1, 1 << 40, 1 << 20, 1 << 20}, // bounded: 120 years of hours
	} {
		got := grow(c.n, c.done, c.seen, c.want)
		if got < c.atLeast || got > c.atMost {
			t.Errorf("grow(n %d, done %d, seen %d, want %d) = %d, want %d..%d", c.n, c.done, c.seen, c.want, got, c.atLeast, c.atMost)
		}
	}
	hours, windows := 0, 0
	for n, seen := 1, 0; seen < 100; n = grow(n, hours, seen, 100) {
		hours += n
		seen = hours // one flow an hour
		windows++
	}
	if windows > 3 {
		t.Errorf("one flow an hour: %d windows to list 100, want at most 3", windows)
	}
}
