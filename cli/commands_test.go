package cli

// Tests of what issue 13 asked of the CLI (tail --last, --since/--until,
// colour, names for ids, the short unknown-flag error) and of the hosts,
// new and rejected commands, against httptest fakes of the API.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/flowlog/flowlog/api"
)

func TestCLISinceUntilAreFromTo(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, flowsAnswer(nil, ptr("")))
	})
	if r := runCLI(t, "flows", "--server", f.URL, "--since", "1h", "--until", "2026-11-24 11:30:00.250"); r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want := "/api/v1/flows?from=2026-11-24T11%3A00%3A00Z&per_page=100&to=2026-11-24T11%3A30%3A00.25Z"
	if got := f.uris(); len(got) != 1 || got[0] != want {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestCLITailLast(t *testing.T) {
	rows := sampleRows() // newest start first, as /api/v1/flows answers
	fresh := rows[0]
	fresh.FlowID, fresh.HostName, fresh.Version = "f-3", "gateway-eu-1", fresh.Version.Add(time.Second)
	// The stream repeats the newest backlog flow (same version: skipped),
	// then a new state of the older one (printed), then a new flow.
	again := rows[1]
	again.Version = again.Version.Add(time.Second)
	stream := sseServer(t, sseFlow(t, rows[0], "")+sseFlow(t, again, "")+sseFlow(t, fresh, ""))
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/flows":
			writeEnvelope(w, 200, flowsAnswer(rows, ptr("")))
		default:
			stream.Config.Handler.ServeHTTP(w, r)
		}
	})
	r := runCLI(t, "tail", "--server", f.URL, "--last", "2", "--count", "4", "--protocol", "tcp")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	// The last two, oldest first, aligned together; then the stream's.
	want := "" +
		"2026-11-24 11:54:40.000  3m20s     h-2    udp    alice@example.com:5353  ←    db-1:53          999 B      0 B  finished\n" +
		"2026-11-24 11:58:00.000  active    web-1  tcp    10.10.0.5:51234         →    10.10.0.7:443  1.2 KiB  3.3 MiB  active\n" +
		"2026-11-24 11:54:40.000  3m20s     h-2    udp    alice@example.com:5353  ←    db-1:53          999 B      0 B  finished\n" +
		"2026-11-24 11:58:00.000  active    gateway-eu-1  tcp    10.10.0.5:51234         →    10.10.0.7:443  1.2 KiB  3.3 MiB  active\n"
	if r.stdout != want {
		t.Errorf("lines:\n%s\nwant:\n%s", r.stdout, want)
	}
	if got := f.under("/api/v1/flows"); len(got) != 1 || got[0] != "/api/v1/flows?per_page=2&protocol=tcp" {
		t.Errorf("backlog requests %q", got)
	}

	// jsonl: the backlog's rows as sent, oldest first.
	stream = sseServer(t, sseFlow(t, fresh, ""))
	r = runCLI(t, "tail", "--server", f.URL, "--last", "2", "--count", "3", "-o", "jsonl")
	if ids := flowIDs(t, r.stdout); r.code != 0 || strings.Join(ids, ",") != "f-2,f-1,f-3" {
		t.Errorf("jsonl: code %d, ids %q", r.code, ids)
	}
}

func TestCLIColor(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, flowsAnswer(sampleRows(), ptr("")))
	})
	const esc = "\x1b["
	// Not a terminal (a pipe, a file): plain text, as before.
	if r := runCLIWith(t, nil, false, "flows", "--server", f.URL); strings.Contains(r.stdout, esc) {
		t.Errorf("pipe: colour codes in %q", r.stdout)
	}
	// A terminal: bold header, direction and state coloured, and the
	// columns still aligned (codes around padded text count for nothing).
	r := runCLIWith(t, nil, true, "flows", "--server", f.URL)
	lines := strings.Split(r.stdout, "\n")
	if !strings.HasPrefix(lines[0], "\x1b[1mSTART\x1b[0m                    \x1b[1mDURATION\x1b[0m") {
		t.Errorf("header %q", lines[0])
	}
	wantRow := "2026-11-24 11:58:00.000  active    web-1  tcp    10.10.0.5:51234         \x1b[36m→\x1b[0m    10.10.0.7:443  1.2 KiB  3.3 MiB  \x1b[32mactive\x1b[0m"
	if lines[1] != wantRow {
		t.Errorf("row\n%q\nwant\n%q", lines[1], wantRow)
	}
	if !strings.HasSuffix(lines[2], "\x1b[2mfinished\x1b[0m") {
		t.Errorf("finished row %q", lines[2])
	}
	// --color never, NO_COLOR and TERM=dumb turn it off on a terminal;
	// --color always turns it on anywhere, NO_COLOR or not.
	if r := runCLIWith(t, nil, true, "flows", "--server", f.URL, "--color", "never"); strings.Contains(r.stdout, esc) {
		t.Errorf("--color never: %q", r.stdout)
	}
	t.Setenv("NO_COLOR", "1")
	if r := runCLIWith(t, nil, true, "flows", "--server", f.URL); strings.Contains(r.stdout, esc) {
		t.Errorf("NO_COLOR: %q", r.stdout)
	}
	if r := runCLIWith(t, nil, false, "top", "--server", f.URL, "--color", "always"); !strings.HasPrefix(r.stdout, "\x1b[1mRANK\x1b[0m") {
		t.Errorf("--color always: %q", r.stdout)
	}
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "dumb")
	if r := runCLIWith(t, nil, true, "flows", "--server", f.URL); strings.Contains(r.stdout, esc) {
		t.Errorf("TERM=dumb: %q", r.stdout)
	}
	// JSON is never coloured.
	if r := runCLIWith(t, nil, true, "flows", "--server", f.URL, "--color", "always", "-o", "jsonl"); strings.Contains(r.stdout, esc) {
		t.Errorf("jsonl: %q", r.stdout)
	}
}

// suggestAPI answers /api/v1/suggest with sugg and everything else with an
// empty list.
func suggestAPI(t *testing.T, sugg []map[string]any) *fakeAPI {
	return newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/suggest" {
			var out []map[string]any
			for _, s := range sugg { // as the server: values or labels containing q
				q := strings.ToLower(r.URL.Query().Get("q"))
				if strings.Contains(strings.ToLower(s["value"].(string)), q) || strings.Contains(strings.ToLower(s["label"].(string)), q) {
					out = append(out, s)
				}
			}
			writeEnvelope(w, 200, map[string]any{"Code": 200, "Message": "ok", "Response": out})
			return
		}
		writeEnvelope(w, 200, flowsAnswer(nil, ptr("")))
	})
}

func TestCLINamesForIDs(t *testing.T) {
	f := suggestAPI(t, []map[string]any{
		{"field": "node_id", "value": "h-1", "label": "web-1", "flows": 9},
		{"field": "node_id", "value": "h-2", "label": "db", "flows": 5},
		{"field": "node_id", "value": "h-3", "label": "db", "flows": 2},
		{"field": "participant", "value": "n-7", "label": "Web-1", "type": "node", "flows": 3},
		{"field": "participant", "value": "alice", "label": "alice@example.com", "type": "user", "flows": 1},
	})
	r := runCLI(t, "flows", "--server", f.URL, "--host", "web-1", "--dst-entity", "web-1", "--participant", "alice@example.com", "--network", "mesh1")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want := "/api/v1/flows?dst_entity_id=n-7&network_id=mesh1&node_id=h-1&participant=alice&per_page=100"
	if got := f.under("/api/v1/flows"); len(got) != 1 || got[0] != want {
		t.Errorf("flows request %q, want %q", got, want)
	}
	// Suggestions are asked within the network (and time range) asked.
	if got := f.under("/api/v1/suggest"); len(got) != 3 || got[0] != "/api/v1/suggest?limit=200&network_id=mesh1&q=web-1" {
		t.Errorf("suggest requests %q", got)
	}

	// An id is an id; a UUID is not even looked up; an unknown name goes
	// as given (the server finds nothing).
	f = suggestAPI(t, []map[string]any{{"field": "node_id", "value": "web-1", "label": "h-1", "flows": 1},
		{"field": "node_id", "value": "h-1", "label": "web-1", "flows": 1}})
	runCLI(t, "top", "--server", f.URL, "--host", "web-1", "--src-entity", "0b7d3c1e-9f41-4d5c-8a40-6f4e2b1c9d00", "--participant", "nobody")
	if got := f.under("/api/v1/aggregates/top"); len(got) != 1 || !strings.Contains(got[0], "node_id=web-1&") ||
		!strings.Contains(got[0], "participant=nobody") || !strings.Contains(got[0], "src_entity_id=0b7d3c1e-9f41-4d5c-8a40-6f4e2b1c9d00") {
		t.Errorf("top request %q", got)
	}
	if got := f.under("/api/v1/suggest"); len(got) != 2 {
		t.Errorf("suggest requests %q: want none for the UUID", got)
	}

	// A name of two hosts: status 1, both ids named, nothing else asked.
	f = suggestAPI(t, []map[string]any{{"field": "node_id", "value": "h-2", "label": "db", "flows": 5},
		{"field": "node_id", "value": "h-3", "label": "db", "flows": 2}})
	r = runCLI(t, "flows", "--server", f.URL, "--host", "db")
	if r.code != exitUsage || !strings.Contains(r.stderr, `flowlog flows: --host: "db" names 2 hosts (h-2, h-3); give the id`) {
		t.Errorf("ambiguous: code %d, %q", r.code, r.stderr)
	}
	if got := f.under("/api/v1/flows"); len(got) != 0 {
		t.Errorf("asked for flows with an ambiguous name: %q", got)
	}

	// A server without suggestions (Netmaker, older collectors): as given.
	old := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/suggest" {
			http.NotFound(w, r)
			return
		}
		writeEnvelope(w, 200, flowsAnswer(nil, ptr("")))
	})
	if r := runCLI(t, "flows", "--server", old.URL, "--host", "web-1"); r.code != 0 || len(old.under("/api/v1/flows")) != 1 ||
		!strings.Contains(old.under("/api/v1/flows")[0], "node_id=web-1") {
		t.Errorf("no suggest: code %d, %q, %q", r.code, r.stderr, old.uris())
	}
}

// An unknown flag is one line naming the command and kong's guess, and
// where the help is: not the whole help. Exit status 1.
func TestCLIUnknownFlagIsShort(t *testing.T) {
	var c root
	p, err := kong.New(&c, kong.Name("flowlog"), kong.Exit(func(code int) { t.Fatalf("kong exited %d", code) }))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"flows", "--hots", "web-1"}, "flowlog flows: unknown flag --hots, did you mean \"--host\"?\nsee 'flowlog flows --help'\n"},
		{[]string{"tail", "--bogus"}, "flowlog tail: unknown flag --bogus\nsee 'flowlog tail --help'\n"},
		{[]string{"flowz"}, "flowlog: unexpected argument flowz, did you mean \"flows\"?\nsee 'flowlog --help'\n"},
		{[]string{"top", "--limit"}, "flowlog top: --limit: needs a value\nsee 'flowlog top --help'\n"},
	} {
		_, err := p.Parse(tc.args)
		if err == nil {
			t.Fatalf("%q parsed", tc.args)
		}
		var buf bytes.Buffer
		if code := ParseFailed(&buf, err); code != exitUsage || buf.String() != tc.want {
			t.Errorf("%q: status %d,\n%q\nwant\n%q", tc.args, code, buf.String(), tc.want)
		}
	}
}

func TestCLIHosts(t *testing.T) {
	last := time.Date(2026, 11, 24, 11, 59, 58, 123e6, time.UTC)
	hosts := []map[string]any{
		{"host_id": "h-2", "host_name": "db-1", "networks": []string{"mesh1"}, "last_report": "2026-11-24T11:40:00.000Z", "quiet": true,
			"events": 10, "events_per_second": 0.000115, "flows": 6, "active": 2, "bytes": 5 << 20, "rejected": 3},
		{"host_id": "h-1", "host_name": "web-1", "networks": []string{"mesh1"}, "last_report": last.Format(time.RFC3339Nano), "quiet": false,
			"events": 2_400_000, "events_per_second": 27.78, "flows": 1_260_000, "active": 1500, "bytes": 3 << 30, "rejected": 0,
			"agents": []map[string]any{
				{"generation": "v1.5+", "agent": "flowlog-agent/v1.2.3 grpc-go/1.70.0", "last_seen": last.Format(time.RFC3339Nano)},
				{"generation": "v1.4", "agent": "grpc-go/1.64.0", "last_seen": "2026-11-24T10:00:00.000Z"}}},
	}
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, map[string]any{"Code": 200, "Message": "ok", "Response": hosts})
	})
	r := runCLI(t, "hosts", "--server", f.URL, "--network", "mesh1", "--since", "1h", "--quiet", "10m")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want := "" +
		"HOST   ID   STATE  LAST REPORT               EV/S  FLOWS  OPEN    BYTES  REJECTED  AGENT\n" +
		"db-1   h-2  quiet  2026-11-24 11:40:00.000  <0.01      6     2  5.0 MiB         3  -\n" +
		"web-1  h-1  ok     2026-11-24 11:59:58.123   27.8   1.3M  1.5k  3.0 GiB         0  v1.5+ flowlog-agent/v1.2.3, v1.4 grpc-go/1.64.0\n"
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}
	if got := f.uris(); len(got) != 1 || got[0] != "/api/v1/hosts?from=2026-11-24T11%3A00%3A00Z&network_id=mesh1&quiet=10m" {
		t.Errorf("requests %q", got)
	}
	// --fail-quiet: status 4, the quiet hosts named, the table printed.
	r = runCLI(t, "hosts", "--server", f.URL, "--fail-quiet")
	if r.code != exitEmpty || r.stderr != "flowlog hosts: quiet: db-1\n" || r.stdout != want {
		t.Errorf("--fail-quiet: code %d, %q", r.code, r.stderr)
	}
	// The quiet mark stands out on a terminal.
	r = runCLIWith(t, nil, true, "hosts", "--server", f.URL)
	if !strings.Contains(r.stdout, "\x1b[31;1mquiet\x1b[0m") || !strings.Contains(r.stdout, "\x1b[33m3\x1b[0m") {
		t.Errorf("colour: %q", r.stdout)
	}
	r = runCLI(t, "hosts", "--server", f.URL, "-o", "jsonl")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `"quiet":true`) {
		t.Errorf("jsonl: %q", r.stdout)
	}
}

func TestCLINew(t *testing.T) {
	answer := map[string]any{"from": "2026-11-23T12:00:00.000Z", "to": "2026-11-24T12:00:00.000Z", "baseline_from": "2026-11-16T12:00:00.000Z",
		"pairs": []map[string]any{
			{"src": map[string]any{"type": "user", "id": "alice", "name": "alice@example.com", "ip": "10.10.8.3"},
				"dst":      map[string]any{"type": "node", "id": "n-7", "name": "db-1", "ip": "10.10.0.7"},
				"dst_port": 5432, "protocol": 6, "first": "2026-11-24T09:15:02.250Z", "last": "2026-11-24T11:00:00.000Z",
				"bytes": 123456, "packets": 900, "flows": 12},
			{"src": map[string]any{"type": "node", "id": "n-1", "name": "", "ip": "10.10.0.5"},
				"dst":      map[string]any{"type": "external", "id": "", "name": "", "ip": "203.0.113.9"},
				"dst_port": 0, "protocol": 1, "first": "2026-11-24T10:00:00.000Z", "last": "2026-11-24T10:00:00.000Z",
				"bytes": 84, "packets": 1, "flows": 1},
		}}
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, map[string]any{"Code": 200, "Message": "ok", "Response": answer})
	})
	r := runCLI(t, "new", "--server", f.URL, "--window", "24h", "--baseline", "7d", "--limit", "50", "--dst-type", "node,external", "--network", "mesh1")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want := "" +
		"New from 2026-11-23 12:00:00.000 to 2026-11-24 12:00:00.000, not seen since 2026-11-16 12:00:00.000\n" +
		"#  SOURCE                    DESTINATION             PORT/PROTO  FIRST SEEN               FLOWS    BYTES\n" +
		"1  alice@example.com (user)  db-1 (node)             5432/tcp    2026-11-24 09:15:02.250     12  121 KiB\n" +
		"2  n-1 (node)                203.0.113.9 (external)  icmp        2026-11-24 10:00:00.000      1     84 B\n"
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}
	wantURI := "/api/v1/new?baseline=7d&dst_type=node&dst_type=external&limit=50&network_id=mesh1&window=24h"
	if got := f.uris(); len(got) != 1 || got[0] != wantURI {
		t.Errorf("requests %q\nwant %q", got, wantURI)
	}
	r = runCLI(t, "new", "--server", f.URL, "--fail-new")
	if r.code != exitEmpty || r.stderr != "flowlog new: new pairs found: 2\n" {
		t.Errorf("--fail-new: code %d, %q", r.code, r.stderr)
	}
	// json: the whole answer (window and pairs); jsonl: one pair a line.
	r = runCLI(t, "new", "--server", f.URL, "-o", "json")
	var got struct {
		BaselineFrom string            `json:"baseline_from"`
		Pairs        []json.RawMessage `json:"pairs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.BaselineFrom != "2026-11-16T12:00:00.000Z" || len(got.Pairs) != 2 {
		t.Errorf("json: %v %q", err, r.stdout)
	}
	if r = runCLI(t, "new", "--server", f.URL, "-o", "jsonl"); strings.Count(r.stdout, "\n") != 2 || !strings.Contains(strings.Split(r.stdout, "\n")[0], `"name":"alice@example.com"`) {
		t.Errorf("jsonl: %q", r.stdout)
	}
	// Nothing new: the title and the header, status 0 even with --fail-new.
	answer["pairs"] = []any{}
	if r = runCLI(t, "new", "--server", f.URL, "--fail-new"); r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("none: code %d, %q", r.code, r.stdout)
	}
}

func TestCLIRejected(t *testing.T) {
	rows := []api.RejectedRow{{
		ReceivedAt: time.Date(2026, 11, 24, 11, 59, 1, 5e6, time.UTC), Peer: "10.10.0.5:40522", HostID: "h-1", Index: 3,
		Reason: `protocol 1000 > 255`, ReasonClass: "out_of_range", Event: json.RawMessage(`{"flowId":"x","protocol":1000}`),
	}, {
		ReceivedAt: time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC), Peer: "10.10.0.9:1234", Index: 12,
		Reason: "missing flow_id", ReasonClass: "missing_field", Event: json.RawMessage(`{}`),
	}}
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer admin" {
			writeEnvelope(w, 403, map[string]any{"Code": 403, "Message": "rejected events are for admin readers only"})
			return
		}
		writeEnvelope(w, 200, map[string]any{"Code": 200, "Message": "ok", "Response": rows})
	})
	r := runCLI(t, "rejected", "--server", f.URL, "--token", "admin", "--host", "h-1", "--reason", "out_of_range",
		"--from", "2h", "--until", "1h", "--page", "2", "--limit", "10")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.stderr)
	}
	want := "" +
		"RECEIVED                 HOST  PEER             INDEX  CLASS          REASON\n" +
		"2026-11-24 11:59:01.005  h-1   10.10.0.5:40522      3  out_of_range   protocol 1000 > 255\n" +
		"2026-11-24 11:00:00.000  -     10.10.0.9:1234      12  missing_field  missing flow_id\n"
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}
	wantURI := "/api/v1/rejected?from=2026-11-24T10%3A00%3A00Z&host_id=h-1&page=2&per_page=10&reason=out_of_range&to=2026-11-24T11%3A00%3A00Z"
	if got := f.under("/api/v1/rejected"); len(got) != 1 || got[0] != wantURI {
		t.Errorf("requests %q\nwant %q", got, wantURI)
	}
	// jsonl keeps each event as the collector received it.
	r = runCLI(t, "rejected", "--server", f.URL, "--token", "admin", "-o", "jsonl")
	if !strings.Contains(r.stdout, `"event":{"flowId":"x","protocol":1000}`) || strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("jsonl: %q", r.stdout)
	}
	// Not an admin: the server's refusal, status 2.
	r = runCLI(t, "rejected", "--server", f.URL)
	if r.code != exitRefused || !strings.Contains(r.stderr, "403 Forbidden): rejected events are for admin readers only") {
		t.Errorf("not admin: code %d, %q", r.code, r.stderr)
	}
}
