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
// closed. A fleet connecting at once (this collector restarted) leaves the
// garbage of 10,000 handshakes, ~5 kB each, in the heap until the next
// collection, which an idle fleet does not cause. After a burst, at least
// releaseAfterStreams streams opened, or closed leaving at most half the peak
// open, the freed memory is returned (debug.FreeOSMemory: one garbage
// collection) once no stream came or went for releaseSettle, and at most
// once per releaseEvery.
const (
	releaseAfterStreams = 500
	releaseSettle       = time.Second
	releaseEvery        = 10 * time.Second
)

// releaser tracks the streams opened and the open streams' peak since memory
// was last returned.
type releaser struct {
	free func() // debug.FreeOSMemory; tests count calls

	mu     sync.Mutex
	open   int64 // streams open now
	peak   int64 // most open since the last release
	opens  int64 // streams opened since the last release
	settle *time.Timer
	// pending: a release is scheduled, and each stream that comes or goes
	// puts it off by releaseSettle.
	pending bool
	last    time.Time
}

func newReleaser() *releaser { return &releaser{free: debug.FreeOSMemory} }

// opened notes that open streams are open now, and schedules a release if
// a burst of opens warrants one.
func (r *releaser) opened(open int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = open
	r.peak = max(r.peak, open)
	r.opens++
	if r.pending || r.opens >= releaseAfterStreams {
		r.schedule()
	}
}

// closed notes that open streams remain, and schedules a release if a
// burst of closes warrants one (the closing stream does not wait for it).
func (r *releaser) closed(open int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = open
	if r.pending || (r.peak-open >= releaseAfterStreams && open <= r.peak/2) {
		r.schedule()
	}
}

// schedule (re)starts the release's timer; r.mu is held.
func (r *releaser) schedule() {
	d := max(releaseSettle, time.Until(r.last.Add(releaseEvery)))
	if r.settle == nil {
		r.settle = time.AfterFunc(d, r.release)
	} else {
		r.settle.Reset(d)
	}
	r.pending = true
}

func (r *releaser) release() {
	r.mu.Lock()
	if !r.pending { // a Reset raced with the timer firing: released already
		r.mu.Unlock()
		return
	}
	r.pending, r.last, r.peak, r.opens = false, time.Now(), r.open, 0
	r.mu.Unlock()
	r.free()
}
