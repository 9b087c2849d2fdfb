package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Offset pages (Netmaker's paging) read only the day partitions holding
// the page, found by counting each day's flows first: every page, those
// straddling midnight and past the last flow included, holds the rows one
// query over every day gives, under filters, states and the one count per
// connection.
func TestOffsetPagesEqualOneQuery(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{MaxOffset: -1})
	parts := []flowlog.Participant{pN1, pN2, pU1, pE, pX}
	var evs []flowlog.Event
	for i := 0; i < 240; i++ {
		// Four days, uneven: day 2 has few flows, so pages span it.
		start := day0.Add(-24*time.Hour + time.Duration(i*i)*23*time.Second)
		f := flowSpec{id: fmt.Sprint("p", i), host: fmt.Sprint("h", i%3), net: fmt.Sprint("net", i%2), src: parts[i%5], dst: parts[(i/5)%5],
			proto: 6, sp: uint16(20000 + i), dp: 443, dir: flowlog.Direction(1 + i%2), start: start, active: i%9 == 0,
			bs: uint64(i), br: uint64(2 * i), ps: 1, pr: 1}
		st, de := f.events()
		evs = append(evs, st)
		if !f.active {
			evs = append(evs, de)
		}
		if i%4 == 0 { // the other end's observation: one of the two is shadowed
			f.id, f.host, f.dir, f.start = fmt.Sprint("q", i), "hq", 3-f.dir, f.start.Add(time.Second)
			st, de := f.events()
			evs = append(evs, st, de)
		}
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	filters := []flowlog.Filter{
		{},
		{Observations: flowlog.ObserveAll},
		{NetworkID: "net1"},
		{State: flowlog.StateActive},
		{From: day0.Add(-12 * time.Hour), To: day0.Add(30 * time.Hour)},
		{HostID: "hq"},
	}
	for fi, f := range filters {
		for _, sort := range []flowlog.Sort{{}, {Asc: true}} {
			for _, per := range []int{7, 50} {
				for page := 2; ; page++ {
					p := flowlog.Page{Number: page, PerPage: per, Sort: sort}
					got, err := s.Flows(ctx, f, p)
					if err != nil {
						t.Fatal(err)
					}
					want, err := store.FlowsOneQuery(ctx, s, f, p)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(ids(got), ids(want)) || !reflect.DeepEqual(got, want) {
						t.Fatalf("filter %d, %+v, page %d of %d:\n got %s\nwant %s", fi, sort, page, per, ids(got), ids(want))
					}
					if len(want) == 0 {
						break
					}
				}
			}
			// Cursor pages (hour windows from the cursor on) walk the
			// same listing.
			all, err := store.FlowsOneQuery(ctx, s, f, flowlog.Page{Number: 1, PerPage: 10000, Sort: sort})
			if err != nil {
				t.Fatal(err)
			}
			var walked []flowlog.Flow
			for p := (flowlog.Page{PerPage: 9, Sort: sort}); ; {
				got, err := s.Flows(ctx, f, p)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 {
					break
				}
				walked = append(walked, got...)
				p.After = sort.CursorOf(&got[len(got)-1])
			}
			if !reflect.DeepEqual(ids(walked), ids(all)) {
				t.Fatalf("filter %d, %+v: cursor pages\n got %s\nwant %s", fi, sort, ids(walked), ids(all))
			}
		}
	}
}
