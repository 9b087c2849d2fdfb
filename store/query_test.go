package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Cursor paging lists every flow exactly once, in order, while flows are
// inserted and ended between page reads.
func TestCursorPagingUnderInserts(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	begin := time.Now().UTC().Add(-50 * time.Hour).Truncate(time.Second)
	const n = 300
	var starts, destroys []flowlog.Event
	orig := map[string]bool{}
	for i := 0; i < n; i++ {
		// Three flows share each start: the flow id breaks the tie. The
		// range spans three day partitions.
		st := ev(fmt.Sprintf("c%03d", i), flowlog.EventStart, begin.Add(time.Duration(i/3)*30*time.Minute), 1)
		starts = append(starts, st)
		orig[st.FlowID] = true
		if i%4 != 0 { // a quarter stay active for now
			de := ev(st.FlowID, flowlog.EventDestroy, st.Start, 2)
			destroys = append(destroys, de)
		}
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: starts}); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: destroys[:len(destroys)/2]}); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	var last *flowlog.Flow
	page := flowlog.Page{PerPage: 7}
	for round := 0; ; round++ {
		flows, err := s.Flows(ctx, flowlog.Filter{}, page)
		if err != nil {
			t.Fatal(err)
		}
		for i := range flows {
			f := &flows[i]
			seen[f.FlowID]++
			if last != nil && !(f.Start.Before(last.Start) || f.Start.Equal(last.Start) && f.FlowID < last.FlowID) {
				t.Fatalf("out of order: %s@%s after %s@%s", f.FlowID, f.Start, last.FlowID, last.Start)
			}
			last = f
		}
		if len(flows) < page.PerPage {
			break
		}
		page.After = store.CursorOf(&flows[len(flows)-1])

		// Between pages: newer flows arrive, the listed flows and the not
		// yet listed ones end (their DESTROYs are new rows of the same
		// flows), and a batch is retried.
		var b []flowlog.Event
		b = append(b, ev(fmt.Sprint("new", round), flowlog.EventStart, time.Now().UTC(), 1))
		b = append(b, ev(fmt.Sprint("newer", round), flowlog.EventStart, begin.Add(60*time.Hour), 1))
		for _, f := range flows {
			b = append(b, ev(f.FlowID, flowlog.EventDestroy, f.Start, 2))
		}
		if round < len(destroys)/2 {
			b = append(b, destroys[len(destroys)/2+round])
		}
		if err := s.Insert(ctx, &flowlog.Batch{Events: b}); err != nil {
			t.Fatal(err)
		}
		if round%5 == 0 {
			if err := s.Insert(ctx, &flowlog.Batch{Events: starts[:20]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for id := range orig {
		if seen[id] != 1 {
			t.Errorf("flow %s listed %d times", id, seen[id])
		}
	}
	for id, c := range seen {
		if !orig[id] {
			t.Errorf("flow %s, inserted after paging began with a newer start, listed %d times", id, c)
		}
	}
}

// Without concurrent inserts, cursor pages are the offset pages.
func TestCursorPagesEqualOffsetPages(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	loadKnown(t, s)
	f := flowlog.Filter{Direction: flowlog.DirEgress}
	var after *flowlog.Cursor
	for n := 1; n <= 3; n++ {
		byNum, err := s.Flows(ctx, f, flowlog.Page{Number: n, PerPage: 2})
		if err != nil {
			t.Fatal(err)
		}
		cp := flowlog.Page{PerPage: 2}
		if after != nil {
			cp.After, cp.Number = after, 99 // Number is ignored with a cursor
		}
		byCursor, err := s.Flows(ctx, f, cp)
		if err != nil {
			t.Fatal(err)
		}
		if ids(byNum) != ids(byCursor) {
			t.Errorf("page %d: offset %q, cursor %q", n, ids(byNum), ids(byCursor))
		}
		if len(byCursor) > 0 {
			after = store.CursorOf(&byCursor[len(byCursor)-1])
		}
	}
}

// A cursor page reads only the partitions at and before the cursor's day.
func TestCursorPrunesPartitions(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	var evs []flowlog.Event
	for d := 0; d < 3; d++ {
		evs = append(evs, ev(fmt.Sprint("d", d), flowlog.EventStart, t0.Add(time.Duration(d)*24*time.Hour), 1))
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	p := flowlog.Page{PerPage: 10, After: &flowlog.Cursor{Start: t0.Add(24 * time.Hour), FlowID: "d1"}}
	var plan []struct {
		Explain string `json:"explain"`
	}
	if err := s.QueryRows(ctx, "EXPLAIN indexes = 1 "+store.FlowsSQL(s, flowlog.Filter{}, p), &plan); err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, l := range plan {
		text = append(text, strings.TrimSpace(l.Explain))
	}
	if got := strings.Join(text, "\n"); !strings.Contains(got, "Parts: 2/2") || strings.Contains(got, "Parts: 3/3") {
		t.Fatalf("cursor did not prune the newer partition:\n%s", got)
	}
	flows, err := s.Flows(ctx, flowlog.Filter{}, p)
	if err != nil || ids(flows) != "d0" {
		t.Fatalf("after d1: %q %v", ids(flows), err)
	}
}
