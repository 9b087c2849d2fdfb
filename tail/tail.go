// Package tail fans committed flow events out to live subscribers (the
// /api/v1/flows/stream endpoint).
//
// The publisher is the ingest's commit goroutine, which must never wait for
// a reader, nor do per-subscriber work: Publish copies the events once and
// hands them to the hub's fan-out goroutine, which matches them against
// each subscriber's filter. Every subscriber has a bounded queue, allocated
// as events arrive (an idle subscriber holds a few hundred bytes, not its
// whole buffer), and an event that finds it full is dropped and counted.
// Memory per subscriber is therefore bounded whatever the reader's speed,
// and a slow reader learns exactly how many events it lost and where: the
// count travels with the next event delivered after the gap (Item.Lost), or,
// when no event followed, is read with TakeLost once the queue is drained.
// Should the fan-out itself fall behind the commits (more than MaxPending
// events waiting), the newest batch is dropped and every subscriber is told
// of the gap with its size, matching or not.
package tail

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/flowlog/flowlog"
)

// DefaultBuffer is the per-subscriber buffer, in events, when Subscribe is
// given none.
const DefaultBuffer = 1024

// MaxPending is how many published events may wait for the fan-out.
const MaxPending = 1 << 15

// Item is what a subscriber receives: an event, and how many matching events
// were dropped just before it because the buffer was full.
type Item struct {
	Lost  uint64
	Event flowlog.Event
}

// Hub fans events out to subscribers. The zero value is not usable; use
// NewHub. All methods are safe for concurrent use.
type Hub struct {
	mu     sync.RWMutex
	subs   map[*Sub]struct{}
	closed bool

	pmu      sync.Mutex
	pending  [][]flowlog.Event // batches waiting for the fan-out
	npending int               // events in pending
	gap      uint64            // events dropped before the fan-out saw them, not yet told
	wake     chan struct{}     // capacity 1: pending has work
	stop     chan struct{}     // closed by Close: the fan-out ends
	fanned   sync.Cond         // on pmu: signalled after each fan-out round (tests)
	busy     bool              // the fan-out is delivering a batch it took

	published atomic.Uint64
	dropped   atomic.Uint64
}

// NewHub returns a hub with no subscribers. Its fan-out goroutine runs
// until Close.
func NewHub() *Hub {
	h := &Hub{subs: make(map[*Sub]struct{}), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	h.fanned.L = &h.pmu
	go h.fanOut()
	return h
}

// Sub is one subscriber. Wait on Ready, then read with Next until it
// answers false; Done is closed by Unsubscribe and by Hub.Close (what was
// queued before can still be read).
type Sub struct {
	hub    *Hub
	filter flowlog.Filter
	max    int
	ready  chan struct{} // capacity 1: events queued, events lost, or closed
	done   chan struct{}

	mu     sync.Mutex
	q      []queued // q[head:] wait for the reader; allocated as events come
	head   int
	lost   uint64 // dropped since the last queued item or TakeLost
	closed bool
}

// queued is one event for one subscriber: the event is shared by every
// subscriber it matched (the hub's copy, never modified).
type queued struct {
	lost uint64
	ev   *flowlog.Event
}

// keepCap is the queue capacity a drained subscriber keeps; a larger one,
// grown in a burst, is released.
const keepCap = 64

// Subscribe registers a subscriber that receives the events matching f (see
// flowlog.Filter.Match) published from now on. buffer is how many events
// may wait for the reader (DefaultBuffer when < 1). On a closed hub the
// subscriber is closed at once.
func (h *Hub) Subscribe(f flowlog.Filter, buffer int) *Sub {
	if buffer < 1 {
		buffer = DefaultBuffer
	}
	// The filter is the caller's value; its slices must not change under us.
	f.SrcTypes = slices.Clone(f.SrcTypes)
	f.DstTypes = slices.Clone(f.DstTypes)
	f.Protocols = slices.Clone(f.Protocols)
	s := &Sub{hub: h, filter: f, max: buffer, ready: make(chan struct{}, 1), done: make(chan struct{})}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.close()
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Unsubscribe removes s and closes it. It is safe to call more than once.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.close()
}

// Close unsubscribes everyone (their Done closes, so readers end), stops
// the fan-out and makes later Subscribe calls return closed subscribers.
// Events published before Close are delivered first.
func (h *Hub) Close() {
	h.sync()
	h.mu.Lock()
	subs := h.subs
	h.subs = make(map[*Sub]struct{})
	wasClosed := h.closed
	h.closed = true
	h.mu.Unlock()
	if !wasClosed {
		close(h.stop)
	}
	for s := range subs {
		s.close()
	}
}

// Publish offers events to every subscriber whose filter they match. It
// never blocks on a reader and does no per-subscriber work: it copies the
// events (it does not retain the slice, so it fits ingest.Options.OnCommit)
// and the fan-out goroutine delivers them.
func (h *Hub) Publish(events []flowlog.Event) {
	if len(events) == 0 {
		return
	}
	h.published.Add(uint64(len(events)))
	h.mu.RLock()
	idle := len(h.subs) == 0 || h.closed
	h.mu.RUnlock()
	if idle {
		return
	}
	h.pmu.Lock()
	if h.npending+len(events) > MaxPending {
		h.gap += uint64(len(events))
	} else {
		h.pending = append(h.pending, slices.Clone(events))
		h.npending += len(events)
	}
	h.pmu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// fanOut delivers published batches to the subscribers, in order.
func (h *Hub) fanOut() {
	for {
		select {
		case <-h.stop:
			return
		case <-h.wake:
		}
		for {
			h.pmu.Lock()
			batches, gap := h.pending, h.gap
			h.pending, h.npending, h.gap = nil, 0, 0
			h.busy = len(batches) > 0 || gap > 0
			h.pmu.Unlock()
			if !h.busy {
				break
			}
			h.deliver(batches, gap)
			h.pmu.Lock()
			h.busy = false
			h.fanned.Broadcast()
			h.pmu.Unlock()
		}
		h.pmu.Lock()
		h.fanned.Broadcast()
		h.pmu.Unlock()
	}
}

func (h *Hub) deliver(batches [][]flowlog.Event, gap uint64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		var dropped uint64
		if gap > 0 {
			dropped += s.skip(gap)
		}
		for _, b := range batches {
			dropped += s.offer(b)
		}
		h.dropped.Add(dropped)
	}
}

// sync waits until everything published so far was delivered.
func (h *Hub) sync() {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	for {
		h.mu.RLock()
		stopped := h.closed
		h.mu.RUnlock()
		if stopped || (len(h.pending) == 0 && h.gap == 0 && !h.busy) {
			return
		}
		h.fanned.Wait()
	}
}

// offer queues the matching events for s and returns how many it dropped
// because s's queue was full.
func (s *Sub) offer(events []flowlog.Event) (dropped uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	added := false
	for i := range events {
		e := &events[i]
		if !s.filter.Match(e) {
			continue
		}
		if len(s.q)-s.head < s.max {
			s.push(queued{lost: s.lost, ev: e})
			s.lost = 0
			added = true
		} else {
			s.lost++
			dropped++
		}
	}
	if added || dropped > 0 {
		s.signal()
	}
	return dropped
}

// skip counts n events the fan-out never saw as lost for s.
func (s *Sub) skip(n uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	s.lost += n
	s.signal()
	return n
}

// push appends to the queue, moving the unread part to the front first
// when the read part is most of it (the queue's capacity never has to grow
// past twice the buffer).
func (s *Sub) push(q queued) {
	if s.head > 0 && s.head >= len(s.q)/2 && len(s.q) == cap(s.q) {
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q, s.head = s.q[:n], 0
	}
	s.q = append(s.q, q)
}

func (s *Sub) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (s *Sub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
		s.signal()
	}
}

// Ready receives a signal when events were queued or lost for s, or s was
// closed: then read with Next until it answers false, and call TakeLost.
func (s *Sub) Ready() <-chan struct{} { return s.ready }

// Done is closed once s is unsubscribed or the hub closed.
func (s *Sub) Done() <-chan struct{} { return s.done }

// Next returns the oldest queued item; false when none is queued.
func (s *Sub) Next() (Item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.q) {
		return Item{}, false
	}
	q := s.q[s.head]
	s.q[s.head] = queued{}
	s.head++
	if s.head == len(s.q) { // drained: start over, and give back a burst's memory
		s.q, s.head = s.q[:0], 0
		if cap(s.q) > keepCap {
			s.q = nil
		}
	}
	return Item{Lost: q.lost, Event: *q.ev}, true
}

// Buffered is the number of queued items.
func (s *Sub) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q) - s.head
}

// TakeLost returns the number of events dropped after the last event
// queued for s, and resets it. It answers 0 while events are still queued,
// because the gap comes after them: the count then travels with the next
// Item or is returned by a later TakeLost, never both and never twice.
func (s *Sub) TakeLost() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head < len(s.q) {
		return 0
	}
	n := s.lost
	s.lost = 0
	return n
}

// Unsubscribe is h.Unsubscribe(s).
func (s *Sub) Unsubscribe() { s.hub.Unsubscribe(s) }

// Stats are the hub's counters since it was made.
type Stats struct {
	Subscribers int
	Published   uint64 // events offered by Publish
	Dropped     uint64 // event deliveries dropped because a buffer was full, over all subscribers
}

// Stats reports the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	n := len(h.subs)
	h.mu.RUnlock()
	return Stats{Subscribers: n, Published: h.published.Load(), Dropped: h.dropped.Load()}
}
