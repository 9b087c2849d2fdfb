package e2e

// The web page in a real browser: `flowlog serve` filled with known flows
// over gRPC, then web/test/page.test.mjs (playwright-core driving Debian's
// chromium) loads the page, filters, pages, watches a flow arrive live, and
// sees a burst beyond the live tail's buffer reported as lost.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/internal/wiretest"
	"github.com/flowlog/flowlog/ipdb/ipdbtest"
	pb "github.com/flowlog/flowlog/proto/flow"
	"github.com/flowlog/flowlog/web"
)

// webFlow is one flow of the browser test's mesh.
type webFlow struct {
	id, network, host string
	proto             uint32
	src, dst          *pb.FlowParticipant
	dport             uint32
	start             time.Time
	sent, recv        uint64 // zero and no DESTROY: still active
	active            bool
	legacy            bool // sent by a stock agent of the v1.4 numbering (no names)
}

// legacyEvents are the flow's START and DESTROY as a netclient <= v1.4
// encodes them.
func (f webFlow) legacyEvents() (start, destroy []byte) {
	part := func(p *pb.FlowParticipant) wiretest.Part {
		return wiretest.Part{IP: p.Ip, Type: uint64(p.Type), ID: p.Id}
	}
	ms := f.start.UnixMilli()
	fields := wiretest.Fields{
		"type": uint64(1), "flow_id": f.id, "host_id": f.host, "host_name": "", "network_id": f.network,
		"protocol": uint64(f.proto), "src_port": uint64(40000), "dst_port": uint64(f.dport), "direction": uint64(2),
		"src": part(f.src), "dst": part(f.dst), "start_ts_ms": ms, "version": ms,
	}
	start = wiretest.EncodeEvent(wiretest.GenLegacy, fields, false)
	fields["type"], fields["end_ts_ms"], fields["version"] = uint64(2), ms+2000, ms+1
	fields["bytes_sent"], fields["bytes_recv"], fields["packets_sent"], fields["packets_recv"] = f.sent, f.recv, uint64(2), uint64(3)
	return start, wiretest.EncodeEvent(wiretest.GenLegacy, fields, false)
}

func (f webFlow) events() (start, destroy *pb.FlowEvent) {
	start = &pb.FlowEvent{
		Type: pb.EventType_EVENT_START, FlowId: f.id, HostId: f.host, HostName: f.host + ".mesh", NetworkId: f.network,
		Protocol: f.proto, SrcPort: 40000, DstPort: f.dport, Direction: pb.Direction_DIR_EGRESS,
		Src: f.src, Dst: f.dst, StartTsMs: f.start.UnixMilli(), Version: f.start.UnixMilli(),
	}
	if f.active {
		return start, nil
	}
	d := proto.Clone(start).(*pb.FlowEvent)
	d.Type, d.EndTsMs, d.Version = pb.EventType_EVENT_DESTROY, f.start.Add(2*time.Second).UnixMilli(), start.Version+1
	d.BytesSent, d.BytesRecv, d.PacketsSent, d.PacketsRecv = f.sent, f.recv, 2, 3 // at least 20 bytes a packet, or ingest refuses them
	return start, d
}

// label is how the page names a participant: name, else id, else type.
func label(p *pb.FlowParticipant) string {
	switch {
	case p.Name != "":
		return p.Name
	case p.Id != "":
		return p.Id
	}
	return strings.TrimPrefix(strings.ToLower(p.Type.String()), "participant_")
}

// webView is what the page must show for a set of flows (see page.test.mjs).
type webView struct {
	Rows    []string         `json:"rows"` // flow ids, newest start first
	Bytes   uint64           `json:"bytes"`
	Active  int              `json:"active"`
	Talkers map[string]int64 `json:"talkers"` // participant label -> bytes sent and received
	Nodes   []string         `json:"nodes"`   // graph participants, sorted
	Edges   int              `json:"edges"`
}

func view(flows []webFlow) webView {
	v := webView{Talkers: map[string]int64{}}
	sorted := slices.Clone(flows)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].start.After(sorted[j].start) })
	nodes := map[string]bool{}
	edges := map[[2]string]bool{}
	for _, f := range sorted {
		v.Rows = append(v.Rows, f.id)
		b := f.sent + f.recv
		v.Bytes += b
		if f.active {
			v.Active++
		}
		s, d := label(f.src), label(f.dst)
		v.Talkers[s] += int64(b)
		v.Talkers[d] += int64(b)
		nodes[s], nodes[d] = true, true
		edges[[2]string{s, d}] = true
	}
	for n := range nodes {
		v.Nodes = append(v.Nodes, n)
	}
	sort.Strings(v.Nodes)
	v.Edges = len(edges)
	return v
}

func TestWebPageInBrowser(t *testing.T) {
	chromium := findChromium(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: the web page's build and its browser test need Node.js and npm")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "web/node_modules/playwright-core/package.json")); err != nil {
		t.Fatal("web/node_modules/playwright-core missing: run `make web` (npm ci installs it)")
	}

	// A live-tail buffer of one event: the burst at the end overflows it.
	// External addresses are named from a small IP database.
	ipdbDir := t.TempDir()
	ipdbtest.WriteFixture(t, ipdbDir)
	c := serve(t, t.TempDir(), "--stream-buffer", "1", "--ipdb-dir", ipdbDir)
	if resp, err := http.Get(c.http + "/"); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), web.NotBuilt) {
			t.Fatal("the binary was built without the web page: run `make web` before `go test` (package web embeds web/dist)")
		}
		if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>flowlog</title>") {
			t.Fatalf("GET / = %d %.200q, want the web page", resp.StatusCode, body)
		}
	}

	// The mesh: three hosts (nodes alpha, beta, gamma), a user and
	// unnamed external addresses (one in AS15169, US; one IPv6); TCP and UDP; two flows still open; one flow
	// in another network that the page must not show.
	var (
		alpha    = &pb.FlowParticipant{Ip: "10.20.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n-alpha", Name: "alpha"}
		beta     = &pb.FlowParticipant{Ip: "10.20.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n-beta", Name: "beta"}
		gamma    = &pb.FlowParticipant{Ip: "10.20.0.3", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n-gamma", Name: "gamma"}
		alice    = &pb.FlowParticipant{Ip: "10.20.8.5", Type: pb.ParticipantType_PARTICIPANT_USER, Id: "alice", Name: "alice@example.com"}
		outside  = &pb.FlowParticipant{Ip: "8.8.8.8", Type: pb.ParticipantType_PARTICIPANT_EXTERNAL}
		outside6 = &pb.FlowParticipant{Ip: "2001:db8:1:2::5", Type: pb.ParticipantType_PARTICIPANT_EXTERNAL}
		delta    = &pb.FlowParticipant{Ip: "10.20.0.4", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n-delta"} // a v1.4 agent names nobody
		docs     = &pb.FlowParticipant{Ip: "198.51.100.7", Type: pb.ParticipantType_PARTICIPANT_EXTERNAL}
		network  = "webnet"
		base     = time.Now().Add(-20 * time.Minute).Truncate(time.Millisecond)
		at       = func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
		tcp, udp = uint32(6), uint32(17)
	)
	flows := []webFlow{
		{id: "w1", network: network, host: "alpha", proto: tcp, src: alpha, dst: beta, dport: 443, start: at(0), sent: 1000, recv: 2000},
		{id: "w2", network: network, host: "beta", proto: tcp, src: beta, dst: gamma, dport: 22, start: at(1), sent: 3000, recv: 4000},
		{id: "w3", network: network, host: "gamma", proto: udp, src: gamma, dst: alice, dport: 53, start: at(2), sent: 500, recv: 700},
		{id: "w4", network: network, host: "alpha", proto: udp, src: alpha, dst: outside, dport: 53, start: at(3), sent: 100, recv: 300},
		{id: "w5", network: network, host: "beta", proto: tcp, src: beta, dst: alpha, dport: 5432, start: at(4), active: true},
		{id: "w6", network: network, host: "gamma", proto: udp, src: gamma, dst: beta, dport: 51820, start: at(5), active: true},
		{id: "w7", network: network, host: "beta", proto: tcp, src: outside6, dst: beta, dport: 443, start: at(5).Add(30 * time.Second), sent: 800, recv: 200},
		{id: "w8", network: network, host: "delta", proto: tcp, src: delta, dst: docs, dport: 443, start: at(5).Add(45 * time.Second), sent: 600, recv: 400, legacy: true},
		{id: "other", network: "othernet", host: "alpha", proto: tcp, src: alpha, dst: beta, dport: 80, start: at(6), sent: 9999, recv: 9999},
	}
	var starts, destroys []*pb.FlowEvent
	var inNet, udpFlows []webFlow
	agents := map[string]string{} // the wire generation of each host
	for _, f := range flows {
		if f.network == network {
			agents[f.host] = "v1.5+"
			if f.legacy {
				agents[f.host] = "v1.4"
			}
		}
		if f.legacy {
			inNet = append(inNet, f)
			s, d := f.legacyEvents()
			exp := &stockExporter{addr: c.grpc, gen: wiretest.GenLegacy}
			if err := exp.connect(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { exp.conn.Close() })
			exp.flush([]string{f.id}, [][]byte{s})
			exp.flush([]string{f.id}, [][]byte{d})
			if len(exp.delivered) != 2 {
				t.Fatalf("the v1.4 agent's flow %s was not delivered", f.id)
			}
			continue
		}
		s, d := f.events()
		starts = append(starts, s)
		if d != nil {
			destroys = append(destroys, d)
		}
		if f.network == network {
			inNet = append(inNet, f)
			if f.proto == udp {
				udpFlows = append(udpFlows, f)
			}
		}
	}
	agent := connect(t, c.grpc)
	for _, a := range agent.exchange(t, []*pb.FlowEnvelope{{Events: starts}, {Events: destroys}}) {
		if !a.Success || a.Error != "" {
			t.Fatalf("ack %+v", a)
		}
	}
	// Wait until the flows are queryable.
	testutil.WaitFor(t, 30*time.Second, "the flows to become queryable", func() bool {
		return len(all(t, c.http, "network_id="+network)) == len(inNet)
	})

	// The flow sent while the page watches: UDP from alpha to gamma.
	live := webFlow{id: "w-live", network: network, host: "alpha", proto: udp, src: alpha, dst: gamma, dport: 4789, sent: 2500, recv: 1500}
	liveView := view(append(slices.Clone(udpFlows), live))
	const burst = 300 // open UDP flows sent in one envelope at the end
	expect, _ := json.Marshal(map[string]any{
		"network": network,
		"all":     view(inNet),
		"udp":     view(udpFlows),
		"live":    map[string]any{"flow_id": live.id, "bytes": live.sent + live.recv, "talkers": liveView.Talkers},
		"burst":   burst,
		"named":   map[string]any{"flow_id": "w4", "asn": "15169", "label": "AS15169 Google LLC · US"}, // by its network
		// External endpoints by prefix (IPv4 /24, IPv6 /48): w4's
		// destination, w7's source.
		"prefixes": map[string]any{"talkers": map[string]int{"8.8.8.0/24": 400, "2001:db8:1::/48": 1000, "198.51.100.0/24": 1000},
			"v4": "8.8.8.0/24", "v4flow": "w4", "v6": "2001:db8:1::/48", "v6flow": "w7"},
		"agents": agents, // each host's wire generation, in the hosts view
	})

	shotDir, err := os.MkdirTemp("", "flowlog-web-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(shotDir, "page.png")
	if p := os.Getenv("FLOWLOG_WEB_SCREENSHOT"); p != "" {
		shot = p
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(root, "web/test/page.test.mjs"))
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(), "FLOWLOG_URL="+c.http, "FLOWLOG_EXPECT="+string(expect),
		"FLOWLOG_CHROMIUM="+chromium, "FLOWLOG_SCREENSHOT="+shot)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	passed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		switch line := sc.Text(); line {
		case "READY-FOR-LIVE":
			live.start = time.Now().Truncate(time.Millisecond)
			s, d := live.events()
			// The START, then (once committed and published) the DESTROY
			// that updates the same row.
			a := connect(t, c.grpc)
			for _, ev := range []*pb.FlowEvent{s, d} {
				if ack := a.exchange(t, []*pb.FlowEnvelope{{Events: []*pb.FlowEvent{ev}}}); !ack[0].Success {
					t.Errorf("live flow ack %+v", ack[0])
				}
			}
		case "READY-FOR-BURST":
			now := time.Now()
			var evs []*pb.FlowEvent
			for i := range burst {
				f := webFlow{id: fmt.Sprintf("burst-%d", i), network: network, host: "beta", proto: udp, src: beta, dst: alice,
					dport: 53, start: now.Add(-time.Duration(i) * time.Millisecond), active: true}
				s, _ := f.events()
				evs = append(evs, s)
			}
			if ack := connect(t, c.grpc).exchange(t, []*pb.FlowEnvelope{{Events: evs}}); !ack[0].Success {
				t.Errorf("burst ack %+v", ack[0])
			}
		case "PASS":
			passed = true
		default:
			t.Log(line)
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out: %w", ctx.Err())
	}
	if err != nil || !passed {
		t.Fatalf("browser test failed (%v); screenshot: %s\n%s", err, shot, stderr.String())
	}
	t.Logf("browser test passed; screenshot: %s\n%s", shot, stderr.String())
	if os.Getenv("FLOWLOG_WEB_SCREENSHOT") == "" {
		os.RemoveAll(shotDir)
	}
}

// findChromium returns Debian's chromium (or FLOWLOG_CHROMIUM), installing
// it with scripts/web-test-deps.sh when missing; the test skips only when
// that cannot be done (not root, no package).
func findChromium(t *testing.T) string {
	t.Helper()
	testutil.Short(t, "drives a browser")
	find := func() string {
		if p := os.Getenv("FLOWLOG_CHROMIUM"); p != "" {
			return p
		}
		for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	out, err := exec.Command("../scripts/web-test-deps.sh").CombinedOutput()
	if p := find(); p != "" {
		return p
	}
	t.Skipf("chromium not found and not installable (scripts/web-test-deps.sh: %v %s); the browser test needs Debian's chromium", err, out)
	return ""
}
