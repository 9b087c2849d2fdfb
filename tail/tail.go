// Package tail fans committed flow events out to live subscribers (the
// /api/v1/flows/stream endpoint).
//
// The publisher is the ingest's commit goroutine, which must never wait for
// a reader: every subscriber has a bounded buffer, and an event that finds it
// full is dropped and counted. Memory per subscriber is therefore bounded
// whatever the reader's speed, and a slow reader learns exactly how many
// events it lost and where: the count travels with the next event delivered
// after the gap (Item.Lost), or, when no event followed, is read with
// TakeLost once the buffer is drained.
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

// Item is what a subscriber receives: an event, and how many matching events
// were dropped just before it because the buffer was full.
type Item struct {
	Lost  uint64
	Event flowlog.Event
}

// Hub fans events out to subscribers. The zero value is not usable; use
// NewHub. All methods are safe for concurrent use.
type Hub struct {
	pubMu sync.Mutex // one Publish at a time keeps each subscriber's order and gaps exact

	mu     sync.RWMutex
	subs   map[*Sub]struct{}
	closed bool

	published atomic.Uint64
	dropped   atomic.Uint64
}

// NewHub returns a hub with no subscribers.
func NewHub() *Hub {
	return &Hub{subs: make(map[*Sub]struct{})}
}

// Sub is one subscriber. Read events from C; C is closed by Unsubscribe
// and by Hub.Close.
type Sub struct {
	// C delivers the matching events in commit order. Its capacity is the
	// subscriber's buffer.
	C <-chan Item

	hub      *Hub
	filter   flowlog.Filter
	ch       chan Item
	overflow chan struct{} // capacity 1: "events were dropped"

	mu     sync.Mutex // orders a publish attempt against TakeLost and close
	lost   uint64     // dropped since the last delivered Item or TakeLost
	closed bool
}

// Subscribe registers a subscriber that receives the events matching f (see
// flowlog.Filter.Match) published from now on. buffer is how many events
// may wait for the reader (DefaultBuffer when < 1). On a closed hub the
// subscriber's channel is closed at once.
func (h *Hub) Subscribe(f flowlog.Filter, buffer int) *Sub {
	if buffer < 1 {
		buffer = DefaultBuffer
	}
	// The filter is the caller's value; its slices must not change under us.
	f.SrcTypes = slices.Clone(f.SrcTypes)
	f.DstTypes = slices.Clone(f.DstTypes)
	f.Protocols = slices.Clone(f.Protocols)
	ch := make(chan Item, buffer)
	s := &Sub{C: ch, hub: h, filter: f, ch: ch, overflow: make(chan struct{}, 1)}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.close()
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Unsubscribe removes s and closes s.C. It is safe to call more than once.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.close()
}

// Close unsubscribes everyone (their channels close, so readers end) and
// makes later Subscribe calls return closed subscribers.
func (h *Hub) Close() {
	h.mu.Lock()
	subs := h.subs
	h.subs = make(map[*Sub]struct{})
	h.closed = true
	h.mu.Unlock()
	for s := range subs {
		s.close()
	}
}

// Publish offers events to every subscriber whose filter they match. It
// never blocks on a reader: an event that finds a subscriber's buffer full
// is dropped for that subscriber and counted. It copies the events it keeps
// and does not retain the slice, so it fits ingest.Options.OnCommit.
func (h *Hub) Publish(events []flowlog.Event) {
	if len(events) == 0 {
		return
	}
	h.pubMu.Lock()
	defer h.pubMu.Unlock()
	h.mu.RLock()
	defer h.mu.RUnlock()
	h.published.Add(uint64(len(events)))
	for s := range h.subs {
		if n := s.offer(events); n > 0 {
			h.dropped.Add(n)
		}
	}
}

// offer sends the matching events to s without blocking and returns how
// many it dropped.
func (s *Sub) offer(events []flowlog.Event) (dropped uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	for i := range events {
		e := &events[i]
		if !s.filter.Match(e) {
			continue
		}
		select {
		case s.ch <- Item{Lost: s.lost, Event: *e}:
			s.lost = 0
		default:
			s.lost++
			dropped++
		}
	}
	if dropped > 0 {
		select {
		case s.overflow <- struct{}{}:
		default:
		}
	}
	return dropped
}

func (s *Sub) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// Overflow receives a signal after events were dropped for s. A reader
// selects on it beside C so that a gap at the end of a burst (no event
// followed it to carry Item.Lost) is reported without waiting: drain C, then
// call TakeLost.
func (s *Sub) Overflow() <-chan struct{} { return s.overflow }

// TakeLost returns the number of events dropped after the last event
// delivered on C, and resets it. It answers 0 while C still holds events,
// because the gap comes after them: the count then travels with the next
// Item or is returned by a later TakeLost, never both and never twice.
func (s *Sub) TakeLost() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ch) > 0 {
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
