package e2e

// Readers (HTTP API authorization) through the binary: `flowlog serve
// --readers`, real agents' flows in the real store, the HTTP API, the live
// tail and the CLI as a scoped reader sees them; the listener policy; TLS
// for HTTP.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

const (
	nocToken = "noc-secret-token"
	oneToken = "mesh1-only-token"
)

// readersFile writes a readers file: noc (admin, every network) and one
// (read, the given networks).
func readersFile(t *testing.T, path string, oneNetworks string) {
	t.Helper()
	writeFile(t, path, fmt.Sprintf(`readers:
  - name: noc
    token_sha256: "%s"
    networks: ["*"]
    role: admin
  - name: one
    token_sha256: "%s"
    networks: %s
`, auth.HashToken(nocToken), auth.HashToken(oneToken), oneNetworks))
}

// getAs is a GET with a bearer token (none when empty).
func getAs(t *testing.T, client *http.Client, u, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// networksOf pages through /api/v1/flows by cursor as token and counts the
// flows of each network.
func networksOf(t *testing.T, base, token, query string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	cursor := ""
	for {
		q := "per_page=37&" + query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		code, _, body := getAs(t, http.DefaultClient, base+"/api/v1/flows?"+q, token)
		var r struct {
			Response []struct {
				NetworkID string `json:"network_id"`
			}
			Next string
		}
		if code != 200 || json.Unmarshal(body, &r) != nil {
			t.Fatalf("flows?%s: %d %s", q, code, body)
		}
		for _, f := range r.Response {
			seen[f.NetworkID]++
		}
		if r.Next == "" {
			return seen
		}
		cursor = r.Next
	}
}

// tailAs opens the live tail as token; the channel gets each flow event's
// network and flow id ("network flow_id").
func tailAs(t *testing.T, ctx context.Context, base, token string) <-chan string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/flows/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("tail as %s: %d", token, resp.StatusCode)
	}
	out := make(chan string, 4096)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var row struct {
				FlowID    string `json:"flow_id"`
				NetworkID string `json:"network_id"`
			}
			if json.Unmarshal([]byte(data), &row) == nil && row.FlowID != "" {
				out <- row.NetworkID + " " + row.FlowID
			}
		}
	}()
	return out
}

// until reads the tail up to the marker flow and returns the networks seen.
func until(t *testing.T, events <-chan string, marker string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the tail ended before the marker; seen %v", seen)
			}
			net, id, _ := strings.Cut(ev, " ")
			seen[net]++
			if id == marker {
				return seen
			}
		case <-timeout:
			t.Fatalf("no marker within 30s; seen %v", seen)
		}
	}
}

// runBinary runs the binary and returns its exit status and output.
func runBinary(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	needBinary(t)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// A reader scoped to mesh1 never sees mesh2's flows: not in the list (by
// page or cursor), not in any aggregate, not in the live tail, not through
// the CLI; asking for mesh2 is a 403 naming it. The admin sees both, and
// /metrics. A reload of the readers file changes the scope at once.
func TestReadersScopeThroughTheBinary(t *testing.T) {
	readers := filepath.Join(t.TempDir(), "readers.yaml")
	readersFile(t, readers, "[mesh1]")
	c := serve(t, t.TempDir(), "--readers", readers)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	oneTail := tailAs(t, ctx, c.http, oneToken)
	nocTail := tailAs(t, ctx, c.http, nocToken)

	w1, w2 := flows("mesh1", "h1", 2, 50), flows("mesh2", "h2", 2, 50)
	a := connect(t, c.grpc)
	checkAcks(t, w1, a.exchange(t, w1.envs))
	checkAcks(t, w2, a.exchange(t, w2.envs))
	// The marker, committed after everything else, ends the tails' reads.
	marker := hostFlows("marker", "h1", "mesh1", 1)
	if acks := a.exchange(t, []*pb.FlowEnvelope{{Events: marker}}); !acks[0].Success {
		t.Fatalf("marker: %+v", acks[0])
	}
	n1 := len(w1.finished) + len(w1.active)

	t.Run("tail", func(t *testing.T) {
		// Every valid event is published: STARTs, then DESTROYs of the
		// finished flows.
		perNet := n1 + len(w1.finished)
		if got := until(t, oneTail, marker[0].FlowId); len(got) != 1 || got["mesh1"] != perNet+1 {
			t.Errorf("tail as one (mesh1): %v, want only mesh1's %d events", got, perNet+1)
		}
		if got := until(t, nocTail, marker[0].FlowId); got["mesh1"] != perNet+1 || got["mesh2"] != perNet {
			t.Errorf("tail as noc: %v", got)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			path, token string
			code        int
			message     string
		}{
			{"/api/v1/flows", "", 401, "missing bearer token: send Authorization: Bearer <token> (a reader's token of the collector's --readers file)"},
			{"/api/v1/aggregates/top", "nope", 401, "unknown bearer token"},
			{"/api/v1/flows/stream", "", 401, "missing bearer token"},
			{"/metrics", "", 401, "missing bearer token"},
			{"/metrics", oneToken, 403, `forbidden: /metrics needs a reader with role admin (reader "one" has role read)`},
			{"/api/v1/flows?network_id=mesh2", oneToken, 403, `forbidden: network_id "mesh2" is not among this token's networks (mesh1)`},
			{"/api/v1/flows/stream?network_id=mesh2", oneToken, 403, `network_id "mesh2"`},
			{"/api/v1/aggregates/top?network_id=mesh2", oneToken, 403, `network_id "mesh2"`},
			{"/api/v1/aggregates/matrix?network_id=mesh2", oneToken, 403, `network_id "mesh2"`},
			{"/api/v1/aggregates/timeseries?network_id=mesh2", oneToken, 403, `network_id "mesh2"`},
			{"/api/v1/aggregates/active?network_id=mesh2", oneToken, 403, `network_id "mesh2"`},
		} {
			code, h, body := getAs(t, http.DefaultClient, c.http+tc.path, tc.token)
			var e struct {
				Code    int
				Message string
			}
			if code != tc.code || json.Unmarshal(body, &e) != nil || e.Code != tc.code || !strings.Contains(e.Message, tc.message) {
				t.Errorf("%s as %q: %d %s, want %d %q", tc.path, tc.token, code, body, tc.code, tc.message)
			}
			if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: 401 without WWW-Authenticate: Bearer (%q)", tc.path, h.Get("WWW-Authenticate"))
			}
		}
		// Open: the page and the probes; any reader: the OpenAPI document;
		// an admin: the metrics.
		for _, tc := range []struct{ path, token string }{
			{"/", ""}, {"/healthz", ""}, {"/readyz", ""}, {"/api/v1/openapi.json", oneToken}, {"/metrics", nocToken},
		} {
			if code, _, body := getAs(t, http.DefaultClient, c.http+tc.path, tc.token); code != 200 {
				t.Errorf("%s as %q: %d %.200s", tc.path, tc.token, code, body)
			}
		}
	})

	t.Run("flows", func(t *testing.T) {
		if got := networksOf(t, c.http, oneToken, ""); len(got) != 1 || got["mesh1"] != n1+1 {
			t.Errorf("flows as one: %v, want only mesh1's %d", got, n1+1)
		}
		if got := networksOf(t, c.http, oneToken, "network_id=mesh1&state=active"); len(got) != 1 || got["mesh1"] != len(w1.active)+1 {
			t.Errorf("active flows of mesh1 as one: %v", got)
		}
		if got := networksOf(t, c.http, nocToken, ""); got["mesh1"] != n1+1 || got["mesh2"] != n1 {
			t.Errorf("flows as noc: %v", got)
		}
		// Page numbers too.
		code, _, body := getAs(t, http.DefaultClient, c.http+"/api/v1/flows?per_page=1000&page=1", oneToken)
		if code != 200 || strings.Contains(string(body), `"mesh2"`) || strings.Count(string(body), `"flow_id"`) != n1+1 {
			t.Errorf("page 1 as one: %d, %d flows, mesh2 in it: %v", code, strings.Count(string(body), `"flow_id"`), strings.Contains(string(body), `"mesh2"`))
		}
	})

	t.Run("aggregates", func(t *testing.T) {
		// One's answer is exactly the admin's answer for network_id=mesh1,
		// and differs from the admin's answer over every network.
		from := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Minute).Format(time.RFC3339)
		to := time.Now().Add(time.Hour).UTC().Truncate(time.Minute).Format(time.RFC3339)
		for _, q := range []string{
			"/api/v1/aggregates/top?limit=100",
			"/api/v1/aggregates/top?by=ip&limit=100",
			"/api/v1/aggregates/top?side=dst&metric=flows&limit=100",
			"/api/v1/aggregates/matrix?limit=1000",
			"/api/v1/aggregates/timeseries?from=" + from + "&to=" + to,
			"/api/v1/aggregates/active",
		} {
			sep := "&"
			if !strings.Contains(q, "?") {
				sep = "?"
			}
			code1, _, one := getAs(t, http.DefaultClient, c.http+q, oneToken)
			code2, _, nocMesh1 := getAs(t, http.DefaultClient, c.http+q+sep+"network_id=mesh1", nocToken)
			code3, _, nocAll := getAs(t, http.DefaultClient, c.http+q, nocToken)
			if code1 != 200 || code2 != 200 || code3 != 200 {
				t.Errorf("%s: %d %d %d", q, code1, code2, code3)
				continue
			}
			if string(one) != string(nocMesh1) {
				t.Errorf("%s as one:\n %s\nnoc's for mesh1:\n %s", q, one, nocMesh1)
			}
			if string(one) == string(nocAll) {
				t.Errorf("%s: one's answer is the admin's over every network: %s", q, one)
			}
		}
	})

	t.Run("cli", func(t *testing.T) {
		code, out := runBinary(t, nil, "flows", "--server", c.http, "--token", oneToken, "--all", "-o", "jsonl")
		if code != 0 || strings.Count(out, "\n") != n1+1 || strings.Contains(out, `"mesh2"`) {
			t.Errorf("flowlog flows --token (one): exit %d, %d lines, mesh2 in it: %v", code, strings.Count(out, "\n"), strings.Contains(out, `"mesh2"`))
		}
		code, out = runBinary(t, []string{"FLOWLOG_READER_TOKEN=" + nocToken}, "flows", "--server", c.http, "--all", "-o", "jsonl")
		if code != 0 || strings.Count(out, "\n") != 2*n1+1 {
			t.Errorf("flowlog flows with FLOWLOG_READER_TOKEN (noc): exit %d, %d lines", code, strings.Count(out, "\n"))
		}
		code, out = runBinary(t, nil, "flows", "--server", c.http, "--token", oneToken, "--network", "mesh2")
		if code != 2 /* refused (4xx) */ || !strings.Contains(out, `network_id \"mesh2\"`) && !strings.Contains(out, `network_id "mesh2"`) {
			t.Errorf("flowlog flows --network mesh2 as one: exit %d\n%s", code, out)
		}
		code, out = runBinary(t, nil, "top", "--server", c.http, "--token", oneToken, "-o", "json")
		if code != 0 || strings.Contains(out, "h2") {
			t.Errorf("flowlog top as one: exit %d\n%s", code, out)
		}
		// On a mesh host the agent's token is in the environment too: the
		// CLI must not send it (nor the old shared name) to the HTTP API.
		code, out = runBinary(t, []string{"FLOWLOG_READER_TOKEN=", "FLOWLOG_AGENT_TOKEN=" + nocToken, "FLOWLOG_TOKEN=" + nocToken}, "flows", "--server", c.http)
		if code != 2 /* refused (4xx) */ || !strings.Contains(out, "401") || !strings.Contains(out, "missing bearer token") {
			t.Errorf("flowlog flows without a reader token: exit %d\n%s", code, out)
		}
	})

	t.Run("reload", func(t *testing.T) {
		readersFile(t, readers, "[mesh2]")
		testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("one to see only mesh2's %d flows after the reload", n1), func() bool {
			got := networksOf(t, c.http, oneToken, "")
			return len(got) == 1 && got["mesh2"] == n1
		})
		// An invalid edit is ignored: the previous readers stay.
		writeFile(t, readers, "readers:\n  - {name: one, token_sha256: nothex, networks: ['*']}\n")
		testutil.WaitFor(t, 10*time.Second, "the invalid edit to be read and refused", func() bool {
			return strings.Contains(c.logs.String(), "invalid; keeping the previous")
		})
		if got := networksOf(t, c.http, oneToken, ""); len(got) != 1 || got["mesh2"] != n1 {
			t.Errorf("after an invalid edit one sees %v", got)
		}
	})
}

// Without --readers the HTTP API is open on loopback only; elsewhere it
// takes --readers or --http-allow-anonymous, and the two contradict.
func TestReadersListenerPolicy(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "readers.yaml")
	writeFile(t, bad, "readers:\n  - name: a\n    token_sha256: "+auth.HashToken("a")+"\n    networks: []\n")
	good := filepath.Join(t.TempDir(), "readers-ok.yaml")
	readersFile(t, good, "[mesh1]")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-addr", "0.0.0.0:0"}, "--http-addr 0.0.0.0:0 is not a loopback address: the HTTP API there would show every flow to anyone who connects; give --readers FILE"},
		{[]string{"--http-addr", ":0"}, "give --readers FILE (bearer tokens, each scoped to networks), or --http-allow-anonymous"},
		{[]string{"--http-addr", "127.0.0.1:0", "--readers", good, "--http-allow-anonymous"}, "contradict"},
		{[]string{"--http-addr", "127.0.0.1:0", "--readers", bad}, bad + ":2: readers[0]: networks is missing or empty"},
		{[]string{"--http-addr", "127.0.0.1:0", "--http-tls-cert", "c.pem"}, "--http-tls-cert and --http-tls-key go together"},
		{[]string{"--http-addr", "127.0.0.1:0", "--http-tls-cert", "nope.pem", "--http-tls-key", "nope.key"}, "--http-tls-cert/--http-tls-key"},
	} {
		code, out := runBinary(t, nil, append([]string{"serve", "--data", t.TempDir(), "--grpc-addr", "127.0.0.1:0"}, tc.args...)...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("serve %v: want failure mentioning %q, got exit %d:\n%s", tc.args, tc.want, code, out)
		}
	}
	// Explicitly anonymous on every interface: it serves.
	c := serve(t, t.TempDir(), "--http-addr", "0.0.0.0:0", "--http-allow-anonymous")
	_, port, _ := strings.Cut(strings.TrimPrefix(c.http, "http://"), "]:")
	if port == "" {
		_, port, _ = strings.Cut(strings.TrimPrefix(c.http, "http://"), ":")
	}
	if code, _, body := getAs(t, http.DefaultClient, "http://127.0.0.1:"+port+"/api/v1/flows", ""); code != 200 {
		t.Errorf("anonymous API on every interface: %d %s", code, body)
	}
}

// TLS for HTTP: the API answers over HTTPS only, tokens included, and the
// CLI talks to it with the CA trusted through SSL_CERT_FILE.
func TestReadersOverHTTPTLS(t *testing.T) {
	p := newTestCerts(t, t.TempDir())
	readers := filepath.Join(t.TempDir(), "readers.yaml")
	readersFile(t, readers, "[mesh1]")
	c := serve(t, t.TempDir(), "--readers", readers, "--http-tls-cert", p.certFile, "--http-tls-key", p.keyFile)
	base := "https://" + strings.TrimPrefix(c.http, "http://")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()

	w := flows("mesh1", "h1", 1, 20)
	checkAcks(t, w, connect(t, c.grpc).exchange(t, w.envs))

	if code, _, body := getAs(t, client, base+"/api/v1/flows", oneToken); code != 200 || strings.Count(string(body), `"flow_id"`) != 20 {
		t.Errorf("HTTPS flows as one: %d %.300s", code, body)
	}
	if code, _, _ := getAs(t, client, base+"/api/v1/flows", ""); code != 401 {
		t.Errorf("HTTPS flows without a token: %d", code)
	}
	if code, _, _ := getAs(t, client, base+"/healthz", ""); code != 200 {
		t.Errorf("HTTPS healthz: %d", code)
	}
	// Plain HTTP on the TLS port is refused by the TLS server.
	if code, _, _ := getAs(t, http.DefaultClient, c.http+"/healthz", ""); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS listener: %d, want 400", code)
	}
	// A client that does not trust the CA fails the handshake.
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("an untrusting client connected")
	}
	code, out := runBinary(t, []string{"SSL_CERT_FILE=" + p.caFile}, "flows", "--server", base, "--token", oneToken, "-o", "jsonl")
	if code != 0 || strings.Count(out, "\n") != 20 {
		t.Errorf("flowlog flows over HTTPS: exit %d\n%s", code, out)
	}
}

// The page behind a readers file: without a token it opens its "API token"
// prompt (the API answers 401); with the token of a reader of mesh1 it shows
// mesh1's flows and none of mesh2's (web/test/token.test.mjs, headless
// Chromium).
func TestReadersWebPageAsksForToken(t *testing.T) {
	chromium := findChromium(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: the browser test needs Node.js and npm")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "web/node_modules/playwright-core/package.json")); err != nil {
		t.Fatal("web/node_modules/playwright-core missing: run `make web` (npm ci installs it)")
	}
	readers := filepath.Join(t.TempDir(), "readers.yaml")
	readersFile(t, readers, "[mesh1]")
	c := serve(t, t.TempDir(), "--readers", readers)

	// Flows of both networks, interleaved in time, in the last hour.
	var evs []*pb.FlowEvent
	var want []string // mesh1's, newest first
	base := time.Now().Add(-30 * time.Minute).UnixMilli()
	for i := 0; i < 8; i++ {
		network := []string{"mesh1", "mesh2"}[i%2]
		id := fmt.Sprintf("%s-w%d", network, i)
		evs = append(evs, &pb.FlowEvent{
			Type: pb.EventType_EVENT_START, FlowId: id, HostId: "h-" + network, NetworkId: network,
			Protocol: 6, SrcPort: uint32(40000 + i), DstPort: 443, Direction: pb.Direction_DIR_EGRESS,
			Src:       &pb.FlowParticipant{Ip: "10.9.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n1", Name: "n1"},
			Dst:       &pb.FlowParticipant{Ip: "10.9.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n2", Name: "n2"},
			StartTsMs: base + int64(i)*60_000, Version: 1,
		})
		if network == "mesh1" {
			want = append([]string{id}, want...)
		}
	}
	if acks := connect(t, c.grpc).exchange(t, []*pb.FlowEnvelope{{Events: evs}}); !acks[0].Success || acks[0].Error != "" {
		t.Fatalf("ack %+v", acks[0])
	}
	expect, _ := json.Marshal(map[string]any{"rows": want})
	shot := filepath.Join(t.TempDir(), "token.png")
	if p := os.Getenv("FLOWLOG_WEB_SCREENSHOT"); p != "" {
		shot = strings.TrimSuffix(p, ".png") + "-token.png"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(root, "web/test/token.test.mjs"))
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(), "FLOWLOG_URL="+c.http, "FLOWLOG_TOKEN="+oneToken, "FLOWLOG_EXPECT="+string(expect),
		"FLOWLOG_CHROMIUM="+chromium, "FLOWLOG_SCREENSHOT="+shot)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nPASS\n") && !strings.HasPrefix(string(out), "PASS\n") {
		t.Fatalf("browser test failed (%v); screenshot: %s\n%s", err, shot, out)
	}
	t.Logf("%s", out)
}
