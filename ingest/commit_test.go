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
