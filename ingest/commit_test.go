package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// slowStore blocks every insert until released: a unit stand-in for a store
// that cannot keep up (the real engine is exercised in server_test.go).
type slowStore struct {
	flowlog.Store
	release chan struct{}
	mu      sync.Mutex
	batches []int
}

func (s *slowStore) Insert(ctx context.Context, b *flowlog.Batch) error {
	<-s.release
	s.mu.Lock()
	s.batches = append(s.batches, len(b.Events))
	s.mu.Unlock()
	return nil
}

func newTicket(n int) *ticket {
	return &ticket{events: make([]flowlog.Event, n), done: make(chan struct{})}
}

// While the store is slow, envelopes pile up into a larger next insert, and
// past MaxPendingRows they are refused (success=false) instead of buffered
// without bound. Nothing accepted is lost.
func TestCommitterGrowsBatchesThenRefusesWhenOverloaded(t *testing.T) {
	st := &slowStore{release: make(chan struct{})}
	o := Options{FlushRows: 10, FlushInterval: time.Millisecond, MaxPendingRows: 100}
	o.defaults()
	c := newCommitter(st, o, slog.New(slog.NewTextHandler(io.Discard, nil)))

	var accepted []*ticket
	var refused int
	for i := 0; i < 20; i++ {
		tk := newTicket(10)
		if err := c.submit(tk); errors.Is(err, ErrOverloaded) {
			refused++
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		accepted = append(accepted, tk)
	}
	if len(accepted) != 10 || refused != 10 {
		t.Fatalf("accepted %d, refused %d; want 10 and 10 (100 pending rows max)", len(accepted), refused)
	}
	close(st.release)
	for i, tk := range accepted {
		select {
		case <-tk.done:
			if tk.err != nil {
				t.Fatalf("ticket %d: %v", i, tk.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ticket %d never committed", i)
		}
	}
	c.close()
	st.mu.Lock()
	defer st.mu.Unlock()
	total := 0
	for _, n := range st.batches {
		total += n
	}
	if total != 100 || len(st.batches) >= 10 {
		t.Fatalf("batches %v: want 100 rows in fewer inserts than envelopes", st.batches)
	}
	if err := c.submit(newTicket(1)); !errors.Is(err, errClosed) {
		t.Fatalf("submit after close: %v", err)
	}
}

// fakeClock is time that moves only when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at            time.Time
	f             func()
	stopped, done bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped && !t.done
		t.stopped = true
		return was
	}
}

// Advance moves time on by d and runs the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.stopped && !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// gateStore holds each insert until the test lets it finish, and tells
// when one starts and how many rows it carries.
type gateStore struct {
	flowlog.Store
	started chan int // rows of each insert, as it starts
	release chan struct{}
}

func newGateStore() *gateStore {
	return &gateStore{started: make(chan int, 100), release: make(chan struct{})}
}

func (g *gateStore) Insert(ctx context.Context, b *flowlog.Batch) error {
	g.started <- len(b.Events)
	<-g.release
	return nil
}

// nextInsert is the row count of the next insert to start.
func (g *gateStore) nextInsert(t *testing.T) int {
	t.Helper()
	select {
	case n := <-g.started:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no insert started")
		return 0
	}
}

// waiting is how many envelopes wait in the batch, not handed to a writer.
func (c *committer) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.batch.tickets)
}

func waitDone(t *testing.T, tk *ticket) {
	t.Helper()
	select {
	case <-tk.done:
		if tk.err != nil {
			t.Fatal(tk.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ticket never answered")
	}
}

func newTestCommitter(st flowlog.Store, o Options) (*committer, *fakeClock) {
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	o.clock = clk
	if o.Linger == 0 {
		o.Linger = -1 // tests of the linger set it
	}
	o.defaults()
	c := newCommitter(st, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return c, clk
}

// An idle store gathers what arrives within the linger into one insert,
// and commits it once the linger has passed, not the interval.
func TestIdleStoreLingersForWhatArrivesTogether(t *testing.T) {
	g := newGateStore()
	close(g.release)
	c, clk := newTestCommitter(g, Options{FlushInterval: time.Hour, Linger: 2 * time.Millisecond})
	defer c.close()
	tickets := []*ticket{newTicket(2), newTicket(3), newTicket(4)}
	for _, tk := range tickets {
		if err := c.submit(tk); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.waiting(); n != 3 {
		t.Fatalf("within the linger %d envelopes wait, want all 3", n)
	}
	clk.Advance(time.Millisecond)
	if n := c.waiting(); n != 3 {
		t.Fatalf("before the linger passed %d envelopes wait, want all 3", n)
	}
	clk.Advance(time.Millisecond)
	if n := g.nextInsert(t); n != 9 {
		t.Fatalf("insert of %d rows, want the 9 of all three envelopes", n)
	}
	for _, tk := range tickets {
		waitDone(t, tk)
	}
}

// An idle store commits an envelope at once: the clock never moves, and
// the flush interval is an hour, yet the envelope is answered.
func TestIdleStoreCommitsWithoutWaitingForTheInterval(t *testing.T) {
	g := newGateStore()
	close(g.release)
	c, _ := newTestCommitter(g, Options{FlushInterval: time.Hour})
	defer c.close()
	for i := 1; i <= 3; i++ { // each one alone: the store is idle again each time
		tk := newTicket(i)
		if err := c.submit(tk); err != nil {
			t.Fatal(err)
		}
		if n := g.nextInsert(t); n != i {
			t.Fatalf("insert of %d rows, want %d", n, i)
		}
		waitDone(t, tk)
	}
}

// While an insert is in flight, envelopes accumulate and the writer that
// finishes takes them all in one insert; a second writer joins only when
// the batch's oldest envelope has waited the interval.
func TestBatchesGrowOnlyWhileACommitIsInFlight(t *testing.T) {
	g := newGateStore()
	c, clk := newTestCommitter(g, Options{FlushInterval: time.Second, Writers: 2})
	defer func() { close(g.release); c.close() }()

	first := newTicket(1)
	c.submit(first)
	if n := g.nextInsert(t); n != 1 {
		t.Fatalf("first insert: %d rows", n)
	}
	second, third := newTicket(2), newTicket(3)
	c.submit(second)
	c.submit(third)
	if n := c.waiting(); n != 2 {
		t.Fatalf("%d envelopes wait, want 2: an insert is in flight, the interval not reached (a writer is idle)", n)
	}

	g.release <- struct{}{} // the first insert finishes...
	waitDone(t, first)
	if n := g.nextInsert(t); n != 5 { // ...and its writer takes what waited, together
		t.Fatalf("second insert: %d rows, want 5 (2+3 grown while the first was in flight)", n)
	}
	fourth := newTicket(4)
	c.submit(fourth)
	if n := c.waiting(); n != 1 {
		t.Fatalf("%d envelopes wait, want 1: the second insert is in flight", n)
	}
	clk.Advance(time.Second) // the fourth waited the interval: the idle writer takes it
	if n := g.nextInsert(t); n != 4 {
		t.Fatalf("third insert: %d rows, want 4 (in parallel, after the interval)", n)
	}
	g.release <- struct{}{}
	g.release <- struct{}{}
	waitDone(t, second)
	waitDone(t, third)
	waitDone(t, fourth)
}
