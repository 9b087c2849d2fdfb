package e2e

// End-to-end tests through the built binary: `flowlog serve` on free
// loopback ports and a temporary data directory, real gRPC, the real
// embedded engine, the HTTP API as a user sees it.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/api/client"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// binary is the flowlog binary TestMain built (empty in -short: tests that
// need it skip).
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "flowlog-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "flowlog")
	if out, err := exec.Command("go", "build", "-o", binary, "../cmd/flowlog").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building flowlog: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needBinary skips in -short, where TestMain builds no binary.
func needBinary(t *testing.T) {
	t.Helper()
	testutil.Short(t, "runs the flowlog binary")
}

// collector is a running `flowlog serve`.
type collector struct {
	cmd        *exec.Cmd
	grpc, http string
	data       string
	exited     chan error
	logs       *logBuffer
}

// logBuffer keeps what the process logged, for failure messages.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve starts `flowlog serve` on free loopback ports and returns once it
// serves: it learns the bound addresses from --addr-file.
func serve(t *testing.T, data string, args ...string) *collector {
	t.Helper()
	testutil.EngineLib(t)
	addrFile := filepath.Join(t.TempDir(), "addrs.json")
	cmd := exec.Command(binary, append([]string{"--log-format", "json", "serve", "--data", data,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--flush-interval", "50ms", "--addr-file", addrFile}, args...)...)
	c := &collector{cmd: cmd, data: data, exited: make(chan error, 1), logs: &logBuffer{}}
	cmd.Stderr = c.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- cmd.Wait() }()
	t.Cleanup(func() { c.cmd.Process.Kill() })
	var addrs struct{ GRPC, HTTP string }
	testutil.WaitFor(t, 60*time.Second, "flowlog serve to serve", func() bool {
		select {
		case err := <-c.exited:
			t.Fatalf("flowlog serve exited before serving: %v\n%s", err, c.logs)
		default:
		}
		b, err := os.ReadFile(addrFile)
		return err == nil && json.Unmarshal(b, &addrs) == nil
	})
	c.grpc, c.http = addrs.GRPC, "http://"+addrs.HTTP
	return c
}

// stop sends SIGTERM and waits for a clean exit.
func (c *collector) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		if err != nil {
			t.Fatalf("flowlog serve exited with %v after SIGTERM\n%s", err, c.logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("flowlog serve did not stop within 60s of SIGTERM")
	}
}

func (c *collector) kill9(t *testing.T) {
	t.Helper()
	c.cmd.Process.Kill()
	<-c.exited
}

// streamer is one agent stream; it sends envelopes and reads their acks in order.
type streamer struct {
	stream pb.FlowService_StreamFlowsClient
	conn   *grpc.ClientConn
}

func connect(t *testing.T, addr string) *streamer {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s, err := pb.NewFlowServiceClient(conn).StreamFlows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &streamer{stream: s, conn: conn}
}

// exchange sends every envelope (without waiting) and returns the acks.
func (a *streamer) exchange(t *testing.T, envs []*pb.FlowEnvelope) []*pb.FlowResponse {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		for _, e := range envs {
			if err := a.stream.Send(e); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	acks := make([]*pb.FlowResponse, 0, len(envs))
	for range envs {
		r, err := a.stream.Recv()
		if err != nil {
			t.Fatalf("receiving ack %d: %v", len(acks), err)
		}
		acks = append(acks, r)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return acks
}

// workload is a known set of flows for one network.
type workload struct {
	network  string
	envs     []*pb.FlowEnvelope
	finished map[string]uint64 // flow id -> bytes_sent of its DESTROY
	active   map[string]bool
}

// flows builds nEnv envelopes of START events (perEnv flows each) followed by
// DESTROY envelopes for all but every fifth flow. Envelope i also carries one
// invalid event whose reason names i, so the acks prove their order.
func flows(network, host string, nEnv, perEnv int) *workload {
	w := &workload{network: network, finished: map[string]uint64{}, active: map[string]bool{}}
	base := time.Now().Add(-time.Hour).UnixMilli()
	var starts, destroys []*pb.FlowEvent
	for i := 0; i < nEnv*perEnv; i++ {
		id := fmt.Sprintf("%s-%s-%d", network, host, i)
		st := base + int64(i)
		ev := &pb.FlowEvent{
			Type: pb.EventType_EVENT_START, FlowId: id, HostId: host, HostName: host + ".mesh", NetworkId: network,
			Protocol: []uint32{6, 17}[i%2], SrcPort: uint32(30000 + i), DstPort: 443, Direction: pb.Direction_DIR_EGRESS,
			Src:       &pb.FlowParticipant{Ip: "10.9.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: host, Name: host},
			Dst:       &pb.FlowParticipant{Ip: fmt.Sprintf("10.9.1.%d", i%250), Type: []pb.ParticipantType{pb.ParticipantType_PARTICIPANT_USER, pb.ParticipantType_PARTICIPANT_EXTERNAL}[i%2], Id: fmt.Sprintf("user%d", i%3), Name: fmt.Sprintf("user%d", i%3)},
			StartTsMs: st, Version: 1,
		}
		starts = append(starts, ev)
		if i%5 == 4 {
			w.active[id] = true
			continue
		}
		d := proto.Clone(ev).(*pb.FlowEvent)
		d.Type, d.EndTsMs, d.Version = pb.EventType_EVENT_DESTROY, st+1500, 2
		d.BytesSent, d.BytesRecv, d.PacketsSent, d.PacketsRecv = uint64(1000+i), uint64(2000+i), 3, 4
		destroys = append(destroys, d)
		w.finished[id] = d.BytesSent
	}
	all := append(starts, destroys...)
	for i := 0; len(all) > 0; i++ {
		n := min(perEnv, len(all))
		evs := append([]*pb.FlowEvent(nil), all[:n]...)
		all = all[n:]
		bad := &pb.FlowEvent{Type: pb.EventType_EVENT_START, FlowId: "bad", HostId: host, NetworkId: network, Protocol: uint32(1000 + i)}
		evs = append(evs, bad)
		w.envs = append(w.envs, &pb.FlowEnvelope{Events: evs})
	}
	return w
}

// checkAcks wants one success per envelope, in order (each names its own
// invalid event).
func checkAcks(t *testing.T, w *workload, acks []*pb.FlowResponse) {
	t.Helper()
	if len(acks) != len(w.envs) {
		t.Fatalf("%s: %d acks for %d envelopes", w.network, len(acks), len(w.envs))
	}
	per := len(w.envs[0].Events)
	for i, a := range acks {
		want := fmt.Sprintf("protocol %d > 255", 1000+i)
		if !a.Success || !strings.Contains(a.Error, want) || !strings.HasPrefix(a.Error, "rejected 1 of ") {
			t.Fatalf("%s: ack %d = %+v, want success naming %q (envelopes of %d)", w.network, i, a, want, per)
		}
	}
}

type apiResponse struct {
	Code     int
	Message  string
	Response []api.FlowRow
}

func get(t *testing.T, base, path string) (int, apiResponse) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("GET %s: %d %s: %v", path, resp.StatusCode, body, err)
	}
	return resp.StatusCode, r
}

// all lists every flow matching query, through the API client (which
// follows the cursors page after page).
func all(t *testing.T, base, query string) []api.FlowRow {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(base, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var rows []api.FlowRow
	if _, err := cl.Flows(context.Background(), q, 0, func(p client.Page) error {
		rows = append(rows, p.Rows...)
		return nil
	}); err != nil {
		t.Fatalf("query %s: %v", query, err)
	}
	return rows
}

// checkStored wants every flow of w once, with its DESTROY values, and the
// active ones listed as active.
func checkStored(t *testing.T, base string, w *workload) {
	t.Helper()
	rows := all(t, base, "network_id="+url.QueryEscape(w.network))
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.FlowID] {
			t.Fatalf("%s: flow %s listed twice", w.network, r.FlowID)
		}
		seen[r.FlowID] = true
		if w.active[r.FlowID] {
			if !r.Active || r.BytesSent != 0 || r.EndTs.Unix() != 0 {
				t.Fatalf("%s: active flow %s shown as %+v", w.network, r.FlowID, r)
			}
			continue
		}
		want, ok := w.finished[r.FlowID]
		if !ok {
			t.Fatalf("%s: unexpected flow %s", w.network, r.FlowID)
		}
		if r.Active || r.BytesSent != want {
			t.Fatalf("%s: flow %s = %+v, want finished with bytes_sent %d", w.network, r.FlowID, r, want)
		}
	}
	if want := len(w.finished) + len(w.active); len(rows) != want {
		t.Fatalf("%s: %d flows listed, want %d", w.network, len(rows), want)
	}
	active := all(t, base, "state=active&network_id="+url.QueryEscape(w.network))
	if len(active) != len(w.active) {
		t.Fatalf("%s: state=active lists %d flows, want %d", w.network, len(active), len(w.active))
	}
	finished := all(t, base, "state=finished&network_id="+url.QueryEscape(w.network))
	if len(finished) != len(w.finished) {
		t.Fatalf("%s: state=finished lists %d flows, want %d", w.network, len(finished), len(w.finished))
	}
}

func TestStreamsAckInOrderAndEveryFlowAppearsOnce(t *testing.T) {
	c := serve(t, t.TempDir())
	const streams = 6
	loads := make([]*workload, streams)
	var wg sync.WaitGroup
	for i := range loads {
		loads[i] = flows(fmt.Sprintf("net%d", i), fmt.Sprintf("host%d", i), 10, 100)
		a := connect(t, c.grpc)
		wg.Add(1)
		go func(w *workload) {
			defer wg.Done()
			checkAcks(t, w, a.exchange(t, w.envs))
		}(loads[i])
	}
	wg.Wait()
	for _, w := range loads {
		checkStored(t, c.http, w)
	}

	// An agent that lost its acks resends everything: nothing is counted twice.
	retry := connect(t, c.grpc)
	checkAcks(t, loads[0], retry.exchange(t, loads[0].envs))
	checkStored(t, c.http, loads[0])

	t.Run("filters", func(t *testing.T) { checkFilters(t, c.http, loads[1]) })
}

// checkFilters exercises each API parameter against the known workload.
func checkFilters(t *testing.T, base string, w *workload) {
	n := len(w.finished) + len(w.active) // 1000 flows: even i TCP to a user, odd i UDP to external
	net := "network_id=" + w.network
	cases := []struct {
		query string
		want  int
	}{
		{net, n},
		{net + "&protocol=tcp", n / 2},
		{net + "&protocol=17", n / 2},
		{net + "&protocol=6,17", n},
		{net + "&dst_type=user", n / 2},
		{net + "&dst_type=user&dst_type=external", n},
		{net + "&src_type=node", n},
		{net + "&src_type=user", 0},
		{net + "&src_entity_id=host1", n},
		{net + "&dst_entity_id=user0", 334}, // i%3==0
		{net + "&node_id=host1", n},
		{net + "&node_id=host2", 0},
		{net + "&username=user1", 166}, // users only at even i: i%6==4
		{net + "&from=2000-01-01T00:00:00Z", n},
		{net + "&to=2000-01-01T00:00:00Z", 0},
		{"network_id=nope", 0},
	}
	for _, tc := range cases {
		if got := len(all(t, base, tc.query)); got != tc.want {
			t.Errorf("%s: %d flows, want %d", tc.query, got, tc.want)
		}
	}
	// Pages partition the result, newest first, and the last one is short.
	var ids []string
	for page := 1; page <= 4; page++ {
		_, r := get(t, base, fmt.Sprintf("/api/v1/flows?%s&per_page=300&page=%d", net, page))
		for _, f := range r.Response {
			ids = append(ids, f.FlowID)
		}
		if page == 4 && len(r.Response) != 100 {
			t.Errorf("page 4 of 300: %d rows, want 100", len(r.Response))
		}
	}
	if len(ids) != n || ids[0] != fmt.Sprintf("%s-host1-%d", w.network, n-1) {
		t.Errorf("paging: %d ids, first %q", len(ids), ids[0])
	}
	// (per_page and page out of range, unknown parameters: Netmaker's
	// leniency, api/params_test.go.)
	for _, bad := range []struct{ query, names string }{
		{"from=yesterday", "from"},
		{"protocol=tcpx", "protocol"},
		{"src_type=robot", "src_type"},
		{"username=a&src_type=user", "username"},
		{"state=sleeping", "state"},
	} {
		code, r := get(t, base, "/api/v1/flows?"+bad.query)
		if code != 400 || r.Code != 400 || !strings.Contains(r.Message, bad.names) {
			t.Errorf("%s: got %d %+v, want 400 naming %s", bad.query, code, r, bad.names)
		}
	}
}

// Acked data survives a clean restart and a kill -9.
func TestAckedFlowsSurviveRestartAndKill9(t *testing.T) {
	data := t.TempDir()
	c := serve(t, data)
	w1 := flows("restart", "h", 5, 200)
	checkAcks(t, w1, connect(t, c.grpc).exchange(t, w1.envs))
	c.stop(t)

	c = serve(t, data)
	checkStored(t, c.http, w1)
	w2 := flows("kill9", "h", 5, 200)
	checkAcks(t, w2, connect(t, c.grpc).exchange(t, w2.envs))
	c.kill9(t)

	c = serve(t, data)
	checkStored(t, c.http, w1)
	checkStored(t, c.http, w2)
	if code, _ := get(t, c.http, "/healthz"); code != 200 {
		t.Fatalf("healthz after kill -9 restart: %d", code)
	}
}

func TestBadConfigurationIsRefusedClearly(t *testing.T) {
	needBinary(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--retention", "soon"}, `invalid duration "soon"`},
		{[]string{"serve", "--flush-rows", "0"}, "--flush-rows must be at least 1"},
		{[]string{"serve", "--grpc-addr", "256.0.0.1:x", "--data", t.TempDir()}, "gRPC listener"},
		{[]string{"serve", "--chdb-lib", "/nonexistent/libchdb.so"}, "/nonexistent/libchdb.so"},
	}
	for _, tc := range cases {
		out, err := exec.Command(binary, tc.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("flowlog %v: want failure mentioning %q, got %v:\n%s", tc.args, tc.want, err, out)
		}
	}
}
