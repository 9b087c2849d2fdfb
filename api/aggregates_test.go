package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// fakeAgg records what the API asked for and answers with canned values.
type fakeAgg struct {
	talkers []flowlog.Talker
	edges   []flowlog.Edge
	points  []flowlog.Point
	active  uint64
	err     error

	calls  []string
	top    flowlog.TopQuery
	filter flowlog.Filter
	limit  int
	step   time.Duration
}

func (a *fakeAgg) Top(ctx context.Context, q flowlog.TopQuery) ([]flowlog.Talker, error) {
	a.calls = append(a.calls, "Top")
	a.top = q
	return a.talkers, a.err
}

func (a *fakeAgg) Matrix(ctx context.Context, f flowlog.Filter, limit int) ([]flowlog.Edge, error) {
	a.calls = append(a.calls, "Matrix")
	a.filter, a.limit = f, limit
	return a.edges, a.err
}

func (a *fakeAgg) Series(ctx context.Context, f flowlog.Filter, step time.Duration) ([]flowlog.Point, error) {
	a.calls = append(a.calls, "Series")
	a.filter, a.step = f, step
	return a.points, a.err
}

func (a *fakeAgg) Active(ctx context.Context, f flowlog.Filter) (uint64, error) {
	a.calls = append(a.calls, "Active")
	a.filter = f
	return a.active, a.err
}

// aggServer is a server over agg whose clock says now.
func aggServer(agg flowlog.Aggregator, now time.Time) *Server {
	s := New(Deps{Store: &fakeStore{}, Agg: agg, Log: discardLog()})
	s.now = func() time.Time { return now }
	return s
}

var now0 = time.Date(2026, 11, 24, 12, 34, 56, 789_000_000, time.UTC)

func wantBody(t *testing.T, rec interface {
	Result() *http.Response
}, code int, body string) {
	t.Helper()
	res := rec.Result()
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if res.StatusCode != code || b.String() != body+"\n" {
		t.Errorf("got %d\n%s\nwant %d\n%s", res.StatusCode, b.String(), code, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestTopByParticipant(t *testing.T) {
	agg := &fakeAgg{talkers: []flowlog.Talker{
		{Participant: flowlog.Participant{Type: flowlog.ParticipantNode, ID: "n-7", Name: "db-1"},
			Totals: flowlog.Totals{Bytes: 1 << 62, Packets: 20, Flows: 3}},
		{Participant: flowlog.Participant{Type: flowlog.ParticipantUser, ID: "alice", Name: "Alice",
			IP: netip.MustParseAddr("10.0.0.1")}, // an IP the store left set is not shown
			Totals: flowlog.Totals{Bytes: 5, Packets: 1, Flows: 1}},
	}}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/top?network_id=mesh1&metric=packets&side=dst&limit=2&port=443")
	wantBody(t, rec, 200, `{"Code":200,"Message":"top talkers retrieved successfully","Response":[`+
		`{"type":"node","id":"n-7","name":"db-1","ip":"","bytes":4611686018427387904,"packets":20,"flows":3},`+
		`{"type":"user","id":"alice","name":"Alice","ip":"","bytes":5,"packets":1,"flows":1}]}`)
	want := flowlog.TopQuery{Filter: flowlog.Filter{NetworkID: "mesh1", Port: 443},
		ByIP: false, Metric: flowlog.MetricPackets, Side: flowlog.SideDst, Limit: 2}
	if !reflect.DeepEqual(agg.top, want) {
		t.Errorf("query\n got %+v\nwant %+v", agg.top, want)
	}
}

func TestTopByIP(t *testing.T) {
	agg := &fakeAgg{talkers: []flowlog.Talker{
		{Participant: flowlog.Participant{IP: netip.MustParseAddr("::ffff:10.10.0.7"), Type: flowlog.ParticipantNode, ID: "n-7"},
			Totals: flowlog.Totals{Bytes: 10, Packets: 2, Flows: 1}},
		{Participant: flowlog.Participant{IP: netip.MustParseAddr("fd00::8")},
			Totals: flowlog.Totals{Bytes: 9, Packets: 1, Flows: 4}},
	}}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/top?by=ip&metric=flows&side=src")
	wantBody(t, rec, 200, `{"Code":200,"Message":"top talkers retrieved successfully","Response":[`+
		`{"type":"","id":"","name":"","ip":"10.10.0.7","bytes":10,"packets":2,"flows":1},`+
		`{"type":"","id":"","name":"","ip":"fd00::8","bytes":9,"packets":1,"flows":4}]}`)
	want := flowlog.TopQuery{ByIP: true, Metric: flowlog.MetricFlows, Side: flowlog.SideSrc, Limit: 10}
	if !reflect.DeepEqual(agg.top, want) {
		t.Errorf("query\n got %+v\nwant %+v", agg.top, want)
	}
}

func TestTopDefaultsAndEmpty(t *testing.T) {
	agg := &fakeAgg{}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/top")
	wantBody(t, rec, 200, `{"Code":200,"Message":"top talkers retrieved successfully","Response":[]}`)
	want := flowlog.TopQuery{ByIP: false, Metric: flowlog.MetricBytes, Side: flowlog.SideAny, Limit: 10}
	if !reflect.DeepEqual(agg.top, want) {
		t.Errorf("query\n got %+v\nwant %+v", agg.top, want)
	}
	for q, want := range map[string]flowlog.TopQuery{
		"by=participant&metric=bytes&side=any&limit=1": {Limit: 1},
		"limit=1000&side=src":                          {Limit: 1000, Side: flowlog.SideSrc},
	} {
		agg := &fakeAgg{}
		if rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/top?"+q); rec.Code != 200 {
			t.Errorf("%s: %d %s", q, rec.Code, rec.Body)
		}
		if !reflect.DeepEqual(agg.top, want) {
			t.Errorf("%s: query\n got %+v\nwant %+v", q, agg.top, want)
		}
	}
}

func TestMatrix(t *testing.T) {
	agg := &fakeAgg{edges: []flowlog.Edge{
		{Src: flowlog.Participant{Type: flowlog.ParticipantUser, ID: "alice", Name: "Alice"},
			Dst:    flowlog.Participant{Type: flowlog.ParticipantNode, ID: "n-7", Name: "db-1"},
			Totals: flowlog.Totals{Bytes: 100, Packets: 10, Flows: 2}},
		{Src: flowlog.Participant{Type: flowlog.ParticipantNode, ID: "n-7", Name: "db-1"},
			Dst:    flowlog.Participant{Type: flowlog.ParticipantExternal},
			Totals: flowlog.Totals{Bytes: 1, Packets: 1, Flows: 1}},
	}}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/matrix?limit=7&protocol=tcp&direction=egress")
	wantBody(t, rec, 200, `{"Code":200,"Message":"traffic matrix retrieved successfully","Response":[`+
		`{"src":{"type":"user","id":"alice","name":"Alice"},"dst":{"type":"node","id":"n-7","name":"db-1"},"bytes":100,"packets":10,"flows":2},`+
		`{"src":{"type":"node","id":"n-7","name":"db-1"},"dst":{"type":"external","id":"","name":""},"bytes":1,"packets":1,"flows":1}]}`)
	if want := (flowlog.Filter{Protocols: []uint8{6}, Direction: flowlog.DirEgress}); !reflect.DeepEqual(agg.filter, want) || agg.limit != 7 {
		t.Errorf("filter %+v limit %d", agg.filter, agg.limit)
	}

	agg = &fakeAgg{}
	rec = serve(t, aggServer(agg, now0), "/api/v1/aggregates/matrix")
	wantBody(t, rec, 200, `{"Code":200,"Message":"traffic matrix retrieved successfully","Response":[]}`)
	if agg.limit != 50 {
		t.Errorf("default limit %d, want 50", agg.limit)
	}
}

func TestActive(t *testing.T) {
	agg := &fakeAgg{active: 1234567890123}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/active?network_id=mesh1&participant=db-1")
	wantBody(t, rec, 200, `{"Code":200,"Message":"active flows counted successfully","Response":{"flows":1234567890123}}`)
	if want := (flowlog.Filter{NetworkID: "mesh1", Participant: "db-1"}); !reflect.DeepEqual(agg.filter, want) {
		t.Errorf("filter %+v", agg.filter)
	}
}

func TestTimeseriesExplicit(t *testing.T) {
	from := time.Date(2026, 11, 24, 10, 0, 30, 0, time.UTC) // aligned down to 10:00 with step 1m
	to := time.Date(2026, 11, 24, 10, 3, 0, 0, time.UTC)
	agg := &fakeAgg{points: []flowlog.Point{
		{T: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), Totals: flowlog.Totals{Bytes: 1, Packets: 2, Flows: 3}},
		// 10:01 missing: zeros
		{T: time.Date(2026, 11, 24, 10, 2, 0, 0, time.UTC), Totals: flowlog.Totals{Bytes: 10, Packets: 20, Flows: 30}},
		// inside the 10:02 bucket though not on its start: added to it
		{T: time.Date(2026, 11, 24, 10, 2, 59, 0, time.UTC), Totals: flowlog.Totals{Bytes: 5, Packets: 5, Flows: 5}},
		// outside the range: left out
		{T: time.Date(2026, 11, 24, 10, 3, 0, 0, time.UTC), Totals: flowlog.Totals{Bytes: 99}},
		{T: time.Date(2026, 11, 24, 9, 59, 0, 0, time.UTC), Totals: flowlog.Totals{Bytes: 99}},
	}}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/timeseries?from=2026-11-24T10:00:30Z&to=2026-11-24T10:03:00Z&step=1m&network_id=n")
	wantBody(t, rec, 200, `{"Code":200,"Message":"time series retrieved successfully","Response":{"step_seconds":60,"points":[`+
		`{"t":"2026-11-24T10:00:00Z","bytes":1,"packets":2,"flows":3},`+
		`{"t":"2026-11-24T10:01:00Z","bytes":0,"packets":0,"flows":0},`+
		`{"t":"2026-11-24T10:02:00Z","bytes":15,"packets":25,"flows":35}]}}`)
	if want := (flowlog.Filter{NetworkID: "n", From: from, To: to}); !reflect.DeepEqual(agg.filter, want) || agg.step != time.Minute {
		t.Errorf("filter %+v step %v", agg.filter, agg.step)
	}
}

func TestTimeseriesDefaults(t *testing.T) {
	agg := &fakeAgg{}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/timeseries")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	// to = now, from = now - 24h, fitted step 5m: 12:30 yesterday .. 12:30 today + the bucket holding now.
	if want := (flowlog.Filter{From: now0.Add(-24 * time.Hour), To: now0}); !reflect.DeepEqual(agg.filter, want) || agg.step != 5*time.Minute {
		t.Errorf("filter %+v step %v", agg.filter, agg.step)
	}
	var body struct {
		Response struct {
			StepSeconds int64 `json:"step_seconds"`
			Points      []struct {
				T                     string
				Bytes, Packets, Flows uint64
			} `json:"points"`
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	p := body.Response.Points
	if body.Response.StepSeconds != 300 || len(p) != 289 || p[0].T != "2026-11-23T12:30:00Z" || p[288].T != "2026-11-24T12:30:00Z" {
		t.Errorf("step %d, %d points, first %+v", body.Response.StepSeconds, len(p), p[0])
	}
	for _, x := range p {
		if x.Bytes != 0 || x.Packets != 0 || x.Flows != 0 {
			t.Fatalf("non-zero point %+v from no data", x)
		}
	}

	// Only from: to is now. Only to: from is 24h before it.
	agg = &fakeAgg{}
	serve(t, aggServer(agg, now0), "/api/v1/aggregates/timeseries?from=2026-11-24T12:00:00Z")
	if !agg.filter.To.Equal(now0) || !agg.filter.From.Equal(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)) || agg.step != 10*time.Second {
		t.Errorf("only from: %+v step %v", agg.filter, agg.step)
	}
	agg = &fakeAgg{}
	serve(t, aggServer(agg, now0), "/api/v1/aggregates/timeseries?to=2026-11-20T00:00:00Z")
	if !agg.filter.From.Equal(time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)) || agg.step != 5*time.Minute {
		t.Errorf("only to: %+v step %v", agg.filter, agg.step)
	}
}

func TestTimeseriesStepFitting(t *testing.T) {
	base := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		span   time.Duration
		offset time.Duration // of from past a round time
		step   time.Duration
		n      int
	}{
		{time.Second, 0, 10 * time.Second, 1},
		{50 * time.Minute, 0, 10 * time.Second, 300},     // exactly 300
		{50 * time.Minute, time.Second, time.Minute, 51}, // 301 at 10s: one more bucket from alignment
		{50*time.Minute + time.Second, 0, time.Minute, 51},
		{5 * time.Hour, 0, time.Minute, 300},
		{5*time.Hour + time.Millisecond, 0, 5 * time.Minute, 61},
		{24 * time.Hour, 0, 5 * time.Minute, 288},
		{25 * time.Hour, 0, 5 * time.Minute, 300},
		{26 * time.Hour, 0, 15 * time.Minute, 104},
		{75 * time.Hour, 0, 15 * time.Minute, 300},
		{7 * 24 * time.Hour, 0, time.Hour, 168},
		{30 * 24 * time.Hour, 0, 6 * time.Hour, 120},
		{75 * 24 * time.Hour, 0, 6 * time.Hour, 300},
		{90 * 24 * time.Hour, 0, 24 * time.Hour, 90},
		{400 * 24 * time.Hour, 0, 24 * time.Hour, 400},     // beyond 300 even at 1d: 1d
		{10000 * 24 * time.Hour, 0, 24 * time.Hour, 10000}, // the most
	}
	for _, tt := range tests {
		from := base.Add(tt.offset)
		q := "from=" + from.Format(time.RFC3339Nano) + "&to=" + from.Add(tt.span).Format(time.RFC3339Nano)
		sq, err := parseSeriesQuery(mustQuery(t, q), now0)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if sq.step != tt.step || sq.n != tt.n || !sq.first.Equal(alignDown(from, tt.step)) {
			t.Errorf("%s: step %v, %d points from %v; want %v, %d", q, sq.step, sq.n, sq.first, tt.step, tt.n)
		}
	}
}

// A range of centuries with a step of a year is answered in full, the
// points on its grid (it once panicked: makeslice, from a time.Duration
// that overflowed).
func TestTimeseriesOfCenturies(t *testing.T) {
	agg := &fakeAgg{points: []flowlog.Point{{T: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Totals: flowlog.Totals{Flows: 7}}}}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/timeseries?from=1700-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&step=365d")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var got struct {
		Response seriesJSON
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	pts := got.Response.Points
	var flows uint64
	for _, p := range pts {
		flows += p.Flows
	}
	if len(pts) != 402 || pts[0].T > "1700-01-01T00:00:00Z" || pts[len(pts)-1].T < "2099" || flows != 7 {
		t.Fatalf("%d points from %s to %s holding %d flows", len(pts), pts[0].T, pts[len(pts)-1].T, flows)
	}
	if !agg.filter.From.Equal(time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("asked the store from %s", agg.filter.From)
	}
}

func TestTimeseriesBadValues(t *testing.T) {
	tests := []struct{ query, message string }{
		{"step=0s", `invalid step "0s": must be a whole number of seconds from 1s to 365d, such as 10s, 1m, 5m, 1h or 1d`},
		{"step=1500ms", `invalid step "1500ms": must be a whole number of seconds from 1s to 365d, such as 10s, 1m, 5m, 1h or 1d`},
		{"step=-1m", `invalid step "-1m": must be a whole number of seconds from 1s to 365d, such as 10s, 1m, 5m, 1h or 1d`},
		{"step=1w", `invalid step "1w": must be a whole number of seconds from 1s to 365d, such as 10s, 1m, 5m, 1h or 1d`},
		{"step=366d", `invalid step "366d": must be a whole number of seconds from 1s to 365d, such as 10s, 1m, 5m, 1h or 1d`},
		{"step=0d", `invalid step "0d": must be a whole number of seconds from 1s to 365d, such as 10s, 1m, 5m, 1h or 1d`},
		{"step=1s", `invalid step "1s": gives 86401 points from 2026-11-23T12:34:56.789Z to 2026-11-24T12:34:56.789Z, at most 10000 allowed`},
		{"step=8s&from=2026-11-24T00:00:00Z&to=2026-11-24T22:13:28Z", `invalid step "8s": gives 10001 points from 2026-11-24T00:00:00Z to 2026-11-24T22:13:28Z, at most 10000 allowed`},
		{"from=2000-01-01T00:00:00Z&to=2030-01-01T00:00:00Z",
			`invalid from "2000-01-01T00:00:00Z": the range to 2030-01-01T00:00:00Z needs 10958 points even with step 1d, at most 10000 allowed`},
		{"from=2026-11-25T00:00:00Z", `invalid from "2026-11-25T00:00:00Z": must be before to (default: now, 2026-11-24T12:34:56.789Z)`},
		{"from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z", `invalid from "2026-11-25T00:00:00Z": must be before to "2026-11-24T00:00:00Z"`},
		{"step=1m&step=5m", "invalid step: given 2 times, at most once allowed"},
		// Ranges a time.Duration cannot hold (292 years) are counted right.
		// (0001-01-01T00:00:00Z, Go's zero time, is read as a nanosecond later:
		// it once read as "not given", and the series covered the last day.)
		{"from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", `invalid from "0001-01-01T00:00:00.000000001Z": the range to ` +
			`9999-12-31T23:59:59Z needs 3652059 points even with step 1d, at most 10000 allowed`},
		{"from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&step=365d", `invalid step "365d": gives 10007 points from ` +
			`0001-01-01T00:00:00.000000001Z to 9999-12-31T23:59:59Z, at most 10000 allowed`},
		{"page=1", "invalid page: aggregates have no pages"},
		{"limit=5", `unknown parameter "limit": known are network_id, from, to, src_entity_id, dst_entity_id, node_id, ` +
			`username, state, ip, src_ip, dst_ip, port, direction, participant, observations, step, src_type, dst_type, protocol, asn, country`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			agg := &fakeAgg{}
			wantBody(t, serve(t, aggServer(agg, now0), "/api/v1/aggregates/timeseries?"+tt.query), 400,
				mustJSON(t, errorResponse{Code: 400, Message: tt.message}))
			if len(agg.calls) != 0 {
				t.Errorf("aggregator called: %v", agg.calls)
			}
		})
	}
}

func TestAggregatesBadValues(t *testing.T) {
	tests := []struct{ path, query, message string }{
		{"top", "by=host", `invalid by "host": must be one of participant, ip, asn, country, prefix`},
		{"top", "metric=bits", `invalid metric "bits": must be one of bytes, packets, flows`},
		{"top", "side=both", `invalid side "both": must be one of any, src, dst`},
		{"top", "limit=0", `invalid limit "0": must be between 1 and 1000`},
		{"top", "limit=1001", `invalid limit "1001": must be between 1 and 1000`},
		{"top", "limit=ten", `invalid limit "ten": must be between 1 and 1000`},
		{"top", "by=ip&by=participant", "invalid by: given 2 times, at most once allowed"},
		{"top", "per_page=5", "invalid per_page: aggregates have no pages"},
		{"top", "cursor=x", "invalid cursor: aggregates have no pages"},
		{"top", "step=1m", `unknown parameter "step": known are network_id, from, to, src_entity_id, dst_entity_id, node_id, ` +
			`username, state, ip, src_ip, dst_ip, port, direction, participant, observations, by, metric, side, limit, prefix4, prefix6, src_type, dst_type, protocol, asn, country`},
		{"top", "port=0", `invalid port "0": must be between 1 and 65535`},
		{"top", "network_id=%zz", `invalid query string: invalid URL escape "%zz"`},
		{"matrix", "limit=0", `invalid limit "0": must be between 1 and 1000`},
		{"matrix", "by=ip", `unknown parameter "by": known are network_id, from, to, src_entity_id, dst_entity_id, node_id, ` +
			`username, state, ip, src_ip, dst_ip, port, direction, participant, observations, limit, src_type, dst_type, protocol, asn, country`},
		{"matrix", "direction=up", `invalid direction "up": must be one of ingress, egress`},
		{"matrix", "page=2", "invalid page: aggregates have no pages"},
		{"active", "state=active", `unknown parameter "state": known are network_id, from, to, src_entity_id, dst_entity_id, ` +
			`node_id, username, ip, src_ip, dst_ip, port, direction, participant, observations, src_type, dst_type, protocol, asn, country`},
		{"active", "ip=nope", `invalid ip "nope": must be an IP address or a CIDR prefix such as 10.0.0.0/8 or fd00::/64`},
		{"active", "username=a&src_type=node", `invalid username "a": cannot be combined with src_type`},
	}
	for _, tt := range tests {
		t.Run(tt.path+"?"+tt.query, func(t *testing.T) {
			agg := &fakeAgg{}
			wantBody(t, serve(t, aggServer(agg, now0), "/api/v1/aggregates/"+tt.path+"?"+tt.query), 400,
				mustJSON(t, errorResponse{Code: 400, Message: tt.message}))
			if len(agg.calls) != 0 {
				t.Errorf("aggregator called: %v", agg.calls)
			}
		})
	}
}

func TestAggregatesUnavailable(t *testing.T) {
	s := New(Deps{Store: &fakeStore{}, Log: discardLog()}) // no Agg
	for _, p := range []string{"top", "matrix", "timeseries", "active"} {
		wantBody(t, serve(t, s, "/api/v1/aggregates/"+p), 501,
			`{"Code":501,"Message":"aggregates are not available: the store does not implement them","Response":null}`)
	}
}

func TestAggregatesStoreError(t *testing.T) {
	agg := &fakeAgg{err: errors.New("disk on fire")}
	for p, what := range map[string]string{"top": "top talkers", "matrix": "traffic matrix", "timeseries": "time series", "active": "active flows"} {
		rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/"+p)
		id := rec.Header().Get("X-Request-Id")
		wantBody(t, rec, 500, `{"Code":500,"Message":"internal error fetching `+what+` (request `+id+`)","Response":null}`)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustQuery(t *testing.T, q string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
