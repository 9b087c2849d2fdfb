package api

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// pagingStore lists its flows as a store does: in the page's order, after
// its cursor.
type pagingStore struct {
	fakeStore
	all []flowlog.Flow
}

func (s *pagingStore) Flows(ctx context.Context, f flowlog.Filter, p flowlog.Page) ([]flowlog.Flow, error) {
	s.fakeStore.Flows(ctx, f, p)
	o := p.Sort
	less := func(x, y *flowlog.Flow) int {
		c := cmp.Or(cmp.Compare(o.SortValue(x), o.SortValue(y)), x.Start.Compare(y.Start), cmp.Compare(x.FlowID, y.FlowID))
		if !o.Asc {
			c = -c
		}
		return c
	}
	l := slices.Clone(s.all)
	slices.SortFunc(l, func(x, y flowlog.Flow) int { return less(&x, &y) })
	if a := p.After; a != nil {
		l = slices.DeleteFunc(l, func(x flowlog.Flow) bool {
			return cmp.Or(cmp.Compare(o.SortValue(&x), a.Value), x.Start.Compare(a.Start), cmp.Compare(x.FlowID, a.FlowID))*map[bool]int{true: 1, false: -1}[o.Asc] <= 0
		})
	}
	return l[:min(len(l), p.PerPage)], nil
}

func sortedFlows(n int) []flowlog.Flow {
	var out []flowlog.Flow
	for i := range n {
		e := flowlog.Event{Type: flowlog.EventDestroy, FlowID: fmt.Sprintf("f%04d", i), HostID: "h", NetworkID: "mesh1", Protocol: 6,
			Start: now0.Add(-time.Duration(i) * time.Second), End: now0, BytesSent: uint64(i % 7 * 100),
			Src: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1")}, Dst: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.2")}}
		out = append(out, flowlog.Flow{Event: e})
	}
	return out
}

// sort and order reach the store; Next continues the same order, and a
// cursor of another order is refused, not read as this one's.
func TestFlowsSortAndItsCursor(t *testing.T) {
	st := &pagingStore{all: sortedFlows(10)}
	s := New(Deps{Store: st, Log: discardLog()})
	rec := serve(t, s, "/api/v1/flows?sort=bytes&order=asc&per_page=4")
	if rec.Code != 200 || st.page.Sort != (flowlog.Sort{Key: flowlog.SortBytes, Asc: true}) {
		t.Fatalf("%d %s, page %+v", rec.Code, rec.Body, st.page)
	}
	next, _ := decode(t, rec.Body.Bytes())["Next"].(string)
	c, err := DecodeCursor(next)
	// bytes ascending: 0 (f0000, f0007), 100 (f0001, f0008): the last is f0008.
	if err != nil || c.Sort != st.page.Sort || c.Value != 100 || c.FlowID != "f0001" {
		t.Fatalf("Next %q: %+v %v, want the cursor of f0001 (100 bytes, after f0008's older start)", next, c, err)
	}
	rec = serve(t, s, "/api/v1/flows?sort=bytes&order=asc&per_page=4&cursor="+next)
	var got []string
	for _, r := range decode(t, rec.Body.Bytes())["Response"].([]any) {
		got = append(got, r.(map[string]any)["flow_id"].(string))
	}
	if strings.Join(got, " ") != "f0009 f0002 f0003 f0004" {
		t.Errorf("second page %v, want f0009 f0002 f0003 f0004 (200, 200, 300, 400 bytes)", got)
	}
	for q, msg := range map[string]string{
		"sort=packets":                      `invalid sort \"packets\": must be one of start, bytes, duration`,
		"order=up":                          `invalid order \"up\": must be one of asc, desc`,
		"sort=duration&cursor=" + next:      `invalid cursor: it continues a listing sorted by bytes asc, this request sorts by duration desc`,
		"cursor=" + next:                    `invalid cursor: it continues a listing sorted by bytes asc, this request sorts by start desc`,
		"sort=bytes&cursor=" + b64("x:1:2"): `invalid cursor`,
	} {
		if rec := serve(t, s, "/api/v1/flows?"+q); rec.Code != 400 || !strings.Contains(rec.Body.String(), msg) {
			t.Errorf("%s: %d %s, want 400 %s", q, rec.Code, rec.Body, msg)
		}
	}
	// The default order keeps the cursors it always had.
	if c := EncodeCursor(*flowlog.Sort{}.CursorOf(&st.all[0])); !strings.HasPrefix(c, "MTc") {
		t.Errorf("default cursor %q changed shape", c)
	}
}

// The export streams every flow in the order asked, across its pages.
func TestExportFollowsTheSort(t *testing.T) {
	st := &pagingStore{all: sortedFlows(2*exportPage + 5)}
	rec := serve(t, New(Deps{Store: st, Log: discardLog()}), "/api/v1/flows/export?sort=bytes")
	recs, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	if rec.Code != 200 || err != nil || len(recs) != len(st.all)+1 {
		t.Fatalf("%d %v: %d records", rec.Code, err, len(recs))
	}
	col := slices.Index(exportColumns, "bytes_sent")
	prev := uint64(1 << 63)
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		b, _ := strconv.ParseUint(r[col], 10, 64)
		if b > prev {
			t.Fatalf("row %s: %d bytes after %d: not by bytes, descending", r[0], b, prev)
		}
		prev, seen[r[0]] = b, true
	}
	if len(seen) != len(st.all) || st.flowsCalls != 3 || st.page.Sort.Key != flowlog.SortBytes {
		t.Errorf("%d distinct flows in %d store reads (last page %+v), want %d in 3", len(seen), st.flowsCalls, st.page, len(st.all))
	}
	if rec := serve(t, New(Deps{Store: st, Log: discardLog()}), "/api/v1/flows/export?sort=size"); rec.Code != 400 {
		t.Errorf("bad sort: %d", rec.Code)
	}
}
