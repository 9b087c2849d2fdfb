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

// Rejected events are listed newest first, a retry's twins once, filtered
// by host, reason class and an inclusive time range, and paged.
func TestRejectedListingFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	var batch []flowlog.Rejected
	for i := range 6 {
		host, class := "h1", "bad_ip"
		if i%2 == 1 {
			host, class = "h2", "missing_field"
		}
		batch = append(batch, flowlog.Rejected{
			Received: t0.Add(time.Duration(i) * time.Minute), Peer: "10.0.0.1:5", HostID: host, Index: i,
			Reason: fmt.Sprintf("reason %d", i), Class: class, Event: fmt.Sprintf(`{"i":%d}`, i),
		})
	}
	for range 2 { // the agent retried the envelope
		if err := s.Insert(ctx, &flowlog.Batch{Rejected: batch}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(f flowlog.RejectedFilter, p flowlog.Page) string {
		t.Helper()
		rs, err := s.Rejected(ctx, f, p)
		if err != nil {
			t.Fatal(err)
		}
		var idx []string
		for _, r := range rs {
			idx = append(idx, fmt.Sprint(r.Index))
		}
		return strings.Join(idx, " ")
	}
	for _, tc := range []struct {
		name string
		f    flowlog.RejectedFilter
		p    flowlog.Page
		want string
	}{
		{"all, newest first, once", flowlog.RejectedFilter{}, flowlog.Page{}, "5 4 3 2 1 0"},
		{"host", flowlog.RejectedFilter{HostID: "h2"}, flowlog.Page{}, "5 3 1"},
		{"class", flowlog.RejectedFilter{Class: "bad_ip"}, flowlog.Page{}, "4 2 0"},
		{"time range, both ends inclusive", flowlog.RejectedFilter{From: t0.Add(time.Minute), To: t0.Add(3 * time.Minute)}, flowlog.Page{}, "3 2 1"},
		{"page 2 of 2", flowlog.RejectedFilter{}, flowlog.Page{Number: 2, PerPage: 4}, "1 0"},
	} {
		if got := list(tc.f, tc.p); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	rs, err := s.Rejected(ctx, flowlog.RejectedFilter{HostID: "h1"}, flowlog.Page{PerPage: 1})
	if err != nil || len(rs) != 1 {
		t.Fatal(rs, err)
	}
	want := flowlog.Rejected{Received: t0.Add(4 * time.Minute), Peer: "10.0.0.1:5", HostID: "h1", Index: 4, Reason: "reason 4", Class: "bad_ip", Event: `{"i":4}`}
	if rs[0] != want {
		t.Errorf("got %+v, want %+v", rs[0], want)
	}
}
