package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/tail"
)

// matchStore is a store and aggregator over a fixed set of flows that
// applies the filter the way the real store does (Filter.Match has the
// store's semantics, match.go), so that what an endpoint answers shows which
// networks its filter let through. Each aggregate names the flows' networks
// in its answer: a talker's and an edge's entity id is the network, the
// series counts flows.
type matchStore struct {
	flows   []flowlog.Flow
	filters []flowlog.Filter // every filter asked, in order
}

func (m *matchStore) Insert(context.Context, *flowlog.Batch) error { return errors.New("not used") }
func (m *matchStore) Close() error                                 { return nil }
func (m *matchStore) Ping(context.Context) error                   { return nil }

func (m *matchStore) match(f flowlog.Filter) []flowlog.Flow {
	m.filters = append(m.filters, f)
	var out []flowlog.Flow
	for _, fl := range m.flows {
		if f.Match(&fl.Event) {
			out = append(out, fl)
		}
	}
	return out
}

func (m *matchStore) Flows(_ context.Context, f flowlog.Filter, _ flowlog.Page) ([]flowlog.Flow, error) {
	return m.match(f), nil
}

func (m *matchStore) Top(_ context.Context, q flowlog.TopQuery) ([]flowlog.Talker, error) {
	var out []flowlog.Talker
	for _, fl := range m.match(q.Filter) {
		out = append(out, flowlog.Talker{Participant: flowlog.Participant{Type: flowlog.ParticipantNode, ID: fl.NetworkID}})
	}
	return out, nil
}

func (m *matchStore) Matrix(_ context.Context, f flowlog.Filter, _ int) ([]flowlog.Edge, error) {
	var out []flowlog.Edge
	for _, fl := range m.match(f) {
		out = append(out, flowlog.Edge{Src: flowlog.Participant{ID: fl.NetworkID}, Dst: flowlog.Participant{ID: fl.NetworkID}})
	}
	return out, nil
}

func (m *matchStore) Series(_ context.Context, f flowlog.Filter, _ time.Duration) ([]flowlog.Point, error) {
	n := uint64(len(m.match(f)))
	return []flowlog.Point{{T: f.From, Totals: flowlog.Totals{Flows: n}}}, nil
}

func (m *matchStore) Active(_ context.Context, f flowlog.Filter) (uint64, error) {
	return uint64(len(m.match(f))), nil
}

// The readers of these tests: an admin of every network, a reader of mesh1,
// a reader of mesh1 and mesh3.
func testReaders(t *testing.T) *auth.Readers {
	t.Helper()
	rs, err := auth.ParseReaders("readers.yaml", []byte(`readers:
  - {name: noc, token_sha256: `+auth.HashToken("noc-token")+`, networks: ["*"], role: admin}
  - {name: one, token_sha256: `+auth.HashToken("one-token")+`, networks: [mesh1]}
  - {name: two, token_sha256: `+auth.HashToken("two-token")+`, networks: [mesh1, mesh3]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// guarded is the API behind Access, with a /metrics and a /readyz beside it
// as `flowlog serve` has them.
func guarded(t *testing.T, st *matchStore, hub *tail.Hub) http.Handler {
	t.Helper()
	rs := testReaders(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ready\n") })
	mux.Handle("/", New(Deps{Store: st, Agg: st, Hub: hub, Log: discardLog(),
		UI: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page\n") })}))
	return Access{Readers: func() *auth.Readers { return rs }, Log: discardLog()}.Handler(mux)
}

func get(t *testing.T, h http.Handler, target, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func threeNetworks() *matchStore {
	st := &matchStore{}
	for _, n := range []string{"mesh1", "mesh2", "mesh3", "mesh1"} {
		e := streamEvent("f-"+n, n, flowlog.EventStart)
		st.flows = append(st.flows, flowlog.Flow{Event: e, Active: true})
	}
	return st
}

func TestAccessTokens(t *testing.T) {
	h := guarded(t, threeNetworks(), tail.NewHub())
	type want struct {
		code      int
		challenge string // WWW-Authenticate
		message   string // in the JSON body
	}
	cases := []struct {
		target, header string
		want           want
	}{
		// Open without a token.
		{"/", "", want{code: 200}},
		{"/assets/index-abc.js", "", want{code: 200}},
		{"/healthz", "", want{code: 200}},
		{"/readyz", "", want{code: 200}},
		// Everything else needs one.
		{"/api/v1/flows", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/api/v1/flows/stream", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/api/v1/aggregates/top", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/api/v1/openapi.json", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/api/v2/nothing", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/metrics", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/elsewhere", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/assets/../api/v1/flows", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/api/v1/flows", "Basic bm9jOm5vYw==", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/api/v1/flows", "Bearer ", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/api/v1/flows", "Bearer nope", want{401, `Bearer realm="flowlog", error="invalid_token"`, msgUnknownToken}},
		{"/api/v1/flows", "Bearer noc-token ", want{code: 200}},
		{"/api/v1/flows", "bearer noc-token", want{code: 200}},
		{"/api/v1/flows", "Bearer one-token", want{code: 200}},
		// The OpenAPI document is for any reader; metrics for admins.
		{"/api/v1/openapi.json", "Bearer one-token", want{code: 200}},
		{"/metrics", "Bearer noc-token", want{code: 200}},
		{"/metrics", "Bearer one-token", want{403, "", `forbidden: /metrics needs a reader with role admin (reader "one" has role read)`}},
		// Rejected events too: they carry no network a scope could bound.
		{"/api/v1/rejected", "", want{401, `Bearer realm="flowlog"`, msgNoToken}},
		{"/api/v1/rejected", "Bearer one-token", want{403, "", `forbidden: /api/v1/rejected needs a reader with role admin (reader "one" has role read)`}},
		{"/api/v1/rejected", "Bearer noc-token", want{code: 501}}, // let through; this test's store lists none
		// A valid token on an unknown API path: the API's own 404.
		{"/api/v2/nothing", "Bearer one-token", want{code: 404}},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodGet, tc.target, nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		if tc.target == "/api/v1/flows/stream" {
			ctx, cancel := context.WithCancel(req.Context())
			cancel()
			req = req.WithContext(ctx)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want.code || rec.Header().Get("WWW-Authenticate") != tc.want.challenge {
			t.Errorf("%s (%q): %d WWW-Authenticate %q, want %d %q; body %s", tc.target, tc.header, rec.Code,
				rec.Header().Get("WWW-Authenticate"), tc.want.code, tc.want.challenge, rec.Body)
			continue
		}
		if tc.want.message != "" {
			var body errorResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code != tc.want.code || body.Message != tc.want.message ||
				rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("%s: body %s (%v), want Code %d Message %q", tc.target, rec.Body, err, tc.want.code, tc.want.message)
			}
		}
	}
}

// Without readers the API is open, as before.
func TestAccessOpenWithoutReaders(t *testing.T) {
	st := threeNetworks()
	h := Access{}.Handler(New(Deps{Store: st, Agg: st, Log: discardLog()}))
	if rec := get(t, h, "/api/v1/flows", ""); rec.Code != 200 || strings.Count(rec.Body.String(), `"flow_id"`) != 4 {
		t.Fatalf("open API: %d %s", rec.Code, rec.Body)
	}
	if st.filters[0].Networks != nil {
		t.Errorf("open API scoped the filter: %v", st.filters[0].Networks)
	}
}

// networksIn lists the networks an answer shows, in order (flows' network_id,
// talkers' and edges' entity ids, which matchStore sets to the network).
func networksIn(t *testing.T, body []byte) []string {
	t.Helper()
	var env struct {
		Response json.RawMessage
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var rows []struct {
		NetworkID string `json:"network_id"`
		ID        string `json:"id"`
		Src       struct {
			ID string `json:"id"`
		} `json:"src"`
	}
	if err := json.Unmarshal(env.Response, &rows); err != nil {
		return nil // not a list (series, active): counted by the caller
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.NetworkID+r.ID+r.Src.ID)
	}
	return out
}

// A scoped token never sees another network's flows, in any endpoint: the
// list, each aggregate and the live tail; an explicit network_id outside
// its scope is refused, naming the network.
func TestAccessScopesEveryEndpoint(t *testing.T) {
	st := threeNetworks()
	hub := tail.NewHub()
	h := guarded(t, st, hub)
	lists := []string{"/api/v1/flows", "/api/v1/aggregates/top", "/api/v1/aggregates/matrix"}
	counts := map[string]string{ // path -> JSON of the count for mesh1's 2 flows
		"/api/v1/aggregates/timeseries?from=2026-11-24T00:00:00Z&to=2026-11-25T00:00:00Z&step=1d": `"flows":2`,
		"/api/v1/aggregates/active": `{"flows":2}`,
	}
	for _, p := range lists {
		st.filters = nil
		rec := get(t, h, p, "one-token")
		if got := networksIn(t, rec.Body.Bytes()); rec.Code != 200 || !slices.Equal(got, []string{"mesh1", "mesh1"}) {
			t.Errorf("%s as one (mesh1): %d, networks %v", p, rec.Code, got)
		}
		if len(st.filters) != 1 || !slices.Equal(st.filters[0].Networks, []string{"mesh1"}) {
			t.Errorf("%s: filters asked %+v, want Networks [mesh1]", p, st.filters)
		}
		rec = get(t, h, p, "two-token")
		if got := networksIn(t, rec.Body.Bytes()); rec.Code != 200 || !slices.Equal(got, []string{"mesh1", "mesh3", "mesh1"}) {
			t.Errorf("%s as two (mesh1, mesh3): %d, networks %v", p, rec.Code, got)
		}
		rec = get(t, h, p, "noc-token")
		if got := networksIn(t, rec.Body.Bytes()); rec.Code != 200 || len(got) != 4 {
			t.Errorf("%s as noc (*): %d, networks %v", p, rec.Code, got)
		}
		// Asking for its own network is fine; another is refused.
		if rec := get(t, h, p+"?network_id=mesh1", "one-token"); rec.Code != 200 || len(networksIn(t, rec.Body.Bytes())) != 2 {
			t.Errorf("%s?network_id=mesh1 as one: %d %s", p, rec.Code, rec.Body)
		}
		st.filters = nil
		rec = get(t, h, p+"?network_id=mesh2", "one-token")
		want := `{"Code":403,"Message":"forbidden: network_id \"mesh2\" is not among this token's networks (mesh1)","Response":null}` + "\n"
		if rec.Code != 403 || rec.Body.String() != want || len(st.filters) != 0 {
			t.Errorf("%s?network_id=mesh2 as one: %d %s (store asked %d times), want 403 %s", p, rec.Code, rec.Body, len(st.filters), want)
		}
		// A bad parameter is still a 400, whoever asks.
		if rec := get(t, h, p+"?state=nope", "one-token"); rec.Code != 400 {
			t.Errorf("%s?state=nope: %d", p, rec.Code)
		}
	}
	for p, want := range counts {
		st.filters = nil
		if rec := get(t, h, p, "one-token"); rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s as one: %d %s, want %s", p, rec.Code, rec.Body, want)
		}
		if len(st.filters) != 1 || !slices.Equal(st.filters[0].Networks, []string{"mesh1"}) {
			t.Errorf("%s: filters asked %+v, want Networks [mesh1]", p, st.filters)
		}
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		if rec := get(t, h, p+sep+"network_id=mesh3", "one-token"); rec.Code != 403 || !strings.Contains(rec.Body.String(), `network_id \"mesh3\"`) {
			t.Errorf("%s network_id=mesh3 as one: %d %s", p, rec.Code, rec.Body)
		}
		if rec := get(t, h, p+sep+"network_id=mesh3", "two-token"); rec.Code != 200 {
			t.Errorf("%s network_id=mesh3 as two: %d %s", p, rec.Code, rec.Body)
		}
	}

	// The live tail, over a real server: the scoped reader gets only mesh1's
	// events, whatever is published; asking for mesh2 is refused.
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream := func(token, query string) (*http.Response, *sseReader) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/flows/stream"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp, &sseReader{bufio.NewReader(resp.Body)}
	}
	if resp, _ := stream("one-token", "?network_id=mesh2"); resp.StatusCode != 403 {
		t.Errorf("stream of mesh2 as one: %d", resp.StatusCode)
	}
	resp, one := stream("one-token", "")
	_, all := stream("noc-token", "")
	if resp.StatusCode != 200 {
		t.Fatalf("stream as one: %d", resp.StatusCode)
	}
	for _, n := range []string{"mesh2", "mesh3", "mesh1", "mesh2", "mesh1"} {
		hub.Publish([]flowlog.Event{streamEvent("live-"+n, n, flowlog.EventStart)})
	}
	hub.Publish([]flowlog.Event{streamEvent("end", "mesh1", flowlog.EventDestroy)})
	read := func(s *sseReader, n int) []string {
		var nets []string
		for len(nets) < n {
			f, err := s.next()
			if err != nil {
				t.Fatalf("reading the stream: %v (got %v)", err, nets)
			}
			if f.event != "flow" {
				continue
			}
			var row FlowRow
			if err := json.Unmarshal([]byte(f.data), &row); err != nil {
				t.Fatal(err)
			}
			nets = append(nets, row.NetworkID)
		}
		return nets
	}
	if got := read(one, 3); !slices.Equal(got, []string{"mesh1", "mesh1", "mesh1"}) {
		t.Errorf("tail as one: %v", got)
	}
	if got := read(all, 6); !slices.Equal(got, []string{"mesh2", "mesh3", "mesh1", "mesh2", "mesh1", "mesh1"}) {
		t.Errorf("tail as noc: %v", got)
	}
}

// A reload that removes or narrows a token ends its live tails (at the next
// keepalive); one that leaves it alone does not.
func TestAccessReloadEndsRevokedTails(t *testing.T) {
	rs := testReaders(t)
	var cur atomic.Pointer[auth.Readers]
	cur.Store(rs)
	st := threeNetworks()
	h := Access{Readers: cur.Load, Log: discardLog()}.Handler(New(Deps{Store: st, Agg: st, Hub: tail.NewHub(), Log: discardLog(),
		Keepalive: 20 * time.Millisecond}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(token string) io.ReadCloser {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/flows/stream", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream as %s: %v %v", token, resp, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp.Body
	}
	one, two, noc := open("one-token"), open("two-token"), open("noc-token")
	// one loses its token, two is narrowed to mesh1, noc stays as it was.
	next, err := auth.ParseReaders("readers.yaml", []byte(`readers:
  - {name: noc, token_sha256: `+auth.HashToken("noc-token")+`, networks: ["*"], role: admin}
  - {name: two, token_sha256: `+auth.HashToken("two-token")+`, networks: [mesh1]}
`))
	if err != nil {
		t.Fatal(err)
	}
	cur.Store(next)
	for name, body := range map[string]io.ReadCloser{"one": one, "two": two} {
		done := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, body); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s's stream ended with %v, want a clean end", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s's stream still open after its grant changed", name)
		}
	}
	buf := make([]byte, 64)
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := noc.Read(buf); err != nil {
			t.Fatalf("noc's stream ended: %v", err)
		}
	}
	// A new request as one is refused; two gets its new scope.
	if rec := get(t, h, "/api/v1/flows", "one-token"); rec.Code != 401 {
		t.Errorf("one after the reload: %d", rec.Code)
	}
	if rec := get(t, h, "/api/v1/flows?network_id=mesh3", "two-token"); rec.Code != 403 {
		t.Errorf("two's mesh3 after the reload: %d", rec.Code)
	}
}

// The guard and the router judge the same cleaned path: an encoded slash or
// dot segment can neither slip an API request past the guard as a page, nor
// make an open path reach the API.
func TestAccessGuardAndRouterSeeTheSamePath(t *testing.T) {
	st := threeNetworks()
	h := guarded(t, st, tail.NewHub())
	for _, target := range []string{
		"/api/v1/flows%2f..%2f..%2fassets/x",
		"/api/v1/flows%2f..%2f..%2f..%2fassets/x",
		"/api/v1/flows%2F..%2F..%2F..%2Fassets%2Fx",
		"/assets/..%2fapi/v1/flows",
		"/assets%2f..%2fapi/v1/flows",
		"/assets/%2e%2e/api/v1/flows",
		"//api/v1/flows",
		"/./api/v1/flows",
		"/healthz/../api/v1/flows",
	} {
		rec := get(t, h, target, "")
		if len(st.filters) > 0 || strings.Contains(rec.Body.String(), "flow_id") {
			t.Fatalf("%s without a token reached the API: %d %s", target, rec.Code, rec.Body)
		}
		if rec.Body.String() != "page\n" && rec.Code != http.StatusUnauthorized && rec.Code/100 != 3 {
			t.Errorf("%s without a token: %d %q, want the page, a redirect or 401", target, rec.Code, rec.Body)
		}
	}
	// With a token, the cleaned path is served like the plain one.
	if rec := get(t, h, "/assets/..%2fapi/v1/flows", "noc-token"); rec.Code != 200 || !strings.Contains(rec.Body.String(), "flow_id") {
		t.Errorf("cleaned API path with a token: %d %s", rec.Code, rec.Body)
	}
}
