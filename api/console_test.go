package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// fakeStore answers the console's views with canned values (see
// server_test.go for the rest of it); it records what was asked in insight.
var insight struct {
	filter flowlog.Filter
	newQ   flowlog.NewPairsQuery
	text   string
	limit  int
	hosts  []flowlog.HostSummary
	pairs  []flowlog.NewPair
	groups []flowlog.GroupPoint
	step   time.Duration
}

func (s *fakeStore) Hosts(ctx context.Context, f flowlog.Filter) ([]flowlog.HostSummary, error) {
	insight.filter = f
	return insight.hosts, s.err
}

func (s *fakeStore) NewPairs(ctx context.Context, q flowlog.NewPairsQuery) ([]flowlog.NewPair, error) {
	insight.newQ = q
	return insight.pairs, s.err
}

func (s *fakeStore) SeriesBy(ctx context.Context, f flowlog.Filter, step time.Duration, by string, limit int) ([]flowlog.GroupPoint, error) {
	insight.filter, insight.text, insight.limit, insight.step = f, by, limit, step
	return insight.groups, s.err
}

func (s *fakeStore) Suggest(ctx context.Context, f flowlog.Filter, text string, limit int) ([]flowlog.Suggestion, error) {
	insight.filter, insight.text, insight.limit = f, text, limit
	return []flowlog.Suggestion{{Field: "participant", Value: "n-7", Label: "db-1", Type: "node", Flows: 3}}, s.err
}

func TestHostsMarksQuietOnesAndRatesEvents(t *testing.T) {
	last := now0.Add(-10 * time.Minute)
	insight.hosts = []flowlog.HostSummary{
		{HostID: "h1", HostName: "web-1", Networks: []string{"mesh1"}, LastReport: now0.Add(-time.Second), Events: 7200, Flows: 4000, Active: 800},
		{HostID: "h2", HostName: "db-1", LastReport: last},
	}
	s := aggServer(&fakeAgg{}, now0)
	rec := serve(t, s, "/api/v1/hosts?from=2026-11-24T11:34:56.789Z")
	var got struct{ Response []hostJSON }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if h := got.Response[0]; h.Quiet || h.EventsPerSecond != 2 || h.Networks[0] != "mesh1" || h.LastReport != "2026-11-24T12:34:55.789Z" {
		t.Errorf("busy host: %+v", h)
	}
	if h := got.Response[1]; !h.Quiet || h.Networks == nil || h.LastReport != "2026-11-24T12:24:56.789Z" {
		t.Errorf("quiet host: %+v", h)
	}
	// Without from: the last 24 hours.
	serve(t, s, "/api/v1/hosts?quiet=1h")
	if !insight.filter.From.Equal(now0.Add(-24 * time.Hour)) {
		t.Errorf("default window from %v", insight.filter.From)
	}
	for q, want := range map[string]string{
		"quiet=soon": `invalid quiet \"soon\"`,
		"port=22":    `unknown parameter \"port\"`,
		"page=2":     "invalid page: hosts have no pages",
	} {
		if rec := serve(t, s, "/api/v1/hosts?"+q); rec.Code != 400 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d %s, want 400 %s", q, rec.Code, rec.Body, want)
		}
	}
}

func TestNewPairsWindowAndBaseline(t *testing.T) {
	insight.pairs = []flowlog.NewPair{{
		Src: flowlog.Participant{Type: flowlog.ParticipantNode, ID: "n-1", Name: "web-1", IP: netip.MustParseAddr("10.0.0.1")},
		Dst: flowlog.Participant{Type: flowlog.ParticipantExternal, IP: netip.MustParseAddr("::ffff:192.0.2.9")}, DstPort: 22, Protocol: 6,
		First: now0.Add(-time.Hour), Last: now0.Add(-time.Minute), Totals: flowlog.Totals{Bytes: 10, Packets: 2, Flows: 3},
	}}
	s := aggServer(&fakeAgg{}, now0)
	rec := serve(t, s, "/api/v1/new?window=1h&baseline=2d&network_id=mesh1&protocol=tcp")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	q := insight.newQ
	if !q.Filter.To.Equal(now0) || !q.Filter.From.Equal(now0.Add(-time.Hour)) || !q.BaselineFrom.Equal(now0.Add(-49*time.Hour)) ||
		q.Filter.NetworkID != "mesh1" || fmt.Sprint(q.Filter.Protocols) != "[6]" || q.Limit != defaultNewLimit {
		t.Errorf("query %+v", q)
	}
	want := `"pairs":[{"src":{"type":"node","id":"n-1","name":"web-1","ip":"10.0.0.1"},"dst":{"type":"external","id":"","name":"","ip":"192.0.2.9"},"dst_port":22,"protocol":6,"first":"2026-11-24T11:34:56.789Z"`
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("body %s\nwant %s", rec.Body, want)
	}
	if rec := serve(t, s, "/api/v1/new?from=2026-11-24T10:00:00Z"); rec.Code != 400 {
		t.Errorf("from on /new: %d", rec.Code)
	}
}

func TestExportStreamsEveryPage(t *testing.T) {
	st := &fakeStore{}
	for i := range 3 {
		e := flowlog.Event{FlowID: fmt.Sprintf("f%d", i), HostID: "h", NetworkID: "mesh1", Protocol: 6, Start: now0.Add(-time.Duration(i) * time.Second),
			End: now0, BytesSent: uint64(i), Src: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1")}, Dst: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.2")}}
		st.flows = append(st.flows, flowlog.Flow{Event: e, Active: i == 2})
	}
	s := New(Deps{Store: st, Log: discardLog()})
	rec := serve(t, s, "/api/v1/flows/export?network_id=mesh1")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") ||
		!strings.Contains(rec.Header().Get("Content-Disposition"), ".csv") {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	recs, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	if err != nil || len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(exportColumns, ",") {
		t.Fatalf("csv %v %q", err, rec.Body)
	}
	col := func(name string) int {
		for i, c := range exportColumns {
			if c == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return 0
	}
	if r := recs[2]; r[col("flow_id")] != "f1" || r[col("start_ts")] != "2026-11-24T12:34:55.789Z" || r[col("bytes_sent")] != "1" || r[col("end_ts")] == "" {
		t.Errorf("row f1: %v", r)
	}
	if r := recs[3]; r[col("end_ts")] != "" || r[col("active")] != "true" {
		t.Errorf("active row: %v", r)
	}
	if st.filter.NetworkID != "mesh1" || st.page.PerPage != exportPage {
		t.Errorf("asked %+v %+v", st.filter, st.page)
	}
	rec = serve(t, s, "/api/v1/flows/export?format=jsonl")
	if lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n"); len(lines) != 3 || !strings.Contains(lines[0], `"flow_id":"f0"`) {
		t.Errorf("jsonl: %q", rec.Body)
	}
	if rec := serve(t, s, "/api/v1/flows/export?format=xml"); rec.Code != 400 || !strings.Contains(rec.Body.String(), `invalid format \"xml\"`) {
		t.Errorf("format=xml: %d %s", rec.Code, rec.Body)
	}
}

func TestSuggest(t *testing.T) {
	s := aggServer(&fakeAgg{}, now0)
	rec := serve(t, s, "/api/v1/suggest?q=db&network_id=mesh1&limit=5")
	if rec.Code != 200 || insight.text != "db" || insight.limit != 5 || insight.filter.NetworkID != "mesh1" ||
		!strings.Contains(rec.Body.String(), `{"field":"participant","value":"n-7","label":"db-1","type":"node","flows":3}`) {
		t.Errorf("%d %s %+v", rec.Code, rec.Body, insight)
	}
}

// The console's endpoints are bounded by the reader's networks like the
// others: another network is refused before the store is asked, and the
// export holds only the reader's flows.
func TestConsoleEndpointsAreScoped(t *testing.T) {
	st := threeNetworks()
	h := guarded(t, st, nil)
	for _, p := range []string{"/api/v1/hosts", "/api/v1/new", "/api/v1/suggest", "/api/v1/flows/export"} {
		st.filters = nil
		if rec := get(t, h, p+"?network_id=mesh2", "one-token"); rec.Code != 403 || len(st.filters) != 0 {
			t.Errorf("%s?network_id=mesh2 as one: %d %s (store asked %d times)", p, rec.Code, rec.Body, len(st.filters))
		}
	}
	rec := get(t, h, "/api/v1/flows/export?format=jsonl", "one-token")
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if rec.Code != 200 || len(lines) != 2 || strings.Count(rec.Body.String(), `"network_id":"mesh1"`) != 2 {
		t.Errorf("export as one (mesh1): %d %q", rec.Code, rec.Body)
	}
}

func TestStackedSeriesGroupsOnTheSeriesGrid(t *testing.T) {
	h := now0.Truncate(time.Hour)
	insight.groups = []flowlog.GroupPoint{
		{Key: "", T: h.Add(-time.Hour), Totals: flowlog.Totals{Bytes: 1000, Flows: 1}},
		{Key: "6", T: h.Add(-time.Hour), Totals: flowlog.Totals{Bytes: 10, Flows: 1}},
		{Key: "17", T: h, Totals: flowlog.Totals{Bytes: 20, Flows: 2}},
		{Key: "6", T: h, Totals: flowlog.Totals{Bytes: 5, Flows: 1}},
	}
	s := aggServer(&fakeAgg{}, now0)
	rec := serve(t, s, "/api/v1/aggregates/stacked?by=protocol&limit=2&step=1h&from=2026-11-24T10:00:00Z&network_id=mesh1")
	var got struct{ Response stackedJSON }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	r := got.Response
	var keys []string
	for _, g := range r.Groups {
		keys = append(keys, fmt.Sprintf("%s=%d/%d", g.Key, g.Bytes, len(g.Points)))
	}
	// Biggest first, the rest last whatever its size; 3 hourly buckets
	// from 10:00 to 12:34.
	if fmt.Sprint(keys) != "[17=20/3 6=15/3 =1000/3]" || r.StepSeconds != 3600 || r.By != "protocol" {
		t.Errorf("groups %v step %d by %s", keys, r.StepSeconds, r.By)
	}
	if p := r.Groups[1].Points; p[1].Bytes != 10 || p[2].Bytes != 5 || p[0].Bytes != 0 {
		t.Errorf("tcp points %+v", p)
	}
	if insight.text != "protocol" || insight.limit != 2 || insight.step != time.Hour || insight.filter.NetworkID != "mesh1" || !insight.filter.To.Equal(now0) {
		t.Errorf("asked %+v", insight)
	}
	if rec := serve(t, s, "/api/v1/aggregates/stacked?by=country"); rec.Code != 400 || !strings.Contains(rec.Body.String(), `invalid by \"country\"`) {
		t.Errorf("by=country: %d %s", rec.Code, rec.Body)
	}
}

// The export may stream longer than --http-write-timeout: it is exempt, as
// the live tail is (its pages move the deadline on). A write timeout that
// has already passed ends a listing, not an export.
func TestExportOutlivesTheWriteTimeout(t *testing.T) {
	st := &fakeStore{flows: []flowlog.Flow{{Event: flowlog.Event{FlowID: "f1", Start: now0}}}}
	h := HTTPLimits{WriteTimeout: time.Nanosecond}.Handler(New(Deps{Store: st, Log: discardLog()}))
	if rec := serve(t, h, "/api/v1/flows/export?format=jsonl"); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"flow_id":"f1"`) {
		t.Errorf("export: %d %q", rec.Code, rec.Body)
	}
	if rec := serve(t, h, "/api/v1/flows"); strings.Contains(rec.Body.String(), "f1") {
		t.Errorf("listing answered past its write timeout: %d %q", rec.Code, rec.Body)
	}
}

// Each host says which agent and wire generation it reports through; a
// host none was recorded for has an empty list, not null.
func TestHostsNameTheirAgents(t *testing.T) {
	insight.hosts = []flowlog.HostSummary{
		{HostID: "h1", HostName: "web-1", LastReport: now0, Agents: []flowlog.AgentSighting{
			{Generation: "v1.5+", Agent: "flowlog-agent/v1.2.3 grpc-go/1.70.0", LastSeen: now0.Add(-time.Minute)},
			{Generation: "v1.4", Agent: "grpc-go/1.64.0", LastSeen: now0.Add(-time.Hour)},
		}},
		{HostID: "h2", HostName: "db-1", LastReport: now0},
	}
	rec := serve(t, aggServer(&fakeAgg{}, now0), "/api/v1/hosts")
	body := rec.Body.String()
	for _, want := range []string{
		`"agents":[{"generation":"v1.5+","agent":"flowlog-agent/v1.2.3 grpc-go/1.70.0","last_seen":"2026-11-24T12:33:56.789Z"},` +
			`{"generation":"v1.4","agent":"grpc-go/1.64.0","last_seen":"2026-11-24T11:34:56.789Z"}]`,
		`"host_id":"h2","host_name":"db-1","networks":[],"last_report":"2026-11-24T12:34:56.789Z","quiet":false,"events":0,"events_per_second":0,"flows":0,"active":0,"bytes":0,"rejected":0,"agents":[]`,
	} {
		if rec.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("%d %s\nwant %s", rec.Code, body, want)
		}
	}
}
