package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/api/client"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// answer is a fake collector API answering every request with code and body.
func answer(t *testing.T, code int, body any) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// exitOf runs the binary and returns its exit status and output.
func exitOf(t *testing.T, args ...string) (int, string) {
	t.Helper()
	needBinary(t)
	out, err := exec.Command(binary, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// The CLI's documented statuses survive main: it exits with the code the
// command's error carries.
func TestCLIExitCodesOfBinary(t *testing.T) {
	needBinary(t)
	bad := answer(t, 400, map[string]any{"Code": 400, "Message": "invalid state"})
	empty := answer(t, 200, map[string]any{"Code": 200, "Message": "ok", "Response": []any{}, "Next": ""})
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"flows", "--server", empty.URL}, 0},
		{[]string{"flows", "--server", empty.URL, "--port", "x"}, 1},
		{[]string{"flows", "--bogus-flag"}, 1},
		{[]string{"flows", "--server", empty.URL, "--port", "0"}, 1},
		{[]string{"tail", "--server", empty.URL, "--to", "now"}, 1},
		{[]string{"flows", "--server", bad.URL}, 2},
		{[]string{"top", "--server", down.URL}, 3},
		{[]string{"flows", "--server", empty.URL, "--fail-empty"}, 4},
	} {
		if code, out := exitOf(t, tc.args...); code != tc.code {
			t.Errorf("%q: exit %d, want %d\n%s", tc.args, code, tc.code, out)
		}
	}
}

// An unknown flag is a short error with a hint, not the whole help.
func TestCLIUnknownFlagOfBinary(t *testing.T) {
	code, out := exitOf(t, "flows", "--hots", "web-1")
	want := "flowlog flows: unknown flag --hots, did you mean \"--host\"?\nsee 'flowlog flows --help'\n"
	if code != 1 || out != want {
		t.Errorf("exit %d\n%q\nwant\n%q", code, out, want)
	}
}

// cliEvents are the flows of one host over time: db reached from web three
// days ago and again now (not new), an external address reached only now
// (new), and one invalid event (rejected).
func cliEvents(network string) []*pb.FlowEvent {
	now := time.Now()
	web := &pb.FlowParticipant{Ip: "10.9.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n-web", Name: "web-e2e"}
	db := &pb.FlowParticipant{Ip: "10.9.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n-db", Name: "db-e2e"}
	ext := &pb.FlowParticipant{Ip: "203.0.113.9", Type: pb.ParticipantType_PARTICIPANT_EXTERNAL}
	ev := func(id string, dst *pb.FlowParticipant, port uint32, start time.Time) *pb.FlowEvent {
		return &pb.FlowEvent{Type: pb.EventType_EVENT_START, FlowId: id, HostId: "h-e2e", HostName: "web-e2e", NetworkId: network,
			Protocol: 6, SrcPort: 40000, DstPort: port, Direction: pb.Direction_DIR_EGRESS, Src: web, Dst: dst,
			StartTsMs: start.UnixMilli(), Version: 1}
	}
	return []*pb.FlowEvent{
		ev("old", db, 5432, now.Add(-72*time.Hour)),
		ev("again", db, 5432, now.Add(-10*time.Minute)),
		ev("first", ext, 443, now.Add(-5*time.Minute)),
		{Type: pb.EventType_EVENT_START, FlowId: "bad", HostId: "h-e2e", NetworkId: network, Protocol: 1000},
	}
}

// rejected, hosts and new through the binary, against the real engine;
// names work where ids are expected.
func TestCLIInsightsOfBinary(t *testing.T) {
	needBinary(t)
	c := serve(t, t.TempDir())
	acks := connect(t, c.grpc).exchange(t, []*pb.FlowEnvelope{{Events: cliEvents("cli-e2e")}})
	if !acks[0].Success || !strings.Contains(acks[0].Error, "rejected 1 of 4") {
		t.Fatalf("ack %+v", acks[0])
	}
	run := func(want int, args ...string) string {
		t.Helper()
		code, out := exitOf(t, append(args, "--server", c.http, "--color", "never")...)
		if code != want {
			t.Fatalf("%q: exit %d, want %d\n%s", args, code, want, out)
		}
		return out
	}
	lines := func(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

	// flows by the host's name: its three flows.
	if got := lines(run(0, "flows", "--host", "web-e2e", "-o", "jsonl")); len(got) != 3 {
		t.Errorf("flows --host web-e2e: %d lines\n%s", len(got), strings.Join(got, "\n"))
	}

	// Sorted by the server: oldest first; by duration, the open flow
	// running longest (the oldest) first; --limit takes the first of that
	// order.
	ids := func(out string) string {
		var got []string
		for _, l := range lines(out) {
			var r struct {
				FlowID string `json:"flow_id"`
			}
			json.Unmarshal([]byte(l), &r)
			got = append(got, r.FlowID)
		}
		return strings.Join(got, " ")
	}
	if got := ids(run(0, "flows", "--host", "web-e2e", "--sort", "start", "--order", "asc", "-o", "jsonl")); got != "old again first" {
		t.Errorf("flows oldest first: %s", got)
	}
	if got := ids(run(0, "flows", "--host", "web-e2e", "--sort", "duration", "--limit", "2", "-o", "jsonl")); got != "old again" {
		t.Errorf("flows longest first: %s", got)
	}

	// rejected: the invalid event, its class and reason, by host name.
	out := run(0, "rejected", "--host", "h-e2e", "--reason", "out_of_range")
	if got := lines(out); len(got) != 2 || !strings.Contains(got[1], "out_of_range") || !strings.Contains(got[1], "protocol 1000 > 255") {
		t.Errorf("rejected:\n%s", out)
	}
	if out := run(0, "rejected", "--reason", "bad_ip", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("rejected --reason bad_ip: %s", out)
	}

	// hosts: one, reporting, its flows and the rejected event counted.
	out = run(0, "hosts", "--network", "cli-e2e", "--fail-quiet")
	if got := lines(out); len(got) != 2 || !strings.HasPrefix(got[0], "HOST") || !regexp.MustCompile(`^web-e2e\s+h-e2e\s+ok\s.*\s2\s+2\s+0 B\s+1\s+v1\.5\+ grpc-go/\S+$`).MatchString(got[1]) {
		t.Errorf("hosts:\n%s", out)
	}
	var hosts []client.Host
	if err := json.Unmarshal([]byte(run(0, "hosts", "--host", "web-e2e", "-o", "json")), &hosts); err != nil || len(hosts) != 1 || hosts[0].HostID != "h-e2e" || hosts[0].Rejected != 1 {
		t.Errorf("hosts --host web-e2e: %+v, %v", hosts, err)
	}

	// new: against 7 days, only the external address is new (db was
	// reached three days ago); against 1 hour, db is new too.
	out = run(4, "new", "--network", "cli-e2e", "--fail-new")
	if got := lines(out); len(got) != 4 || got[3] != "flowlog new: new pairs found: 1" || !strings.Contains(got[2], "web-e2e (node)") || !strings.Contains(got[2], "203.0.113.9 (external)") || !strings.Contains(got[2], "443/tcp") {
		t.Errorf("new:\n%s", out)
	}
	if got := lines(run(0, "new", "--network", "cli-e2e", "--baseline", "1h", "-o", "jsonl")); len(got) != 2 {
		t.Errorf("new --baseline 1h: %q", got)
	}
}

// `flowlog --version` names the build.
func TestVersionFlag(t *testing.T) {
	needBinary(t)
	code, out := exitOf(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "flowlog ") {
		t.Fatalf("--version: exit %d, %q", code, out)
	}
}

// A collector whose listen address is taken exits non-zero, at once: a
// supervisor's Restart=on-failure must see the failure.
func TestServeExitsNonZeroWhenTheAddressIsTaken(t *testing.T) {
	needBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, flag := range []string{"--grpc-addr", "--http-addr"} {
		args := []string{"serve", "--data", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", flag, ln.Addr().String()}
		// No engine is needed: the listeners bind before the store opens,
		// and an address in use ends the run before it would load.
		done := make(chan struct{})
		var code int
		var out string
		go func() { code, out = exitOf(t, args...); close(done) }()
		select {
		case <-done:
		case <-time.After(testutil.DefaultWait):
			t.Fatalf("%s in use: still running after %s", flag, testutil.DefaultWait)
		}
		if code == 0 || !strings.Contains(out, "address already in use") {
			t.Errorf("%s in use: exit %d\n%s", flag, code, out)
		}
	}
}
