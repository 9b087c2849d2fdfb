package api

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// FuzzParseFlowsQuery: any query string is either accepted into a filter
// within the documented bounds, or refused with a message naming a
// parameter. It never panics.
func FuzzParseFlowsQuery(f *testing.F) {
	for _, s := range []string{
		"network_id=n&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&protocol=tcp,17&src_type=node&page=2&per_page=50",
		"username=alice&src_type=user", "per_page=1001", "page=0", "state=active", "netwrok_id=x", "protocol=999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		filter, page, err := ParseFlowsQuery(q)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			for name := range q {
				// Named as is, or quoted (%q escapes control characters).
				if strings.Contains(err.Error(), name) || strings.Contains(err.Error(), strconv.Quote(name)) {
					return
				}
			}
			if !strings.Contains(err.Error(), "invalid") && !strings.Contains(err.Error(), "must") && !strings.Contains(err.Error(), "cannot") {
				t.Fatalf("error names no parameter: %v (query %q)", err, raw)
			}
			return
		}
		if page.PerPage < 1 || page.PerPage > 1000 || page.Number < 1 {
			t.Fatalf("accepted page %+v", page)
		}
		if !filter.From.IsZero() && !filter.To.IsZero() && !filter.From.Before(filter.To) {
			t.Fatalf("accepted from >= to: %+v", filter)
		}
	})
}

// FuzzSeriesRange: any from, to and step of /aggregates/timeseries is
// either refused with a 400's message or gives a dense grid of at most
// maxPoints buckets that covers [from, to) exactly from its first bucket,
// and laying points on it never panics (a range of 10,000 years included:
// no time.Duration arithmetic).
func FuzzSeriesRange(f *testing.F) {
	for _, s := range [][3]string{
		{"0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", ""},
		{"0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "365d"},
		{"1700-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "365d"},
		{"2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "10s"},
		{"", "0001-01-01T00:00:00.5Z", ""},
		{"2026-01-01T00:00:00+14:00", "", "1h"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, from, to, step string) {
		q := url.Values{}
		for k, v := range map[string]string{"from": from, "to": to, "step": step} {
			if v != "" {
				q.Set(k, v)
			}
		}
		sq, err := parseSeriesQuery(q, now)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid") && !strings.Contains(err.Error(), "unknown") {
				t.Fatalf("error names no parameter: %v", err)
			}
			return
		}
		s := int64(sq.step / time.Second)
		if s < 1 || sq.n < 1 || sq.n > maxPoints {
			t.Fatalf("%v: step %s, %d points", q, sq.step, sq.n)
		}
		first := sq.first.Unix()
		if first > sq.filter.From.Unix() || first+s <= sq.filter.From.Unix() {
			t.Fatalf("%v: first bucket %s does not hold from %s", q, sq.first, sq.filter.From)
		}
		toCeil := sq.filter.To.Unix() // to is exclusive: a fraction of a second needs its bucket
		if sq.filter.To.Nanosecond() > 0 {
			toCeil++
		}
		if end := first + int64(sq.n)*s; end < toCeil || end-s >= toCeil {
			t.Fatalf("%v: %d buckets of %s from %s end at %d, to is %s", q, sq.n, sq.step, sq.first, end, sq.filter.To)
		}
		pts := sq.fill([]flowlog.Point{{T: sq.filter.From, Totals: flowlog.Totals{Flows: 1}},
			{T: sq.filter.To.Add(-time.Millisecond), Totals: flowlog.Totals{Flows: 1}}})
		var n uint64
		for _, p := range pts {
			n += p.Flows
		}
		if len(pts) != sq.n || n != 2 {
			t.Fatalf("%v: fill gave %d points holding %d flows", q, len(pts), n)
		}
	})
}
