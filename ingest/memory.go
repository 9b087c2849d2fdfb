package ingest

import (
	"runtime/debug"
	"sync"
	"time"
)

// Giving memory back after load: a fleet's streams closing at once (a
// collector restart upstream, a network partition) free tens of megabytes
// of goroutine stacks and transport state, which Go's background scavenger
// returns to the OS only slowly: RSS stayed at its peak after 10,000 streams
// closed. When at least releaseAfterStreams streams closed since the peak
// and at most half of the peak remains open, the freed memory is returned
// (debug.FreeOSMemory: one garbage collection) releaseSettle later, so
// that the rest of the burst is included, and at most once per
// releaseEvery.
const (
	releaseAfterStreams = 500
	releaseSettle       = time.Second
	releaseEvery        = 10 * time.Second
)

// releaser tracks the open streams' peak since memory was last returned.
type releaser struct {
	free func() // debug.FreeOSMemory; tests count calls

	mu      sync.Mutex
	open    int64 // streams open now
	peak    int64 // most open since the last release
	pending bool  // a release is scheduled
	last    time.Time
}

func newReleaser() *releaser { return &releaser{free: debug.FreeOSMemory} }

// opened notes that open streams are open now.
func (r *releaser) opened(open int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = open
	r.peak = max(r.peak, open)
}

// closed notes that open streams remain, and schedules a release if a
// burst of closes warrants one (the closing stream does not wait for it).
func (r *releaser) closed(open int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = open
	if r.pending || r.peak-open < releaseAfterStreams || open > r.peak/2 {
		return
	}
	r.pending = true
	time.AfterFunc(max(releaseSettle, time.Until(r.last.Add(releaseEvery))), r.release)
}

func (r *releaser) release() {
	r.mu.Lock()
	r.pending, r.last, r.peak = false, time.Now(), r.open
	r.mu.Unlock()
	r.free()
}
