package tail

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

func ev(id int, network string) flowlog.Event {
	return flowlog.Event{Type: flowlog.EventStart, FlowID: strconv.Itoa(id), HostID: "h", NetworkID: network,
		Protocol: 6, Start: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
}

func evs(from, to int, network string) []flowlog.Event {
	var out []flowlog.Event
	for i := from; i < to; i++ {
		out = append(out, ev(i, network))
	}
	return out
}

// drain reads what s holds once everything published was delivered.
func drain(t *testing.T, s *Sub) []Item {
	t.Helper()
	s.hub.sync()
	var out []Item
	for {
		it, ok := s.Next()
		if !ok {
			return out
		}
		out = append(out, it)
	}
}

// isDone says whether s was closed.
func isDone(s *Sub) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}

// render shows items as "id" or "+lost>id", for exact comparisons.
func render(items []Item) string {
	s := ""
	for _, it := range items {
		if it.Lost > 0 {
			s += fmt.Sprintf("+%d>", it.Lost)
		}
		s += it.Event.FlowID + " "
	}
	return s
}

func TestFilterApplied(t *testing.T) {
	h := NewHub()
	a := h.Subscribe(flowlog.Filter{NetworkID: "a"}, 10)
	all := h.Subscribe(flowlog.Filter{}, 10)
	h.Publish([]flowlog.Event{ev(1, "a"), ev(2, "b"), ev(3, "a"), ev(4, "c")})
	if got, want := render(drain(t, a)), "1 3 "; got != want {
		t.Errorf("filtered subscriber got %q, want %q", got, want)
	}
	if got, want := render(drain(t, all)), "1 2 3 4 "; got != want {
		t.Errorf("unfiltered subscriber got %q, want %q", got, want)
	}
}

func TestSlowSubscriberLosesExactCount(t *testing.T) {
	h := NewHub()
	slow := h.Subscribe(flowlog.Filter{}, 4)
	fast := h.Subscribe(flowlog.Filter{}, 100)
	other := h.Subscribe(flowlog.Filter{NetworkID: "elsewhere"}, 1) // matches nothing: never loses

	h.Publish(evs(0, 10, "n"))
	h.sync()
	select {
	case <-slow.Ready():
	default:
		t.Fatal("no signal after drops")
	}
	if n := slow.TakeLost(); n != 0 {
		t.Errorf("TakeLost with events still buffered = %d, want 0 (the gap comes after them)", n)
	}
	if got, want := render(drain(t, slow)), "0 1 2 3 "; got != want {
		t.Errorf("slow got %q, want %q", got, want)
	}
	if n := slow.TakeLost(); n != 6 {
		t.Errorf("TakeLost = %d, want 6", n)
	}
	if n := slow.TakeLost(); n != 0 {
		t.Errorf("second TakeLost = %d, want 0 (reset)", n)
	}
	if got, want := render(drain(t, fast)), "0 1 2 3 4 5 6 7 8 9 "; got != want {
		t.Errorf("fast got %q, want %q", got, want)
	}
	if n := fast.TakeLost(); n != 0 {
		t.Errorf("fast TakeLost = %d", n)
	}
	if n := other.TakeLost(); n != 0 {
		t.Errorf("non-matching subscriber TakeLost = %d", n)
	}
	if st := h.Stats(); st != (Stats{Subscribers: 3, Published: 10, Dropped: 6}) {
		t.Errorf("stats %+v", st)
	}
}

// A gap followed by more events travels with the first event after it, so a
// reader knows exactly where it is.
func TestGapTravelsWithNextEvent(t *testing.T) {
	h := NewHub()
	s := h.Subscribe(flowlog.Filter{}, 2)
	h.Publish(evs(0, 5, "n")) // 0 1 buffered, 2 3 4 dropped
	h.sync()
	if it, _ := s.Next(); it.Event.FlowID != "0" || it.Lost != 0 {
		t.Fatalf("first item %+v", it)
	}
	h.Publish(evs(5, 8, "n")) // 5 fits (after the gap of 3), 6 7 dropped
	if got, want := render(drain(t, s)), "1 +3>5 "; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if n := s.TakeLost(); n != 2 {
		t.Errorf("trailing TakeLost = %d, want 2", n)
	}
	h.Publish(evs(8, 9, "n"))
	if got, want := render(drain(t, s)), "8 "; got != want {
		t.Errorf("after the gap was taken got %q, want %q", got, want)
	}
	if st := h.Stats(); st.Dropped != 5 || st.Published != 9 {
		t.Errorf("stats %+v, want 5 dropped of 9", st)
	}
}

func TestPublishCopiesEvents(t *testing.T) {
	h := NewHub()
	s := h.Subscribe(flowlog.Filter{}, 4)
	batch := evs(0, 2, "n")
	h.Publish(batch)
	for i := range batch { // the ingest reuses its slice
		batch[i] = ev(99, "x")
	}
	if got, want := render(drain(t, s)), "0 1 "; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSubscribeClonesFilter(t *testing.T) {
	h := NewHub()
	f := flowlog.Filter{Protocols: []uint8{6}}
	s := h.Subscribe(f, 4)
	f.Protocols[0] = 17
	h.Publish(evs(0, 1, "n")) // tcp
	if got := render(drain(t, s)); got != "0 " {
		t.Errorf("got %q: the caller's later edit of its filter changed the subscription", got)
	}
}

func TestUnsubscribeAndClose(t *testing.T) {
	h := NewHub()
	a := h.Subscribe(flowlog.Filter{}, 4)
	b := h.Subscribe(flowlog.Filter{}, 4)
	h.Publish(evs(0, 1, "n"))
	h.sync() // delivery is asynchronous: a sees what was delivered while subscribed
	a.Unsubscribe()
	a.Unsubscribe() // twice is fine
	h.Publish(evs(1, 2, "n"))
	// a keeps what was buffered before, then sees the close.
	if got := render(drain(t, a)); got != "0 " || !isDone(a) {
		t.Errorf("a: %q, done %v", got, isDone(a))
	}
	if st := h.Stats(); st.Subscribers != 1 {
		t.Errorf("subscribers %d, want 1", st.Subscribers)
	}

	h.Close()
	if got := render(drain(t, b)); got != "0 1 " {
		t.Errorf("b got %q", got)
	}
	if !isDone(b) {
		t.Error("b still open after Close")
	}
	h.Publish(evs(2, 3, "n")) // no one left; must not panic
	c := h.Subscribe(flowlog.Filter{}, 4)
	if !isDone(c) {
		t.Error("Subscribe on a closed hub gave an open subscriber")
	}
	h.Unsubscribe(c)
	if st := h.Stats(); st.Subscribers != 0 {
		t.Errorf("subscribers %d after Close", st.Subscribers)
	}
}

func TestDefaultBuffer(t *testing.T) {
	h := NewHub()
	defer h.Close()
	s := h.Subscribe(flowlog.Filter{}, 0)
	h.Publish(evs(0, DefaultBuffer+5, "n"))
	if n := len(drain(t, s)); n != DefaultBuffer {
		t.Errorf("buffered %d, want %d", n, DefaultBuffer)
	}
}

// Idle subscribers hold no buffer: 3,000 idle live tails took the Go heap
// from 3 MB to 1.16 GB when each reserved its whole buffer up front.
func TestIdleSubscribersCostLittle(t *testing.T) {
	h := NewHub()
	defer h.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	subs := make([]*Sub, 3000)
	for i := range subs {
		subs[i] = h.Subscribe(flowlog.Filter{NetworkID: "n"}, DefaultBuffer)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(len(subs))
	t.Logf("%d bytes of heap per idle subscriber", per)
	if per > 2048 {
		t.Errorf("%d bytes of heap per idle subscriber, want under 2 KiB", per)
	}
	// A burst's queue is given back once read.
	h.Publish(evs(0, 500, "n"))
	for _, s := range subs[:10] {
		drain(t, s)
		if c := cap(s.q); c > keepCap {
			t.Errorf("drained subscriber keeps a queue of %d", c)
		}
	}
	runtime.KeepAlive(subs)
}

// The publisher (the ingest's commit goroutine) never waits for a
// subscriber, even one whose queue is locked by its reader, and does no
// per-subscriber work.
func TestPublishDoesNotWaitForSubscribers(t *testing.T) {
	h := NewHub()
	defer h.Close()
	stuck := h.Subscribe(flowlog.Filter{}, 4)
	other := h.Subscribe(flowlog.Filter{}, 4)
	stuck.mu.Lock()
	published := make(chan struct{})
	go func() {
		h.Publish(evs(0, 2, "n"))
		close(published)
	}()
	select {
	case <-published:
	case <-time.After(30 * time.Second):
		t.Fatal("Publish blocked on a subscriber")
	}
	stuck.mu.Unlock()
	if got := render(drain(t, other)); got != "0 1 " {
		t.Errorf("other got %q", got)
	}
	if got := render(drain(t, stuck)); got != "0 1 " {
		t.Errorf("stuck got %q once unlocked", got)
	}
}

// A reader racing a publisher: every published event is either delivered or
// counted as lost exactly once, and each gap is reported exactly where it
// happened (the ids are consecutive).
func TestConcurrentReaderAccountsForEveryEvent(t *testing.T) {
	before := runtime.NumGoroutine()
	h := NewHub()
	s := h.Subscribe(flowlog.Filter{NetworkID: "n"}, 8)
	const total = 200_000

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i += 100 {
			batch := evs(i, i+100, "n")
			batch = append(batch, ev(-1, "other")) // filtered out, never counted
			h.Publish(batch)
		}
		h.sync()
		h.Unsubscribe(s) // closes s after the last delivery
	}()

	next, delivered, lost := 0, 0, uint64(0)
	check := func(it Item) {
		id, _ := strconv.Atoi(it.Event.FlowID)
		if id != next+int(it.Lost) {
			t.Fatalf("event %d after a gap of %d, expected %d", id, it.Lost, next+int(it.Lost))
		}
		lost += it.Lost
		delivered++
		next = id + 1
	}
	for done := false; !done; {
		select {
		case <-s.Done():
			done = true
		case <-s.Ready():
		}
		for {
			it, ok := s.Next()
			if !ok {
				break
			}
			check(it)
			if delivered%1000 == 0 {
				time.Sleep(time.Millisecond) // be slow now and then
			}
		}
		if n := s.TakeLost(); n > 0 {
			lost += n
			next += int(n)
		}
	}
	wg.Wait()
	lost += s.TakeLost()
	if uint64(delivered)+lost != total {
		t.Errorf("delivered %d + lost %d = %d, want %d", delivered, lost, uint64(delivered)+lost, total)
	}
	if lost == 0 {
		t.Error("the reader never lost anything; the test did not exercise overflow")
	}
	if st := h.Stats(); st.Dropped != lost {
		t.Errorf("hub counted %d dropped, reader %d", st.Dropped, lost)
	}
	t.Logf("delivered %d, lost %d", delivered, lost)

	// Close stops the hub's fan-out goroutine.
	h.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines, %d before", n, before)
	}
}
