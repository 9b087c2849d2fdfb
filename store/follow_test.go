package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/store"
)

func eventIDs(evs []flowlog.Event) (out []string) {
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s/%d", e.FlowID, e.Type))
	}
	return out
}

// A follower sees every collector's commits once, in insertion order: rows
// inserted through another store, retried twins published once, a row that
// became visible late (inserted_at before rows already published) still
// published.
func TestFollowSeesEveryCollectorsCommitsOnce(t *testing.T) {
	ctx := context.Background()
	a, b := twoCollectors(t)
	poll := store.Poller(a, 5*time.Second)
	if evs, err := poll(ctx); err != nil || len(evs) != 0 {
		t.Fatalf("first poll on an empty table: %v %v", evs, err)
	}
	s1, d1 := ev("f1", flowlog.EventStart, t0, 1), ev("f1", flowlog.EventDestroy, t0, 2)
	s2 := ev("f2", flowlog.EventStart, t0, 1)
	if err := a.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{s1}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{d1, s2}}); err != nil {
		t.Fatal(err)
	}
	evs, err := poll(ctx)
	if got := eventIDs(evs); err != nil || len(got) != 3 || got[0] != "f1/1" {
		t.Fatalf("poll after inserts by a and b: %v %v, want f1/1 (START) then f1/2 (DESTROY), f2/1", got, err)
	}
	// b retries its batch (an agent's resend): nothing new to publish.
	if err := b.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{d1, s2}}); err != nil {
		t.Fatal(err)
	}
	if evs, err := poll(ctx); err != nil || len(evs) != 0 {
		t.Fatalf("poll after a retry: %v %v, want nothing", eventIDs(evs), err)
	}
	// A row stamped before the last one published but visible only now
	// (a slow insert, a lagging replica) is published when it appears.
	if err := a.Exec(ctx, "INSERT INTO "+a.Database()+".flows SELECT * REPLACE ('late' AS flow_id, inserted_at - toIntervalSecond(2) AS inserted_at) FROM (SELECT * FROM "+
		a.Database()+".flows WHERE flow_id = 'f2' LIMIT 1)"); err != nil {
		t.Fatal(err)
	}
	if evs, err := poll(ctx); err != nil || len(evs) != 1 || evs[0].FlowID != "late" {
		t.Fatalf("poll after a late row: %v %v, want it", eventIDs(evs), err)
	}
}

// Follow polls and publishes: rows inserted shortly before it started
// (its first poll reads Overlap back), then new ones, a retry once.
func TestFollowPublishes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := open(t, store.Options{})
	f1, f2 := ev("f1", flowlog.EventStart, t0, 1), ev("f2", flowlog.EventStart, t0, 1)
	if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{f1}}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []flowlog.Event
	published := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return eventIDs(got)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Follow(ctx, store.FollowOptions{Every: 20 * time.Millisecond}, func(evs []flowlog.Event) {
			mu.Lock()
			got = append(got, evs...)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	testutil.WaitFor(t, 0, "the follower to publish f1", func() bool { return len(published()) == 1 })
	if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{f1, f2}}); err != nil { // f1 again: a retry
		t.Fatal(err)
	}
	testutil.WaitFor(t, 0, "the follower to publish f2", func() bool { return len(published()) >= 2 })
	if p := published(); len(p) != 2 || p[0] != "f1/1" || p[1] != "f2/1" {
		t.Fatalf("published %v, want f1 once, then f2", p)
	}
}
