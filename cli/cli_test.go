package cli

// Tests of the client commands flows, top and tail against httptest fakes of
// the collector's HTTP API (the contract, not the real collector: the
// end-to-end tests do that).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/flowlog/flowlog/api"
)

// cliNow is the clock of every test: relative times count back from it.
var cliNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// cliRun is one command's outcome.
type cliRun struct {
	stdout, stderr string
	code           int
	err            error
}

// root is the client commands as the binary has them.
type root struct {
	Flows    FlowsCmd    `cmd:""`
	Top      TopCmd      `cmd:""`
	Tail     TailCmd     `cmd:""`
	Hosts    HostsCmd    `cmd:""`
	New      NewCmd      `cmd:""`
	Rejected RejectedCmd `cmd:""`
}

// parseCLI parses args as main does (defaults, env, repeatable flags).
func parseCLI(t *testing.T, args ...string) *root {
	t.Helper()
	var c root
	p, err := kong.New(&c, kong.Name("flowlog"), kong.Exit(func(code int) { t.Fatalf("kong exited %d for %q", code, args) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse(args); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return &c
}

// testIO captures what a command prints and the status it exits with.
func testIO(stdout, stderr *bytes.Buffer, code *int) cliIO {
	*code = exitOK
	return cliIO{stdout: stdout, stderr: stderr, now: func() time.Time { return cliNow }, loc: time.UTC}
}

// runCLI parses args and calls the chosen command's Run.
func runCLI(t *testing.T, args ...string) cliRun {
	t.Helper()
	return runCLICtx(t, nil, args...)
}

// runCLICtx is runCLI, with tail run under ctx when ctx is not nil.
func runCLICtx(t *testing.T, ctx context.Context, args ...string) cliRun {
	t.Helper()
	return runCLIWith(t, ctx, false, args...)
}

// runCLIWith is runCLICtx, with stdout a terminal when terminal is true.
func runCLIWith(t *testing.T, ctx context.Context, terminal bool, args ...string) cliRun {
	t.Helper()
	c := parseCLI(t, args...)
	var out, errb bytes.Buffer
	var r cliRun
	io := testIO(&out, &errb, &r.code)
	io.terminal = terminal
	switch args[0] {
	case "flows":
		c.Flows.io = io
		r.err = c.Flows.Run(context.Background())
	case "top":
		c.Top.io = io
		r.err = c.Top.Run(context.Background())
	case "hosts":
		c.Hosts.io = io
		r.err = c.Hosts.Run(context.Background())
	case "new":
		c.New.io = io
		r.err = c.New.Run(context.Background())
	case "rejected":
		c.Rejected.io = io
		r.err = c.Rejected.Run(context.Background())
	case "tail":
		c.Tail.io = io
		c.Tail.firstBackoff = 10 * time.Millisecond
		if ctx == nil {
			ctx = context.Background()
		}
		r.err = c.Tail.Run(ctx)
	default:
		t.Fatalf("not a client command: %s", args[0])
	}
	r.stdout, r.stderr = out.String(), errb.String()
	r.code = exitCode(r.err)
	if (r.code == exitOK) != (r.err == nil) {
		t.Fatalf("exit code %d but Run returned %v", r.code, r.err)
	}
	return r
}

// fakeAPI is an httptest server that records the requests it got.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func newFakeAPI(t *testing.T, h http.HandlerFunc) *fakeAPI {
	f := &fakeAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Clone(context.Background()))
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) uris() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		out = append(out, r.URL.RequestURI())
	}
	return out
}

// under are the requests (as uris) whose path is path.
func (f *fakeAPI) under(path string) []string {
	var out []string
	for _, u := range f.uris() {
		if strings.HasPrefix(u, path+"?") || u == path {
			out = append(out, u)
		}
	}
	return out
}

func (f *fakeAPI) req(i int) *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[i]
}

func writeEnvelope(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

// flowsAnswer is the API's answer with rows and, unless next is nil, Next.
func flowsAnswer(rows []api.FlowRow, next *string) map[string]any {
	if rows == nil {
		rows = []api.FlowRow{}
	}
	m := map[string]any{"Code": 200, "Message": "flows retrieved successfully", "Response": rows}
	if next != nil {
		m["Next"] = *next
	}
	return m
}

func ptr[T any](v T) *T { return &v }

var epochUTC = time.Unix(0, 0).UTC()

// sampleRows are an active IPv4 flow without names and a finished one with
// names.
func sampleRows() []api.FlowRow {
	start := time.Date(2026, 11, 24, 11, 58, 0, 0, time.UTC)
	return []api.FlowRow{{
		FlowID: "f-1", HostID: "h-1", HostName: "web-1", NetworkID: "mesh1",
		Protocol: 6, SrcPort: 51234, DstPort: 443, Direction: "egress",
		SrcIP: "10.10.0.5", SrcType: "node", DstIP: "10.10.0.7", DstType: "node",
		StartTs: start, EndTs: epochUTC, BytesSent: 1234, BytesRecv: 3456789,
		PacketsSent: 10, PacketsRecv: 2400, Version: start, Active: true,
	}, {
		FlowID: "f-2", HostID: "h-2", HostName: "", NetworkID: "mesh1",
		Protocol: 17, SrcPort: 5353, DstPort: 53, Direction: "ingress",
		SrcIP: "10.10.8.3", SrcType: "user", SrcEntityID: "alice", SrcEntityName: "alice@example.com",
		DstIP: "10.10.0.7", DstType: "node", DstEntityID: "n-7", DstEntityName: "db-1",
		StartTs: start.Add(-200 * time.Second), EndTs: start, BytesSent: 999, BytesRecv: 0,
		PacketsSent: 3, PacketsRecv: 0, Version: start, Active: false,
	}}
}

func TestCLIFlowsQueryFromFlags(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, flowsAnswer(nil, ptr("")))
	})
	r := runCLI(t, "flows", "--server", f.URL, "--token", "s3cret",
		"--network", "mesh1", "--from", "1h", "--to", "2026-11-24T12:30:00+01:00",
		"--src-type", "node", "--src-type", "user,extclient", "--dst-type", "external",
		"--src-entity", "n-1", "--dst-entity", "n-7", "--protocol", "tcp", "--protocol", "17",
		"--host", "h-1", "--state", "finished", "--ip", "10.10.0.0/16", "--port", "443",
		"--direction", "egress", "--participant", "alice", "--limit", "50")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want := "/api/v1/flows?direction=egress&dst_entity_id=n-7&dst_type=external" +
		"&from=2026-11-24T11%3A00%3A00Z&ip=10.10.0.0%2F16&network_id=mesh1&node_id=h-1" +
		"&participant=alice&per_page=50&port=443&protocol=tcp&protocol=17" +
		"&src_entity_id=n-1&src_type=node&src_type=user&src_type=extclient&state=finished" +
		"&to=2026-11-24T11%3A30%3A00Z"
	if got := f.under("/api/v1/flows"); len(got) != 1 || got[0] != want {
		t.Errorf("requests:\n got %q\nwant %q", got, want)
	}
	// Each id was looked up as a possible name (none is one: kept as given).
	if got := f.under("/api/v1/suggest"); len(got) != 4 || !strings.Contains(got[0], "q=h-1") {
		t.Errorf("suggest requests %q", got)
	}
	if a := f.req(len(f.uris()) - 1).Header.Get("Authorization"); a != "Bearer s3cret" {
		t.Errorf("Authorization = %q", a)
	}

	// Without flags: only per_page, no Authorization; --server without a
	// scheme means http; a path prefix is kept.
	f2 := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, flowsAnswer(nil, ptr("")))
	})
	if r := runCLI(t, "flows", "--server", strings.TrimPrefix(f2.URL, "http://")+"/flowlog/"); r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	if got := f2.uris(); len(got) != 1 || got[0] != "/flowlog/api/v1/flows?per_page=100" {
		t.Errorf("requests %q", got)
	}
	if a, ok := f2.req(0).Header["Authorization"]; ok {
		t.Errorf("Authorization = %q, want none", a)
	}
}

func TestCLIFlowsRelativeFrom(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"30m", "", "from=2026-11-24T11%3A30%3A00Z"},
		{"1h", "now", "from=2026-11-24T11%3A00%3A00Z&per_page=100&to=2026-11-24T12%3A00%3A00Z"},
		{"7d", "", "from=2026-11-17T12%3A00%3A00Z"},
		{"=-90m", "30m", "from=2026-11-24T10%3A30%3A00Z&per_page=100&to=2026-11-24T11%3A30%3A00Z"},
		{"2026-11-24T10:00:00.5Z", "", "from=2026-11-24T10%3A00%3A00.5Z"},
		{"2026-11-24", "2026-11-24 10:00:05", "from=2026-11-24T00%3A00%3A00Z&per_page=100&to=2026-11-24T10%3A00%3A05Z"},
	} {
		f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
			writeEnvelope(w, 200, flowsAnswer(nil, ptr("")))
		})
		args := []string{"flows", "--server", f.URL, "--from" + tc.from}
		if !strings.HasPrefix(tc.from, "=") {
			args = []string{"flows", "--server", f.URL, "--from", tc.from}
		}
		if tc.to != "" {
			args = append(args, "--to", tc.to)
		}
		if r := runCLI(t, args...); r.code != 0 {
			t.Fatalf("%v: code %d: %s", args, r.code, r.stderr)
		}
		if got := f.uris(); len(got) != 1 || !strings.HasPrefix(got[0], "/api/v1/flows?"+tc.want) {
			t.Errorf("--from %s --to %s: %q, want prefix ?%s", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestCLIFlowsTable(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, flowsAnswer(sampleRows(), ptr("")))
	})
	r := runCLI(t, "flows", "--server", f.URL)
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	// Aligned, sizes right-aligned in IEC units, times with milliseconds.
	want := "" +
		"START                    DURATION  HOST   PROTO  SRC                     DIR  DST               SENT     RECV  STATE\n" +
		"2026-11-24 11:58:00.000  active    web-1  tcp    10.10.0.5:51234         →    10.10.0.7:443  1.2 KiB  3.3 MiB  active\n" +
		"2026-11-24 11:54:40.000  3m20s     h-2    udp    alice@example.com:5353  ←    db-1:53          999 B      0 B  finished\n"
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	// Local time is the zone's; IPv6 addresses get brackets; control
	// characters in names cannot reach the terminal.
	rows := sampleRows()[:1]
	rows[0].SrcIP, rows[0].DstIP = "fd00::5", "fd00::7"
	rows[0].HostName = "evil\x1b[2Jhost\tx"
	var buf bytes.Buffer
	if err := writeFlowTable(&buf, rows, time.FixedZone("CET", 3600), false); err != nil {
		t.Fatal(err)
	}
	wantLine := "2026-11-24 12:58:00.000  active    evil?[2Jhost?x  tcp    [fd00::5]:51234  →    [fd00::7]:443  1.2 KiB  3.3 MiB  active\n"
	if lines := strings.SplitAfter(buf.String(), "\n"); len(lines) < 2 || lines[1] != wantLine {
		t.Errorf("row:\n%q\nwant\n%q", buf.String(), wantLine)
	}

	// Empty: the header alone, status 0.
	f2 := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 200, flowsAnswer(nil, ptr(""))) })
	r = runCLI(t, "flows", "--server", f2.URL)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "START") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("empty: code %d, %q", r.code, r.stdout)
	}
}

func TestCLIFlowsJSONOutputs(t *testing.T) {
	rows := sampleRows()
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, flowsAnswer(rows, ptr("")))
	})
	r := runCLI(t, "flows", "--server", f.URL, "--output", "json")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want, _ := json.MarshalIndent(rows, "", "  ")
	if r.stdout != string(want)+"\n" {
		t.Errorf("json:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, "flows", "--server", f.URL, "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("jsonl: %d lines: %q", len(lines), r.stdout)
	}
	for i, l := range lines {
		w, _ := json.Marshal(rows[i])
		if l != string(w) {
			t.Errorf("jsonl line %d:\n%s\nwant\n%s", i, l, w)
		}
	}

	// Empty: [] and nothing.
	f2 := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 200, flowsAnswer(nil, ptr(""))) })
	if r := runCLI(t, "flows", "--server", f2.URL, "-o", "json"); r.stdout != "[]\n" || r.code != 0 {
		t.Errorf("empty json: %d %q", r.code, r.stdout)
	}
	if r := runCLI(t, "flows", "--server", f2.URL, "-o", "jsonl"); r.stdout != "" || r.code != 0 {
		t.Errorf("empty jsonl: %d %q", r.code, r.stdout)
	}
}

// pagedFlows serves total synthetic flows by cursor (the cursor is the index
// of the next flow) or, when byNumber, by page number without Next.
func pagedFlows(t *testing.T, total int, byNumber bool) *fakeAPI {
	return newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		per, _ := strconv.Atoi(q.Get("per_page"))
		from := 0
		if c := q.Get("cursor"); c != "" {
			from, _ = strconv.Atoi(strings.TrimPrefix(c, "c"))
		} else if p := q.Get("page"); p != "" {
			n, _ := strconv.Atoi(p)
			from = (n - 1) * per
		}
		var rows []api.FlowRow
		for i := from; i < min(from+per, total); i++ {
			rows = append(rows, api.FlowRow{FlowID: fmt.Sprintf("f-%d", i), Protocol: 6,
				StartTs: cliNow.Add(-time.Duration(i) * time.Second), EndTs: epochUTC, Active: true})
		}
		var next *string
		if !byNumber {
			next = ptr("")
			if from+len(rows) < total {
				next = ptr(fmt.Sprintf("c%d", from+len(rows)))
			}
		}
		writeEnvelope(w, 200, flowsAnswer(rows, next))
	})
}

func flowIDs(t *testing.T, jsonl string) []string {
	t.Helper()
	var ids []string
	for _, l := range strings.Split(strings.TrimSuffix(jsonl, "\n"), "\n") {
		if l == "" {
			continue
		}
		var r api.FlowRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.FlowID)
	}
	return ids
}

func checkSequential(t *testing.T, ids []string, n int) {
	t.Helper()
	if len(ids) != n {
		t.Fatalf("%d flows, want %d", len(ids), n)
	}
	for i, id := range ids {
		if id != fmt.Sprintf("f-%d", i) {
			t.Fatalf("flow %d is %s", i, id)
		}
	}
}

func TestCLIFlowsCursorPaging(t *testing.T) {
	f := pagedFlows(t, 5000, false)
	r := runCLI(t, "flows", "--server", f.URL, "--limit", "2500", "-o", "jsonl", "--protocol", "tcp")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	checkSequential(t, flowIDs(t, r.stdout), 2500)
	want := []string{
		"/api/v1/flows?per_page=1000&protocol=tcp",
		"/api/v1/flows?cursor=c1000&per_page=1000&protocol=tcp",
		"/api/v1/flows?cursor=c2000&per_page=500&protocol=tcp",
	}
	if got := f.uris(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// --all follows Next to its end; the table holds every row.
	f = pagedFlows(t, 2100, false)
	r = runCLI(t, "flows", "--server", f.URL, "--all", "-o", "json")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	var all []api.FlowRow
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil || len(all) != 2100 {
		t.Fatalf("--all: %d rows, %v", len(all), err)
	}
	if got := f.uris(); len(got) != 3 || got[2] != "/api/v1/flows?cursor=c2000&per_page=1000" {
		t.Errorf("--all requests: %q", got)
	}

	// A server without Next (Netmaker) is paged by number, per_page fixed.
	f = pagedFlows(t, 5000, true)
	r = runCLI(t, "flows", "--server", f.URL, "--limit", "1500", "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	checkSequential(t, flowIDs(t, r.stdout), 1500)
	if got := f.uris(); strings.Join(got, " ") != "/api/v1/flows?per_page=1000 /api/v1/flows?page=2&per_page=1000" {
		t.Errorf("page requests: %q", got)
	}

	// A server repeating its cursor is not followed forever.
	f = newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, flowsAnswer(sampleRows(), ptr("same")))
	})
	if r := runCLI(t, "flows", "--server", f.URL, "--all"); r.code != exitUnavailable || !strings.Contains(r.stderr, "same cursor") {
		t.Errorf("repeated cursor: code %d, %q", r.code, r.stderr)
	}
}

func TestCLITopTable(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, map[string]any{"Code": 200, "Message": "ok", "Response": []map[string]any{
			{"type": "node", "id": "n-7", "name": "db-1", "ip": "", "bytes": 3456789012, "packets": 2500000, "flows": 1200},
			{"type": "user", "id": "alice", "name": "", "ip": "", "bytes": 1500, "packets": 12, "flows": 3},
			{"type": "", "id": "", "name": "", "ip": "203.0.113.9", "bytes": 0, "packets": 0, "flows": 1},
		}})
	})
	r := runCLI(t, "top", "--server", f.URL, "--network", "mesh1", "--from", "24h")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	// Packets and flows are counted in k, M, G, as on the page.
	want := "" +
		"RANK  WHO             BYTES  PACKETS  FLOWS\n" +
		"   1  db-1 (node)   3.2 GiB     2.5M   1.2k\n" +
		"   2  alice (user)  1.5 KiB       12      3\n" +
		"   3  203.0.113.9       0 B        0      1\n"
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}
	wantURI := "/api/v1/aggregates/top?by=participant&from=2026-11-23T12%3A00%3A00Z&limit=10&metric=bytes&network_id=mesh1&side=any"
	if got := f.uris(); len(got) != 1 || got[0] != wantURI {
		t.Errorf("request %q\nwant %q", got, wantURI)
	}

	r = runCLI(t, "top", "--server", f.URL, "--by", "ip", "--metric", "flows", "--side", "dst", "--limit", "3", "-o", "jsonl")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.HasPrefix(r.stdout, `{"bytes":3456789012,"flows":1200,"id":"n-7"`) {
		t.Errorf("jsonl: %d %q", r.code, r.stdout)
	}
	if got := f.uris(); got[1] != "/api/v1/aggregates/top?by=ip&limit=3&metric=flows&side=dst" {
		t.Errorf("request %q", got[1])
	}

	empty := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, map[string]any{"Code": 200, "Message": "ok", "Response": []any{}})
	})
	if r := runCLI(t, "top", "--server", empty.URL, "--fail-empty"); r.code != exitEmpty || r.stdout != "RANK  WHO  BYTES  PACKETS  FLOWS\n" {
		t.Errorf("--fail-empty: code %d, %q", r.code, r.stdout)
	}
	if r := runCLI(t, "top", "--server", empty.URL, "-o", "json"); r.code != 0 || r.stdout != "[]\n" {
		t.Errorf("empty json: code %d, %q", r.code, r.stdout)
	}
	if r := runCLI(t, "top", "--server", empty.URL, "--by", "host"); r.code != exitUsage || !strings.Contains(r.stderr, "--by") {
		t.Errorf("--by host: code %d, %q", r.code, r.stderr)
	}
}

// sseFlow is one flow event.
func sseFlow(t *testing.T, r api.FlowRow, id string) string {
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := "event: flow\n"
	if id != "" {
		s += "id: " + id + "\n"
	}
	return s + "data: " + string(b) + "\n\n"
}

// sseServer answers each stream connection with the next script, then
// holds the connection open until the client leaves (or closes it when the
// script ends with "CLOSE").
func sseServer(t *testing.T, scripts ...string) *fakeAPI {
	var mu sync.Mutex
	n := 0
	return newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/flows/stream" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		script := ""
		if n < len(scripts) {
			script = scripts[n]
		}
		n++
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		body, closeAfter := strings.CutSuffix(script, "CLOSE")
		w.Write([]byte(body))
		w.(http.Flusher).Flush()
		if closeAfter {
			return
		}
		<-r.Context().Done()
	})
}

func TestCLITailSSE(t *testing.T) {
	rows := sampleRows()
	f := sseServer(t, ": keepalive\n\n"+
		sseFlow(t, rows[0], "")+
		"event: lost\ndata: {\"lost\":3}\n\n"+
		": keepalive\n\n"+
		"event: other\ndata: ignored\n\n"+
		sseFlow(t, rows[1], "")+
		sseFlow(t, rows[0], ""))
	r := runCLI(t, "tail", "--server", f.URL, "--count", "2", "--network", "mesh1", "--protocol", "udp")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	// Aligned as the lines come: a column widens for a longer value.
	want := "" +
		"2026-11-24 11:58:00.000  active    web-1  tcp    10.10.0.5:51234  →    10.10.0.7:443  1.2 KiB  3.3 MiB  active\n" +
		"2026-11-24 11:54:40.000  3m20s     h-2    udp    alice@example.com:5353  ←    db-1:53          999 B      0 B  finished\n"
	if r.stdout != want {
		t.Errorf("lines:\n%s\nwant:\n%s", r.stdout, want)
	}
	if r.stderr != "-- lost 3 events (client too slow)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	if got := f.uris(); len(got) != 1 || got[0] != "/api/v1/flows/stream?network_id=mesh1&protocol=udp" {
		t.Errorf("requests %q", got)
	}
	if a := f.req(0).Header.Get("Accept"); a != "text/event-stream" {
		t.Errorf("Accept %q", a)
	}

	// jsonl: the event data, compact, one per line; multi-line data joined.
	b, _ := json.MarshalIndent(rows[1], "", " ")
	multi := "event: flow\ndata: " + strings.ReplaceAll(string(b), "\n", "\ndata: ") + "\n\n"
	f = sseServer(t, sseFlow(t, rows[0], "")+multi)
	r = runCLI(t, "tail", "--server", f.URL, "--count", "2", "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	if ids := flowIDs(t, r.stdout); strings.Join(ids, ",") != "f-1,f-2" {
		t.Errorf("jsonl ids %q from %q", ids, r.stdout)
	}
}

func TestCLITailReconnects(t *testing.T) {
	rows := sampleRows()
	// The first connection ends after one flow; the second resumes with
	// Last-Event-ID and delivers the next; a 500 in between is retried.
	f := sseServer(t, sseFlow(t, rows[0], "41")+"CLOSE", sseFlow(t, rows[1], "42"))
	r := runCLI(t, "tail", "--server", f.URL, "--count", "2", "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	if ids := flowIDs(t, r.stdout); strings.Join(ids, ",") != "f-1,f-2" {
		t.Errorf("ids %q", ids)
	}
	if !strings.Contains(r.stderr, "-- stream ended by the server; reconnecting in") {
		t.Errorf("stderr %q", r.stderr)
	}
	if len(f.uris()) != 2 || f.req(0).Header.Get("Last-Event-ID") != "" || f.req(1).Header.Get("Last-Event-ID") != "41" {
		t.Errorf("Last-Event-ID not resent")
	}

	// Server errors are retried too.
	var calls int
	var mu sync.Mutex
	f5 := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		c := calls
		mu.Unlock()
		if c <= 2 {
			writeEnvelope(w, 503, map[string]any{"Code": 503, "Message": "store unavailable"})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte(sseFlow(t, rows[0], "")))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	r = runCLI(t, "tail", "--server", f5.URL, "--count", "1")
	if r.code != 0 || strings.Count(r.stderr, "store unavailable; reconnecting") != 2 {
		t.Errorf("code %d, stderr %q", r.code, r.stderr)
	}

	// --no-reconnect: the end of the stream is status 3.
	f = sseServer(t, sseFlow(t, rows[0], "")+"CLOSE")
	r = runCLI(t, "tail", "--server", f.URL, "--no-reconnect")
	if r.code != exitUnavailable || strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stderr, "stream ended by the server") {
		t.Errorf("--no-reconnect: code %d, %q, %q", r.code, r.stdout, r.stderr)
	}

	// A silent stream is given up after --idle-timeout.
	f = sseServer(t, "")
	r = runCLI(t, "tail", "--server", f.URL, "--no-reconnect", "--idle-timeout", "100ms")
	if r.code != exitUnavailable || !strings.Contains(r.stderr, "silent for 100ms") {
		t.Errorf("idle: code %d, %q", r.code, r.stderr)
	}
}

func TestCLITailStopsOnCancel(t *testing.T) {
	// Cancelling (what SIGINT/SIGTERM do) ends tail with status 0, also
	// while it waits to reconnect.
	f := sseServer(t, sseFlow(t, sampleRows()[0], ""))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan cliRun)
	go func() { done <- runCLICtx(t, ctx, "tail", "--server", f.URL) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(f.uris()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case r := <-done:
		if r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("code %d, %q, %q", r.code, r.stdout, r.stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tail did not stop")
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- runCLICtx(t, ctx, "tail", "--server", "http://127.0.0.1:1") }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if r := <-done; r.code != 0 || !strings.Contains(r.stderr, "cannot reach the server") {
		t.Errorf("unreachable then cancelled: code %d, %q", r.code, r.stderr)
	}
}

func TestCLIExitCodes(t *testing.T) {
	bad := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 400, map[string]any{"Code": 400, "Message": `invalid protocol "x": must be a number`})
	})
	broken := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 500, map[string]any{"Code": 500, "Message": "error fetching flows: boom"})
	})
	plain404 := newFakeAPI(t, http.NotFound)
	garbage := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) })
	slow := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	empty := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, flowsAnswer(nil, ptr("")))
	})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"flows", "--server", bad.URL}, exitRefused, `server refused the request (400 Bad Request): invalid protocol "x": must be a number`},
		{[]string{"top", "--server", bad.URL}, exitRefused, `invalid protocol "x"`},
		{[]string{"tail", "--server", bad.URL}, exitRefused, `invalid protocol "x"`}, // 4xx is not retried
		{[]string{"tail", "--server", plain404.URL}, exitRefused, "404 Not Found): 404 page not found"},
		{[]string{"flows", "--server", broken.URL}, exitUnavailable, "server error (500 Internal Server Error): error fetching flows: boom"},
		{[]string{"top", "--server", broken.URL}, exitUnavailable, "boom"},
		{[]string{"tail", "--server", broken.URL, "--no-reconnect"}, exitUnavailable, "boom"},
		{[]string{"flows", "--server", down.URL}, exitUnavailable, "cannot reach the server"},
		{[]string{"top", "--server", down.URL}, exitUnavailable, "cannot reach the server"},
		{[]string{"tail", "--server", down.URL, "--no-reconnect"}, exitUnavailable, "cannot reach the server"},
		{[]string{"flows", "--server", garbage.URL}, exitUnavailable, "unreadable answer"},
		{[]string{"flows", "--server", slow.URL, "--timeout", "100ms"}, exitUnavailable, "within 100ms (--timeout)"},
		{[]string{"tail", "--server", slow.URL, "--timeout", "100ms", "--no-reconnect"}, exitUnavailable, "within 100ms (--timeout)"},
		{[]string{"flows", "--server", empty.URL, "--fail-empty"}, exitEmpty, "no flows matched"},
		{[]string{"flows", "--server", empty.URL}, exitOK, ""},
		// Bad flags: status 1, the flag named, nothing sent.
		{[]string{"flows", "--server", empty.URL, "--port", "http"}, exitUsage, "--port"},
		{[]string{"flows", "--server", empty.URL, "--port", "70000"}, exitUsage, "--port"},
		// As the server: port 0 would silently mean "any port" there.
		{[]string{"flows", "--server", empty.URL, "--port", "0"}, exitUsage, `--port: "0" is not a port number 1-65535`},
		{[]string{"tail", "--server", empty.URL, "--to", "now"}, exitUsage, "--to: tail follows flows as they come and would wait forever"},
		{[]string{"tail", "--server", empty.URL, "--until", "2026-11-25"}, exitUsage, "--to: tail follows"},
		{[]string{"tail", "--server", empty.URL, "--last", "x"}, exitUsage, "--last"},
		{[]string{"flows", "--server", empty.URL, "--color", "yes"}, exitUsage, "--color"},
		{[]string{"hosts", "--server", empty.URL, "--quiet", "soon"}, exitUsage, "--quiet"},
		{[]string{"new", "--server", empty.URL, "--window", "0s"}, exitUsage, "--window"},
		{[]string{"new", "--server", empty.URL, "--limit", "0"}, exitUsage, "--limit"},
		{[]string{"rejected", "--server", empty.URL, "--reason", "bad"}, exitUsage, "--reason"},
		{[]string{"rejected", "--server", empty.URL, "--limit", "5000"}, exitUsage, "--limit"},
		{[]string{"rejected", "--server", empty.URL, "--page", "0"}, exitUsage, "--page"},
		{[]string{"flows", "--server", empty.URL, "--protocol", "tcp,quic"}, exitUsage, `--protocol: unknown protocol "quic"`},
		{[]string{"flows", "--server", empty.URL, "--from", "yesterday"}, exitUsage, "--from"},
		{[]string{"flows", "--server", empty.URL, "--from", "1h", "--to", "2h"}, exitUsage, "--from"},
		{[]string{"flows", "--server", empty.URL, "--to", "2026-13-01"}, exitUsage, "--to"},
		{[]string{"flows", "--server", empty.URL, "--src-type", "robot"}, exitUsage, "--src-type"},
		{[]string{"flows", "--server", empty.URL, "--dst-type", "node,nodes"}, exitUsage, "--dst-type"},
		{[]string{"flows", "--server", empty.URL, "--state", "open"}, exitUsage, "--state"},
		{[]string{"flows", "--server", empty.URL, "--ip", "10.0.0.300"}, exitUsage, "--ip"},
		{[]string{"flows", "--server", empty.URL, "--direction", "in"}, exitUsage, "--direction"},
		{[]string{"flows", "--server", empty.URL, "--user", "alice", "--src-type", "node"}, exitUsage, "--user"},
		{[]string{"flows", "--server", empty.URL, "--limit", "0"}, exitUsage, "--limit"},
		{[]string{"flows", "--server", empty.URL, "--output", "yaml"}, exitUsage, "--output"},
		{[]string{"flows", "--server", empty.URL, "--timeout", "soon"}, exitUsage, "--timeout"},
		{[]string{"flows", "--server", "ftp://x"}, exitUsage, "--server"},
		{[]string{"top", "--server", empty.URL, "--limit=-1"}, exitUsage, "--limit"},
		{[]string{"top", "--server", empty.URL, "--metric", "bits"}, exitUsage, "--metric"},
		{[]string{"top", "--server", empty.URL, "--side", "both"}, exitUsage, "--side"},
		{[]string{"tail", "--server", empty.URL, "--count", "x"}, exitUsage, "--count"},
		{[]string{"tail", "--server", empty.URL, "--idle-timeout=-1s"}, exitUsage, "--idle-timeout"},
	} {
		before := len(empty.uris())
		r := runCLI(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%q: code %d, stderr %q; want %d with %q", tc.args, r.code, r.stderr, tc.code, tc.stderr)
		}
		if tc.code == exitUsage && len(empty.uris()) != before {
			t.Errorf("%q: sent a request despite a bad flag", tc.args)
		}
		var ec interface{ ExitCode() int }
		if tc.code != exitOK && (!errors.As(r.err, &ec) || ec.ExitCode() != tc.code) {
			t.Errorf("%q: Run returned %v", tc.args, r.err)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	// The page's units and rounding (web/src/format.ts).
	for n, want := range map[uint64]string{
		0: "0 B", 999: "999 B", 1023: "1023 B", 1024: "1.0 KiB", 1234: "1.2 KiB", 10_188: "9.9 KiB", 10_189: "10 KiB",
		999_949: "977 KiB", 3_456_789: "3.3 MiB", 1 << 30: "1.0 GiB", 2_500_000_000_000: "2.3 TiB",
		18_446_744_073_709_551_615: "16 EiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {-time.Second, "0s"}, {350 * time.Millisecond, "350ms"}, {time.Second, "1s"},
		{1500 * time.Millisecond, "1.5s"}, {42 * time.Second, "42s"}, {59960 * time.Millisecond, "1m"},
		{200 * time.Second, "3m20s"}, {3 * time.Minute, "3m"}, {2*time.Hour + 5*time.Minute + 10*time.Second, "2h5m"},
		{2 * time.Hour, "2h"}, {59*time.Minute + 59*time.Second + 600*time.Millisecond, "1h"},
		{76 * time.Hour, "3d4h"}, {48 * time.Hour, "2d"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// The CLI prints and accepts what the API and the agent's config do (the
// domain's one table): gre was once accepted by the agent, refused by the
// API and printed as 47 here.
func TestProtocolsAreTheDomains(t *testing.T) {
	for p, want := range map[uint16]string{6: "tcp", 47: "gre", 58: "icmpv6", 132: "sctp", 253: "253"} {
		if got := protocolName(p); got != want {
			t.Errorf("protocolName(%d) = %q, want %q", p, got, want)
		}
	}
	var f filterFlags
	f.Match.Protocol = []string{"GRE", "sctp"}
	if _, err := f.query(time.Now(), time.UTC); err != nil {
		t.Errorf("--protocol GRE,sctp refused: %v", err)
	}
}

// --sort and --order reach the server on every page (the server sorts and
// its cursors continue that order); bad values are refused before asking.
func TestCLIFlowsSort(t *testing.T) {
	f := pagedFlows(t, 1500, false)
	r := runCLI(t, "flows", "--server", f.URL, "--all", "--sort", "bytes", "--order", "asc", "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want := "/api/v1/flows?order=asc&per_page=1000&sort=bytes /api/v1/flows?cursor=c1000&order=asc&per_page=1000&sort=bytes"
	if got := f.uris(); strings.Join(got, " ") != want {
		t.Errorf("requests %q, want %q", got, want)
	}
	for _, tc := range []struct{ args, msg string }{
		{"--sort packets", `--sort: "packets" is not one of start, bytes, duration`},
		{"--order up", `--order: "up" is not asc or desc`},
	} {
		f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) { t.Errorf("asked %s", r.URL) })
		r := runCLI(t, append([]string{"flows", "--server", f.URL}, strings.Fields(tc.args)...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%s: code %d %q, want %d %q", tc.args, r.code, r.stderr, exitUsage, tc.msg)
		}
	}
}

// top --by prefix lists external networks by prefix; --src-ip and --dst-ip
// filter by one side's address, checked as the server checks them.
func TestCLITopByPrefixAndSideIPs(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, map[string]any{"Code": 200, "Message": "ok", "Response": []map[string]any{
			{"type": "", "id": "", "name": "", "ip": "", "prefix": "203.0.113.0/24", "bytes": 3072, "packets": 4, "flows": 2},
			{"type": "", "id": "", "name": "", "ip": "", "prefix": "2001:db8:1::/48", "bytes": 1024, "packets": 2, "flows": 1},
		}})
	})
	r := runCLI(t, "top", "--server", f.URL, "--by", "prefix", "--prefix4", "16", "--dst-ip", "203.0.0.0/8", "--src-ip", "10.0.0.7")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want := "" +
		"RANK  WHO                BYTES  PACKETS  FLOWS\n" +
		"   1  203.0.113.0/24   3.0 KiB        4      2\n" +
		"   2  2001:db8:1::/48  1.0 KiB        2      1\n"
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}
	wantURI := "/api/v1/aggregates/top?by=prefix&dst_ip=203.0.0.0%2F8&limit=10&metric=bytes&prefix4=16&side=any&src_ip=10.0.0.7"
	if got := f.uris(); len(got) != 1 || got[0] != wantURI {
		t.Errorf("request %q\nwant %q", got, wantURI)
	}
	for _, tc := range []struct{ args, msg string }{
		{"--src-ip 10.0.0.0/33", `--src-ip: "10.0.0.0/33" is neither an IP address nor a CIDR`},
		{"--dst-ip web-1", `--dst-ip: "web-1" is neither an IP address nor a CIDR`},
		{"--by prefix --prefix4 33", `--prefix4: 33 is longer than an address (at most 32)`},
		{"--prefix6 64", `--prefix6: only with --by prefix`},
	} {
		r := runCLI(t, append([]string{"top", "--server", f.URL}, strings.Fields(tc.args)...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%s: code %d %q, want %q", tc.args, r.code, r.stderr, tc.msg)
		}
	}
}
