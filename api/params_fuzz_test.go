package api

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
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
