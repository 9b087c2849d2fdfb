package ingest

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/metrics"
)

// ErrOverloaded is returned by submit when more rows wait for commit than the
// configured bound; the agent is told to retry later.
var ErrOverloaded = errors.New("collector overloaded: too many events waiting for commit, retry later")

// errClosed is returned by submit after shutdown began.
var errClosed = errors.New("collector shutting down, retry")

// ticket is one envelope's place in a group commit. done is closed when the
// insert holding its events has committed (err nil) or failed.
type ticket struct {
	// events and rejected are moved into the group commit's batch at
	// submit, so that an envelope's events are held once, not twice (in
	// the ticket and in the insert), while they wait: less live heap for
	// the GC to mark (measured: the copies were a fifth of it).
	events   []flowlog.Event
	rejected []flowlog.Rejected
	note     string // rejected events by index and reason, for the response
	err      error
	done     chan struct{}
}

func (t *ticket) rows() int { return len(t.events) + len(t.rejected) }

// batch is what one insert commits: the tickets it answers and their rows.
type batch struct {
	tickets  []*ticket
	events   []flowlog.Event
	rejected []flowlog.Rejected
}

// committer merges envelopes from every stream into inserts (group commit),
// clocked by the store itself: when no insert is in flight, what waits is
// committed at once, after a linger of a millisecond or two that gathers
// what arrives together (an idle store acks in one insert's time, not
// after an interval); while one is in flight, envelopes accumulate, and the writer
// that finishes takes everything that arrived meanwhile. So batches grow
// exactly as fast as the store is slow, and never wait for nothing.
// A second insert starts alongside a running one only when the batch holds
// maxRows or its oldest envelope has waited interval: several writers
// insert in parallel at high load (one insert leaves most of a core idle
// while the engine parses and sorts; measured: 2 writers, +40% ceiling),
// while at low load one insert at a time keeps parts few.
type committer struct {
	store      Inserter
	maxRows    int
	interval   time.Duration
	linger     time.Duration // an idle store gathers this long before committing (<= 0: not at all)
	maxPending int64
	timeout    time.Duration
	writers    int
	onCommit   func([]flowlog.Event)
	log        *slog.Logger
	m          *metrics.Collector
	clock      clock

	pending atomic.Int64 // rows submitted, not yet committed or failed

	mu       sync.Mutex
	batch    batch
	rows     int
	spare    [][]flowlog.Event // event buffers of finished inserts, for the next batches
	oldest   time.Time         // when the batch's first envelope arrived
	timer    func() bool       // stops the pending flushDue; nil: none
	inFlight int               // batches handed to writers and not finished
	urgent   bool              // shutting down: flush every submit at once
	closed   bool

	flushes   chan *batch
	wg        sync.WaitGroup
	closeOnce sync.Once
	stats     commitStats
}

// clock is the committer's time; tests inject a fake one.
type clock interface {
	Now() time.Time
	// AfterFunc runs f after d; the result stops it.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

type commitStats struct {
	inserts, rows, failures atomic.Int64
}

func newCommitter(store Inserter, o Options, log *slog.Logger) *committer {
	c := &committer{
		store: store, maxRows: o.FlushRows, interval: o.FlushInterval, linger: o.Linger, writers: o.Writers,
		maxPending: int64(o.MaxPendingRows), timeout: o.InsertTimeout, onCommit: o.OnCommit, log: log, m: o.Metrics,
		clock:   cmp.Or[clock](o.clock, realClock{}),
		flushes: make(chan *batch), // unbuffered: a batch is handed over only to an idle writer
	}
	c.m.PendingRows.Set(func() float64 { return float64(c.pending.Load()) })
	for range o.Writers {
		c.wg.Add(1)
		go c.writer()
	}
	return c
}

// submit queues an envelope's events for the next group commit.
func (c *committer) submit(t *ticket) error {
	n := int64(t.rows())
	if c.pending.Add(n) > c.maxPending && n > 0 {
		c.pending.Add(-n)
		return ErrOverloaded
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.pending.Add(-n)
		return errClosed
	}
	if len(c.batch.tickets) == 0 {
		c.oldest = c.clock.Now()
		if c.batch.events == nil && len(c.spare) > 0 {
			c.batch.events, c.spare = c.spare[len(c.spare)-1], c.spare[:len(c.spare)-1]
		}
	}
	c.batch.tickets = append(c.batch.tickets, t)
	c.batch.events = append(c.batch.events, t.events...)
	c.batch.rejected = append(c.batch.rejected, t.rejected...)
	c.rows += int(n)
	t.events, t.rejected = nil, nil
	switch {
	case c.rows >= c.maxRows || c.urgent || c.inFlight == 0 && c.linger <= 0:
		c.flushLocked()
	case c.timer != nil: // due already: at the end of the linger, or of the interval
	case c.inFlight == 0: // idle: commit once what arrives together has
		c.timer = c.clock.AfterFunc(c.linger, c.flushDue)
	default:
		c.timer = c.clock.AfterFunc(c.interval, c.flushDue)
	}
	return nil
}

// flushDue runs when the batch's oldest envelope has waited interval while
// an insert was in flight: a second writer, if idle, takes it.
func (c *committer) flushDue() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	c.flushLocked()
}

// flushLocked hands the batch to an idle writer. If every writer is busy,
// the batch keeps growing instead (bounded by maxPending), and the first
// writer to finish takes it (next).
func (c *committer) flushLocked() {
	if len(c.batch.tickets) == 0 || c.inFlight >= c.writers {
		return
	}
	// A writer not in flight is waiting on flushes or about to (it holds no
	// lock on its way back), so this send is brief.
	c.flushes <- c.takeLocked()
}

// takeLocked empties the batch for a writer.
func (c *committer) takeLocked() *batch {
	taken := c.batch
	c.batch, c.rows = batch{}, 0
	c.inFlight++
	if c.timer != nil {
		c.timer()
		c.timer = nil
	}
	return &taken
}

// next is called by a writer whose insert finished: it returns the batch
// that accumulated meanwhile if it is due now (no other insert in flight,
// full, waited interval, or shutting down), else nil and the writer goes
// back to waiting.
func (c *committer) next(done *batch) *batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	if len(c.spare) < c.writers+1 {
		c.spare = append(c.spare, done.events[:0])
	}
	if len(c.batch.tickets) == 0 {
		return nil
	}
	if c.inFlight == 0 || c.rows >= c.maxRows || c.urgent || c.clock.Now().Sub(c.oldest) >= c.interval {
		return c.takeLocked()
	}
	return nil
}

// writer commits the batches handed to it, and then those that
// accumulated while it did (next).
func (c *committer) writer() {
	defer c.wg.Done()
	for b := range c.flushes {
		for ; b != nil; b = c.next(b) {
			c.insert(b)
		}
	}
}

// insert commits one batch and answers its tickets.
func (c *committer) insert(bt *batch) {
	b := &flowlog.Batch{Events: bt.events, Rejected: bt.rejected}
	rows := len(b.Events) + len(b.Rejected)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	start := time.Now()
	err := c.store.Insert(ctx, b)
	cancel()
	took := time.Since(start)
	c.stats.inserts.Add(1)
	c.m.InsertRows.Observe(float64(rows))
	c.m.InsertDuration.Observe(took.Seconds())
	if err != nil {
		c.stats.failures.Add(1)
		c.m.Inserts.WithLabelValues(metrics.ResultError).Inc()
		c.m.StoreErrors.WithLabelValues(metrics.StoreInsert).Inc()
		c.log.Error("group commit failed; envelopes answered success=false", "rows", rows, "envelopes", len(bt.tickets), "err", err)
	} else {
		c.stats.rows.Add(int64(rows))
		c.m.Inserts.WithLabelValues(metrics.ResultSuccess).Inc()
		c.m.EventsStored.Add(float64(len(b.Events)))
		if c.onCommit != nil && len(b.Events) > 0 {
			c.onCommit(b.Events)
		}
		c.log.Debug("group commit", "rows", rows, "envelopes", len(bt.tickets), "took", took)
	}
	for _, t := range bt.tickets {
		t.err = err
		close(t.done)
	}
	c.pending.Add(-int64(rows))
	clear(bt.events) // drop references to strings for the GC; the buffer is reused
}

// hurry flushes what waits and every later submit at once, so that streams
// answering their last envelopes during shutdown are not held by the interval.
func (c *committer) hurry() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.urgent = true
	c.flushLocked()
}

// close commits whatever was submitted and stops the writer. Safe to repeat.
func (c *committer) close() { c.closeOnce.Do(c.shut) }

func (c *committer) shut() {
	c.mu.Lock()
	c.closed = true
	var last *batch
	if len(c.batch.tickets) > 0 {
		last = c.takeLocked()
	} else if c.timer != nil {
		c.timer()
		c.timer = nil
	}
	c.mu.Unlock()
	if last != nil {
		c.flushes <- last // blocks until a writer takes it
	}
	close(c.flushes)
	c.wg.Wait()
}
