package ingest

import (
	"sync/atomic"
	"testing"
	"time"
)

// After a burst of closes the freed memory goes back to the OS once the
// burst settled; streams coming and going in small numbers cost no
// collection.
func TestMemoryReturnedAfterBurstOfCloses(t *testing.T) {
	var frees atomic.Int32
	r := &releaser{free: func() { frees.Add(1) }}
	for n := int64(1); n <= 2000; n++ {
		r.opened(n)
	}
	for n := int64(1999); n >= 1900; n-- { // churn: 100 of 2000 close
		r.closed(n)
	}
	for n := int64(1899); n >= 0; n-- {
		r.closed(n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for frees.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := frees.Load(); got != 1 {
		t.Fatalf("after 2000 of 2000 streams closed: %d releases, want 1", got)
	}
	// Small churn after that: nothing more.
	for n := int64(1); n <= 100; n++ {
		r.opened(n)
	}
	for n := int64(99); n >= 0; n-- {
		r.closed(n)
	}
	r.mu.Lock()
	pending := r.pending
	r.mu.Unlock()
	if pending {
		t.Fatal("100 streams closing scheduled a release; the threshold is 500")
	}
}

// A fleet connecting at once leaves the garbage of its handshakes: once the
// burst settled it goes back to the OS, once; a few streams opening later
// cost no collection.
func TestMemoryReturnedAfterBurstOfOpens(t *testing.T) {
	var frees atomic.Int32
	r := &releaser{free: func() { frees.Add(1) }}
	for n := int64(1); n <= 1000; n++ {
		r.opened(n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for frees.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := frees.Load(); got != 1 {
		t.Fatalf("after 1000 streams opened: %d releases, want 1", got)
	}
	for n := int64(1001); n <= 1100; n++ {
		r.opened(n)
	}
	r.mu.Lock()
	pending := r.pending
	r.mu.Unlock()
	if pending {
		t.Fatal("100 streams opening scheduled a release; the threshold is 500")
	}
}
