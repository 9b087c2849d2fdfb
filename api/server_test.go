package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// fakeStore records what the API asked for and answers with canned values.
type fakeStore struct {
	flows   []flowlog.Flow
	err     error // returned by Flows
	pingErr error

	flowsCalls int
	filter     flowlog.Filter
	page       flowlog.Page
}

func (s *fakeStore) Insert(context.Context, *flowlog.Batch) error { return errors.New("not used") }
func (s *fakeStore) Close() error                                 { return nil }
func (s *fakeStore) Ping(context.Context) error                   { return s.pingErr }

func (s *fakeStore) Flows(ctx context.Context, f flowlog.Filter, p flowlog.Page) ([]flowlog.Flow, error) {
	s.flowsCalls++
	s.filter, s.page = f, p
	if s.err != nil {
		return nil, s.err
	}
	return s.flows, ctx.Err()
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func serve(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

// decode keeps numbers exact (uint64 counters do not survive float64).
func decode(t *testing.T, body []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return m
}

func TestFlowsSuccessShape(t *testing.T) {
	start := time.Date(2026, 11, 24, 10, 0, 0, 123_000_000, time.UTC)
	active := flowlog.Flow{Active: true, Event: flowlog.Event{
		Type: flowlog.EventStart, FlowID: "f-active", HostID: "host-1", HostName: "gw-1", NetworkID: "net-a",
		Protocol: 6, SrcPort: 51234, DstPort: 443, Direction: flowlog.DirEgress,
		Src: flowlog.Participant{IP: netip.MustParseAddr("::ffff:10.0.0.5"), Type: flowlog.ParticipantUser,
			ID: "alice", Name: "Alice"},
		Dst: flowlog.Participant{IP: netip.MustParseAddr("fd00::1"), Type: flowlog.ParticipantNode,
			ID: "node-9", Name: "db"},
		// A store in another zone must still produce UTC.
		Start:   start.In(time.FixedZone("CET", 3600)),
		Version: start.UnixMilli(),
	}}
	finished := flowlog.Flow{Active: false, Event: flowlog.Event{
		Type: flowlog.EventDestroy, FlowID: "f-done", HostID: "host-2", HostName: "gw-2", NetworkID: "net-b",
		Protocol: 1, ICMPType: 8, ICMPCode: 0, Direction: flowlog.DirIngress,
		Src: flowlog.Participant{IP: netip.MustParseAddr("100.64.0.1"), Type: flowlog.ParticipantExtClient,
			ID: "ext-1", Name: "phone"},
		Dst:       flowlog.Participant{IP: netip.MustParseAddr("8.8.8.8"), Type: flowlog.ParticipantExternal},
		Start:     time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		End:       time.Date(2026, 11, 24, 9, 0, 5, 500_000_000, time.UTC),
		BytesSent: 1 << 60, BytesRecv: 2048, PacketsSent: 3, PacketsRecv: 4, Status: 0x18e,
		Version: 1795510805501, // 2026-11-24T09:00:05.501Z
	}}
	st := &fakeStore{flows: []flowlog.Flow{active, finished}}
	rec := serve(t, New(Deps{Store: st, Log: discardLog()}), "/api/v1/flows")

	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	got := decode(t, rec.Body.Bytes())
	if len(got) != 4 || got["Code"] != json.Number("200") || got["Message"] != "flows retrieved successfully" || got["Next"] != "" {
		t.Errorf("envelope: Code=%v Message=%v Next=%v keys=%d, want exactly Code 200, Message, Response, Next \"\"",
			got["Code"], got["Message"], got["Next"], len(got))
	}
	rows, ok := got["Response"].([]any)
	if !ok || len(rows) != 2 {
		t.Fatalf("Response = %#v, want 2 rows", got["Response"])
	}
	n := func(s string) json.Number { return json.Number(s) }
	want := []map[string]any{{
		"flow_id": "f-active", "host_id": "host-1", "host_name": "gw-1", "network_id": "net-a",
		"protocol": n("6"), "src_port": n("51234"), "dst_port": n("443"), "icmp_type": n("0"), "icmp_code": n("0"),
		"direction": "egress",
		"src_ip":    "10.0.0.5", "src_type": "user", "src_entity_id": "alice", "src_entity_name": "Alice",
		"dst_ip": "fd00::1", "dst_type": "node", "dst_entity_id": "node-9", "dst_entity_name": "db",
		"start_ts": "2026-11-24T10:00:00.123Z", "end_ts": "1970-01-01T00:00:00Z",
		"bytes_sent": n("0"), "bytes_recv": n("0"), "packets_sent": n("0"), "packets_recv": n("0"),
		"status": n("0"), "version": "2026-11-24T10:00:00.123Z", "active": true, "state": "active",
	}, {
		"flow_id": "f-done", "host_id": "host-2", "host_name": "gw-2", "network_id": "net-b",
		"protocol": n("1"), "src_port": n("0"), "dst_port": n("0"), "icmp_type": n("8"), "icmp_code": n("0"),
		"direction": "ingress",
		"src_ip":    "100.64.0.1", "src_type": "extclient", "src_entity_id": "ext-1", "src_entity_name": "phone",
		"dst_ip": "8.8.8.8", "dst_type": "external", "dst_entity_id": "", "dst_entity_name": "",
		"start_ts": "2026-11-24T09:00:00Z", "end_ts": "2026-11-24T09:00:05.5Z",
		"bytes_sent": n("1152921504606846976"), "bytes_recv": n("2048"), "packets_sent": n("3"), "packets_recv": n("4"),
		"status": n("398"), "version": "2026-11-24T09:00:05.501Z", "active": false, "state": "finished",
	}}
	for i := range want {
		row := rows[i].(map[string]any)
		for k, w := range want[i] {
			if g, ok := row[k]; !ok {
				t.Errorf("row %d: missing %q", i, k)
			} else if g != w {
				t.Errorf("row %d: %s = %#v, want %#v", i, k, g, w)
			}
		}
		for k := range row {
			if _, ok := want[i][k]; !ok {
				t.Errorf("row %d: unexpected key %q", i, k)
			}
		}
	}
}

func TestFlowsEmptyIsArray(t *testing.T) {
	rec := serve(t, New(Deps{Store: &fakeStore{}, Log: discardLog()}), "/api/v1/flows")
	want := `{"Code":200,"Message":"flows retrieved successfully","Response":[],"Next":""}` + "\n"
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("got %d %q, want 200 %q", rec.Code, rec.Body, want)
	}
}

func TestFlowsStoreError(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	rec := serve(t, New(Deps{Store: &fakeStore{err: errors.New("disk on fire")}, Log: log}), "/api/v1/flows?network_id=n1")
	// The client learns only a request id; the engine's text stays in
	// the log, under that id, beside the query.
	id := rec.Header().Get("X-Request-Id")
	want := `{"Code":500,"Message":"internal error fetching flows (request ` + id + `)","Response":null}` + "\n"
	if len(id) != 16 || rec.Code != http.StatusInternalServerError || rec.Body.String() != want {
		t.Errorf("got %d %q (X-Request-Id %q), want 500 %q", rec.Code, rec.Body, id, want)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "disk on fire") ||
		!strings.Contains(l, "network_id=n1") || !strings.Contains(l, "request_id="+id) {
		t.Errorf("log %q lacks the error, the query and the request id", l)
	}
}

func TestFlowsCancelledRequestGetsNoBody(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1/flows", nil)
	New(Deps{Store: &fakeStore{}, Log: discardLog()}).ServeHTTP(rec, req)
	if rec.Body.Len() != 0 {
		t.Errorf("body %q, want none", rec.Body)
	}
}

func TestFlowsWrongMethod(t *testing.T) {
	rec := httptest.NewRecorder()
	New(Deps{Store: &fakeStore{}, Log: discardLog()}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/flows", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST status %d, want 405", rec.Code)
	}
}

func TestHealthz(t *testing.T) {
	rec := serve(t, New(Deps{Store: &fakeStore{}, Log: discardLog()}), "/healthz")
	if rec.Code != http.StatusOK || rec.Body.String() != `{"status":"ok"}`+"\n" {
		t.Errorf("healthy: got %d %q", rec.Code, rec.Body)
	}

	rec = serve(t, New(Deps{Store: &fakeStore{pingErr: errors.New("connection refused")}, Log: discardLog()}), "/healthz")
	got := decode(t, rec.Body.Bytes())
	want := map[string]any{"status": "unavailable", "error": "store not answering (request " + rec.Header().Get("X-Request-Id") + ")"}
	if rec.Code != http.StatusServiceUnavailable || !reflect.DeepEqual(got, want) {
		t.Errorf("unhealthy: got %d %v, want 503 %v", rec.Code, got, want)
	}
}

func TestFlowsNextCursor(t *testing.T) {
	t1 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	flows := []flowlog.Flow{
		{Event: flowlog.Event{FlowID: "b", Start: t1.Add(time.Second)}},
		{Event: flowlog.Event{FlowID: "a", Start: t1.Add(123 * time.Millisecond)}},
	}
	next := func(t *testing.T, query string, flows []flowlog.Flow) any {
		t.Helper()
		rec := serve(t, New(Deps{Store: &fakeStore{flows: flows}, Log: discardLog()}), "/api/v1/flows?"+query)
		if rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return decode(t, rec.Body.Bytes())["Next"]
	}
	// A full page: the cursor of its last flow.
	want := EncodeCursor(flowlog.Cursor{Start: t1.Add(123 * time.Millisecond), FlowID: "a"})
	if want != "MTc5NTUxNDQwMDEyMzph" { // base64url("1795514400123:a")
		t.Errorf("cursor %q", want)
	}
	if got := next(t, "per_page=2", flows); got != want {
		t.Errorf("full page: Next %v, want %q", got, want)
	}
	// A short page is the last.
	if got := next(t, "per_page=3", flows); got != "" {
		t.Errorf("short page: Next %v, want empty", got)
	}
	if got := next(t, "per_page=1", nil); got != "" {
		t.Errorf("empty page: Next %v, want empty", got)
	}
	// Following the cursor asks the store for the flows after it.
	st := &fakeStore{}
	serve(t, New(Deps{Store: st, Log: discardLog()}), "/api/v1/flows?per_page=2&cursor="+want)
	if st.page.After == nil || *st.page.After != (flowlog.Cursor{Start: t1.Add(123 * time.Millisecond), FlowID: "a"}) ||
		st.page.PerPage != 2 || st.page.Number != 1 {
		t.Errorf("page %+v after %+v", st.page, st.page.After)
	}
}

func TestUIAndUnknownPaths(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ui:" + r.URL.Path))
	})
	s := New(Deps{Store: &fakeStore{}, Log: discardLog(), UI: ui})
	for path, want := range map[string]string{"/": "ui:/", "/index.html": "ui:/index.html", "/assets/app.js": "ui:/assets/app.js"} {
		if rec := serve(t, s, path); rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("GET %s: %d %q, want %q", path, rec.Code, rec.Body, want)
		}
	}
	// The API keeps its paths; unknown API paths are a JSON 404, not the UI.
	if rec := serve(t, s, "/api/v1/flows"); rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), `{"Code":200`) {
		t.Errorf("flows with a UI: %d %q", rec.Code, rec.Body)
	}
	for _, h := range []http.Handler{s, New(Deps{Store: &fakeStore{}, Log: discardLog()})} {
		rec := serve(t, h, "/api/v1/nope?x=1")
		if want := `{"Code":404,"Message":"no such endpoint: /api/v1/nope (see /api/v1/openapi.json)","Response":null}` + "\n"; rec.Code != 404 || rec.Body.String() != want {
			t.Errorf("unknown API path: %d %q", rec.Code, rec.Body)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/flows", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST /api/v1/flows: %d, want 405", rec.Code)
		}
	}
	// Without a UI, / is not found.
	if rec := serve(t, New(Deps{Store: &fakeStore{}, Log: discardLog()}), "/"); rec.Code != 404 {
		t.Errorf("GET / without UI: %d", rec.Code)
	}
}

// One stored row whose version cannot be printed as a time (year 58,000:
// a microsecond clock; refused at ingest now, kept from before) does not
// fail the page it is on; its version prints as the last printable instant.
func TestFlowsPageSurvivesAnUnprintableVersion(t *testing.T) {
	bad := flowlog.Flow{Event: flowlog.Event{FlowID: "bad", Type: flowlog.EventStart, Start: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC),
		Version: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC).UnixMicro()}, Active: true}
	good := bad
	good.FlowID, good.Version = "good", 5
	rec := serve(t, New(Deps{Store: &fakeStore{flows: []flowlog.Flow{good, bad}}, Log: discardLog()}), "/api/v1/flows")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(rec.Body.String(), `"flow_id":"bad"`) || !strings.Contains(rec.Body.String(), `"version":"9999-12-31T23:59:59.999Z"`) {
		t.Fatalf("body %s", rec.Body)
	}
}

// The stale state and the end_approx mark reach the API's rows.
func TestFlowRowState(t *testing.T) {
	for _, tc := range []struct {
		f     flowlog.Flow
		state string
	}{
		{flowlog.Flow{Event: flowlog.Event{Type: flowlog.EventStart}, Active: true}, "active"},
		{flowlog.Flow{Event: flowlog.Event{Type: flowlog.EventStart}, Stale: true}, "stale"},
		{flowlog.Flow{Event: flowlog.Event{Type: flowlog.EventDestroy, EndApprox: true}}, "finished"},
	} {
		r := NewFlowRow(tc.f)
		if r.State != tc.state || r.Active != tc.f.Active || r.EndApprox != tc.f.EndApprox {
			t.Errorf("%+v: %+v", tc.f, r)
		}
	}
}
