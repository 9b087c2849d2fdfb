package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// Filter.Networks (an API token's scope) bounds every read: flows by page
// and by cursor, and each aggregate, from the raw flows and from the
// rollups. A scope of one network answers exactly what network_id of that
// network answers; a scope holding every network answers what no scope
// answers; a scope holding none of the stored networks answers nothing.
func TestNetworksScopeBoundsEveryRead(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	store.NoClockSlack(s)
	loadKnown(t, s) // net1: f1 f2 f5 f6; net2: f3 f4

	// answers runs every read for f; each result as a comparable value.
	answers := func(f flowlog.Filter) []any {
		t.Helper()
		var out []any
		page, err := s.Flows(ctx, f, flowlog.Page{PerPage: 2})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ids(page))
		if len(page) == 2 {
			next, err := s.Flows(ctx, f, flowlog.Page{PerPage: 100, After: store.CursorOf(&page[1])})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ids(next))
		} else {
			out = append(out, "")
		}
		for _, q := range []flowlog.TopQuery{{Filter: f}, {Filter: f, ByIP: true}, {Filter: f, Side: flowlog.SideDst, Metric: flowlog.MetricFlows}} {
			top, err := s.Top(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, top)
		}
		m, err := s.Matrix(ctx, f, 0)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Active(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m, a)
		for _, step := range []time.Duration{time.Hour, time.Minute, 10 * time.Second} {
			sf := f
			sf.From, sf.To = day0, day0.Add(48*time.Hour)
			p, err := s.Series(ctx, sf, step)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	same := func(label string, got, want []any) {
		t.Helper()
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("%s: result %d:\n got %v\nwant %v", label, i, got[i], want[i])
			}
		}
	}
	empty := func(label string, got []any) {
		t.Helper()
		for i, g := range got {
			v := reflect.ValueOf(g)
			switch {
			case v.Kind() == reflect.String && g != "",
				v.Kind() == reflect.Slice && v.Len() != 0,
				v.Kind() == reflect.Uint64 && v.Uint() != 0:
				t.Errorf("%s: result %d not empty: %v", label, i, g)
			}
		}
	}

	for _, mode := range []string{"raw", "rollup"} {
		t.Run(mode, func(t *testing.T) {
			store.ForceRaw(s, mode == "raw")
			if mode == "rollup" {
				rollupOn(t, s)
			}
			all := answers(flowlog.Filter{})
			if all[0] != "f6 f4" || all[1] != "f3 f5 f2 f1" {
				t.Fatalf("unscoped flows: %v %v", all[0], all[1])
			}
			net2 := answers(flowlog.Filter{NetworkID: "net2"})
			same("scope [net2]", answers(flowlog.Filter{Networks: []string{"net2"}}), net2)
			same("scope [net2, elsewhere]", answers(flowlog.Filter{Networks: []string{"elsewhere", "net2"}}), net2)
			same("scope [net2] and network_id=net2", answers(flowlog.Filter{NetworkID: "net2", Networks: []string{"net2"}}), net2)
			same("scope [net1, net2]", answers(flowlog.Filter{Networks: []string{"net1", "net2"}}), all)
			empty("scope [net2], network_id=net1", answers(flowlog.Filter{NetworkID: "net1", Networks: []string{"net2"}}))
			empty("scope [net9]", answers(flowlog.Filter{Networks: []string{"net9"}}))
			empty("empty scope", answers(flowlog.Filter{Networks: []string{}}))
			// A network name is a value, never SQL.
			empty("scope with a quote", answers(flowlog.Filter{Networks: []string{"net1' OR '1'='1"}}))
			// Scoped, the other filters still apply.
			same("scope [net1], port 443", answers(flowlog.Filter{Networks: []string{"net1"}, Port: 443}),
				answers(flowlog.Filter{NetworkID: "net1", Port: 443}))
		})
	}
}
