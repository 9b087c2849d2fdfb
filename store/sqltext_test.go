package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// The SQL the store sends for a set of filters, as text, engine-free (the
// recorder engine runs nothing): a change to a filter's SQL shows up in
// review as a diff of testdata/query-sql.txt. Whether the engine accepts
// and answers it is for the engine tests (match_agree_test.go and others).
func TestQuerySQLText(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	s, err := store.OpenEngine(context.Background(), &recorder{}, store.Options{Database: "flowlog", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	day := now.Add(-24 * time.Hour)
	filters := []struct {
		name string
		f    flowlog.Filter
	}{
		{"everything", flowlog.Filter{}},
		{"network, range, protocols", flowlog.Filter{NetworkID: "mesh1", From: day, To: now, Protocols: []uint8{6, 17}}},
		{"scope of a reader", flowlog.Filter{Networks: []string{"a", "b"}}},
		{"src/dst types and entities", flowlog.Filter{SrcTypes: []flowlog.ParticipantType{flowlog.ParticipantUser}, DstEntityID: "n-7"}},
		{"user", flowlog.Filter{Username: "alice"}},
		{"active", flowlog.Filter{State: flowlog.StateActive}},
		{"stale", flowlog.Filter{State: flowlog.StateStale}},
		{"ip prefix, port, direction", flowlog.Filter{IP: netip.MustParsePrefix("10.0.0.0/8"), Port: 443, Direction: flowlog.DirEgress}},
		{"every observation", flowlog.Filter{Observations: flowlog.ObserveAll}},
		{"source and destination prefixes", flowlog.Filter{SrcIP: netip.MustParsePrefix("203.0.113.0/24"), DstIP: netip.MustParsePrefix("2001:db8:1::/48")}},
	}
	var b strings.Builder
	for _, f := range filters {
		fmt.Fprintf(&b, "-- %s: flows, offset page 3 of 50\n%s;\n\n", f.name, strings.TrimSpace(store.FlowsSQL(s, f.f, flowlog.Page{Number: 3, PerPage: 50})))
		q, err := store.SeriesSQL(s, f.f, time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		fmt.Fprintf(&b, "-- %s: time series, 1h\n%s;\n\n", f.name, strings.TrimSpace(q))
	}
	for _, o := range []flowlog.Sort{{Key: flowlog.SortBytes}, {Key: flowlog.SortDuration, Asc: true}, {Asc: true}} {
		after := o.CursorOf(&flowlog.Flow{Event: flowlog.Event{Type: flowlog.EventDestroy, FlowID: "f-9", Start: day, End: day.Add(time.Second), BytesSent: 7}})
		fmt.Fprintf(&b, "-- flows by %s, after a cursor\n%s;\n\n", o, strings.TrimSpace(store.FlowsSQL(s, flowlog.Filter{}, flowlog.Page{PerPage: 50, Sort: o, After: after})))
	}
	golden(t, "query-sql.txt", b.String())
}
