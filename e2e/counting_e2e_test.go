package e2e

// End-to-end tests of "one connection, one count" (issue 10) through the
// real binaries: two `flowlog agent`s, each watching its own network
// namespace (A and B, joined by a veth pair), reporting to one `flowlog
// serve` on loopback (the agents run in the root namespace and only watch
// their namespace's conntrack, so loopback reaches the collector), and a
// third namespace C, reachable from A, that runs no agent.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/api/client"
	"github.com/flowlog/flowlog/internal/netnstest"
	"github.com/flowlog/flowlog/internal/testutil"
)

// twoHosts is netnstest's pair with conntrack watched on both sides (an
// agent each) and a third namespace C, joined to A by its own veth, whose
// address is in the mesh's /24 but names no participant and runs no agent.
type twoHosts struct {
	*netnstest.Pair
	aIP, bIP, cIP string
	C             string
	hostA, hostB  *mesh // what startAgent needs: the namespace and the config
}

func newTwoHosts(t *testing.T) *twoHosts {
	t.Helper()
	p := netnstest.New(t)
	x := p.AddrA.As4()[2]
	h := &twoHosts{Pair: p, aIP: p.AddrA.String(), bIP: p.AddrB.String(),
		cIP: fmt.Sprintf("10.200.%d.3", x), C: "fltC" + strings.TrimPrefix(p.A, "fltA")}
	// B reports too: conntrack on there, with the same short timeouts as A.
	netnstest.Run(t, "ip", "netns", "exec", p.B, "nft", "add table inet t; add chain inet t c { type filter hook output priority 0; }; add rule inet t c ct state new,established accept")
	for _, s := range []string{"tcp_timeout_time_wait", "tcp_timeout_close", "tcp_timeout_fin_wait",
		"tcp_timeout_close_wait", "tcp_timeout_last_ack", "udp_timeout", "udp_timeout_stream"} {
		netnstest.Run(t, "ip", "netns", "exec", p.B, "sysctl", "-qw", "net.netfilter.nf_conntrack_"+s+"=1")
	}
	// C hangs off A: a /32 route in A, the mesh's /24 on link in C.
	netnstest.Run(t, "ip", "netns", "add", h.C)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", h.C).Run() })
	sfx := strings.TrimPrefix(p.A, "fltA")
	vx, vy := "vx"+sfx, "vy"+sfx
	netnstest.Run(t, "ip", "link", "add", vx, "netns", p.A, "type", "veth", "peer", "name", vy, "netns", h.C)
	netnstest.Run(t, "ip", "-n", h.C, "addr", "add", h.cIP+"/24", "dev", vy)
	for _, c := range [][]string{{p.A, vx}, {h.C, vy}, {h.C, "lo"}} {
		netnstest.Run(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	netnstest.Run(t, "ip", "-n", p.A, "route", "add", h.cIP+"/32", "dev", vx)

	prefix := fmt.Sprintf("10.200.%d.0/24", x)
	h.hostA = &mesh{a: p.A, configPath: agentConfig(t, "host-a", "alpha", h.aIP, prefix, h.bIP, "host-b", "beta")}
	h.hostB = &mesh{a: p.B, configPath: agentConfig(t, "host-b", "beta", h.bIP, prefix, h.aIP, "host-a", "alpha")}
	return h
}

// agentConfig writes the config of host id (address self in network mesh1
// of prefix) that names its peer.
func agentConfig(t *testing.T, id, name, self, prefix, peer, peerID, peerName string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), id+".yaml")
	cfg := fmt.Sprintf(`host:
  id: %s
  name: %s
networks:
  - id: mesh1
    addresses: [%s]
    cidrs: [%s]
participants:
  - match: %s
    type: node
    id: %s
    name: %s
`, id, name, self, prefix, peer, peerID, peerName)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// reap evicts expired conntrack entries in A and B now (hence their
// DESTROY): the kernel's own garbage collection can take tens of seconds.
func (h *twoHosts) reap(t *testing.T) (stop func()) {
	stopA := h.Reaper(t, 200*time.Millisecond)
	stopB := (&netnstest.Pair{HA: h.HB}).Reaper(t, 200*time.Millisecond) // Reaper dumps its HA
	return func() { stopA(); stopB() }
}

// counting agents: frequent active-timeout updates (open flows' bytes so far)
// and resyncs, so the tests wait seconds, not minutes.
var countingAgentFlags = []string{"--active-timeout", "1s", "--resync-interval", "2s"}

// openConn is a TCP connection left open, without keepalives (whose probes
// would move its counters while the test compares them).
type openConn struct {
	client, server net.Conn
	port           int // the client's
}

func (o *openConn) close() { o.client.Close(); o.server.Close() }

// listenOpen listens in ns on ip:port for openConns.
func listenOpen(t *testing.T, ns, ip string, port int) (net.Listener, chan net.Conn) {
	t.Helper()
	var ln net.Listener
	lc := net.ListenConfig{KeepAlive: -1}
	in(t, ns, func() (err error) {
		ln, err = lc.Listen(context.Background(), "tcp", fmt.Sprintf("%s:%d", ip, port))
		return
	})
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return ln, accepted
}

// dialOpen connects from ns to ln and sends up bytes, which the server reads.
func dialOpen(t *testing.T, ns string, ln net.Listener, accepted chan net.Conn, up int) *openConn {
	t.Helper()
	d := net.Dialer{KeepAlive: -1}
	var c net.Conn
	in(t, ns, func() (err error) { c, err = d.Dial("tcp", ln.Addr().String()); return })
	o := &openConn{client: c, server: <-accepted, port: c.LocalAddr().(*net.TCPAddr).Port}
	t.Cleanup(o.close)
	if _, err := c.Write(make([]byte, up)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, o.server, int64(up)); err != nil {
		t.Fatal(err)
	}
	return o
}

// apiClient is a client of the collector's HTTP API.
func apiClient(t *testing.T, base string) *client.Client {
	t.Helper()
	cl, err := client.New(base, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// getResponse decodes the Response of path?query into v.
func getResponse(cl *client.Client, path, query string, v any) error {
	q, err := url.ParseQuery(query)
	if err != nil {
		return err
	}
	env, err := cl.GetJSON(context.Background(), path, q)
	if err != nil {
		return err
	}
	if env.Code != 200 {
		return fmt.Errorf("%s?%s: %d %s", path, query, env.Code, env.Message)
	}
	return json.Unmarshal(env.Response, v)
}

// conn is one connection the test made and what its initiator sent and got.
type conn struct {
	proto          uint16
	srcIP, dstIP   string
	sport, dport   int
	up, down       int
	host           string // the initiator's host_id: whose observation is listed
	open           bool
	otherSideAgent bool // the responder runs an agent too
}

func (c conn) key() string {
	return fmt.Sprintf("%d %s:%d>%s:%d", c.proto, c.srcIP, c.sport, c.dstIP, c.dport)
}

func rowKey(r api.FlowRow) string {
	return fmt.Sprintf("%d %s:%d>%s:%d", r.Protocol, r.SrcIP, r.SrcPort, r.DstIP, r.DstPort)
}

// sums is what an aggregate counts.
type sums struct{ bytes, packets, flows uint64 }

func (s *sums) add(r api.FlowRow) {
	s.bytes += r.BytesSent + r.BytesRecv
	s.packets += r.PacketsSent + r.PacketsRecv
	s.flows++
}

// Both ends of each connection report it; every view counts it once.
func TestTwoAgentsCountEachConnectionOnce(t *testing.T) {
	h := newTwoHosts(t)
	c := serve(t, t.TempDir())
	started := time.Now()
	startAgent(t, h.hostA, c.grpc, t.TempDir(), countingAgentFlags...)
	startAgent(t, h.hostB, c.grpc, t.TempDir(), countingAgentFlags...)
	defer h.reap(t)()

	// N TCP and N UDP connections each way between the agents' hosts, and
	// some from A to C, every one with payloads of its own.
	const n = 5
	var conns []conn
	for i := range n {
		from, to, fromIP, toIP, host := h.A, h.B, h.aIP, h.bIP, "host-a"
		if i%2 == 1 {
			from, to, fromIP, toIP, host = h.B, h.A, h.bIP, h.aIP, "host-b"
		}
		up, down := 20_000+1_111*i, 3_000+222*i
		port := 9500 + i
		sport := tcpExchange(t, from, to, toIP, port, up, down)
		conns = append(conns, conn{proto: 6, srcIP: fromIP, dstIP: toIP, sport: sport, dport: port, up: up, down: down, host: host, otherSideAgent: true})
		up, down = 1_000+100*i, 500+10*i
		port = 9600 + i
		sport = udpExchange(t, from, to, toIP, port, up, down)
		conns = append(conns, conn{proto: 17, srcIP: fromIP, dstIP: toIP, sport: sport, dport: port, up: up, down: down, host: host, otherSideAgent: true})
	}
	for i := range 2 {
		up, down := 7_000+333*i, 900+9*i
		sport := tcpExchange(t, h.A, h.C, h.cIP, 9700+i, up, down)
		conns = append(conns, conn{proto: 6, srcIP: h.aIP, dstIP: h.cIP, sport: sport, dport: 9700 + i, up: up, down: down, host: "host-a"})
		sport = udpExchange(t, h.A, h.C, h.cIP, 9710+i, 300+i, 200+i)
		conns = append(conns, conn{proto: 17, srcIP: h.aIP, dstIP: h.cIP, sport: sport, dport: 9710 + i, up: 300 + i, down: 200 + i, host: "host-a"})
	}
	// Open ones, for the active count: one to B (both report it), one to C.
	lnB, accB := listenOpen(t, h.B, h.bIP, 9800)
	lnC, accC := listenOpen(t, h.C, h.cIP, 9801)
	for _, o := range []struct {
		ln  net.Listener
		acc chan net.Conn
		ip  string
		up  int
		ag  bool
	}{{lnB, accB, h.bIP, 12_345, true}, {lnC, accC, h.cIP, 6_789, false}} {
		oc := dialOpen(t, h.A, o.ln, o.acc, o.up)
		conns = append(conns, conn{proto: 6, srcIP: h.aIP, dstIP: o.ip, sport: oc.port, dport: o.ln.Addr().(*net.TCPAddr).Port,
			up: o.up, host: "host-a", open: true, otherSideAgent: o.ag})
	}
	want := map[string]conn{}
	observations := 0
	for _, k := range conns {
		want[k.key()] = k
		observations++
		if k.otherSideAgent {
			observations++
		}
	}

	// Every observation arrived: each closed connection's DESTROYs and each
	// open one's update with its bytes so far, from both sides.
	cl := apiClient(t, c.http)
	var everything []api.FlowRow
	arrived := func() bool {
		everything = all(t, c.http, "network_id=mesh1&observations=all")
		if len(everything) != observations {
			return false
		}
		for _, r := range everything {
			k, ok := want[rowKey(r)]
			if !ok || k.open != r.Active || r.BytesSent+r.BytesRecv < uint64(k.up+k.down) {
				return false
			}
		}
		return true
	}
	if !testutil.Eventually(90*time.Second, arrived) {
		t.Fatalf("want %d observations of %d connections, got %d:\n%s", observations, len(conns), len(everything), rowsText(everything))
	}
	// observations=all: the initiator's egress and, where the responder
	// runs an agent, its ingress.
	obs := map[string]bool{}
	for _, r := range everything {
		o := rowKey(r) + " " + r.HostID + " " + r.Direction
		if obs[o] {
			t.Fatalf("observation %s listed twice:\n%s", o, rowsText(everything))
		}
		obs[o] = true
	}
	for _, k := range conns {
		responder := map[string]string{"host-a": "host-b", "host-b": "host-a"}[k.host]
		if !obs[k.key()+" "+k.host+" egress"] || k.otherSideAgent && !obs[k.key()+" "+responder+" ingress"] {
			t.Fatalf("%s: want %s's egress observation (and %s's ingress: %v) with observations=all:\n%s", k.key(), k.host, responder, k.otherSideAgent, rowsText(everything))
		}
	}

	// The list: each connection once, as its initiator's observation.
	rows := all(t, c.http, "network_id=mesh1")
	seen := map[string]bool{}
	var truth sums
	bySrc, byDst, byEdge := map[string]sums{}, map[string]sums{}, map[string]sums{}
	for _, r := range rows {
		k, ok := want[rowKey(r)]
		if !ok || seen[k.key()] {
			t.Fatalf("unexpected or repeated flow %+v\nlist:\n%s", r, rowsText(rows))
		}
		seen[k.key()] = true
		if r.HostID != k.host || r.Direction != "egress" || r.Active != k.open {
			t.Errorf("%s: listed as %s's %s observation (active %v), want %s's egress (active %v)", k.key(), r.HostID, r.Direction, r.Active, k.host, k.open)
		}
		if !k.open {
			hdr := [2]uint64{40, 80} // IPv4 + TCP with options
			if k.proto == 17 {
				hdr = [2]uint64{28, 28}
			}
			counted(t, k.key()+" sent", r.BytesSent, r.PacketsSent, k.up, hdr[0], hdr[1])
			counted(t, k.key()+" recv", r.BytesRecv, r.PacketsRecv, k.down, hdr[0], hdr[1])
		}
		truth.add(r)
		s := bySrc[r.SrcIP]
		s.add(r)
		bySrc[r.SrcIP] = s
		s = byDst[r.DstIP]
		s.add(r)
		byDst[r.DstIP] = s
		edge := r.SrcType + "/" + r.SrcEntityID + " > " + r.DstType + "/" + r.DstEntityID
		s = byEdge[edge]
		s.add(r)
		byEdge[edge] = s
	}
	if len(rows) != len(conns) {
		t.Fatalf("the list shows %d flows for %d connections:\n%s", len(rows), len(conns), rowsText(rows))
	}

	// The aggregates count exactly what the list shows (whose rows are each
	// within the header overhead of their payloads).
	const net1 = "network_id=mesh1"
	for _, side := range []struct {
		side string
		want map[string]sums
	}{{"src", bySrc}, {"dst", byDst}} {
		var top []client.Talker
		if err := getResponse(cl, "/api/v1/aggregates/top", net1+"&by=ip&limit=100&side="+side.side, &top); err != nil {
			t.Fatal(err)
		}
		got := map[string]sums{}
		for _, tk := range top {
			got[tk.IP] = sums{tk.Bytes, tk.Packets, tk.Flows}
		}
		if fmt.Sprint(got) != fmt.Sprint(side.want) {
			t.Errorf("top talkers by %s address: %v, want %v", side.side, got, side.want)
		}
	}
	var matrix []struct {
		Src, Dst              struct{ Type, ID string }
		Bytes, Packets, Flows uint64
	}
	if err := getResponse(cl, "/api/v1/aggregates/matrix", net1+"&limit=1000", &matrix); err != nil {
		t.Fatal(err)
	}
	gotEdges := map[string]sums{}
	for _, e := range matrix {
		gotEdges[e.Src.Type+"/"+e.Src.ID+" > "+e.Dst.Type+"/"+e.Dst.ID] = sums{e.Bytes, e.Packets, e.Flows}
	}
	if fmt.Sprint(gotEdges) != fmt.Sprint(byEdge) {
		t.Errorf("matrix: %v, want %v", gotEdges, byEdge)
	}
	var series struct {
		Points []struct{ Bytes, Packets uint64 }
	}
	if err := getResponse(cl, "/api/v1/aggregates/timeseries", net1+"&from="+started.Add(-time.Minute).UTC().Format(time.RFC3339), &series); err != nil {
		t.Fatal(err)
	}
	var total sums
	for _, p := range series.Points {
		total.bytes += p.Bytes
		total.packets += p.Packets
	}
	if total.bytes != truth.bytes || total.packets != truth.packets {
		t.Errorf("time series: %d bytes, %d packets; want %d, %d", total.bytes, total.packets, truth.bytes, truth.packets)
	}
	// And that total is the payloads once, plus 28 (IPv4 + UDP) to 80
	// (IPv4 + TCP with options) header bytes a packet: not twice.
	payload := 0
	for _, k := range conns {
		payload += k.up + k.down
	}
	counted(t, "every aggregate's total", total.bytes, total.packets, payload, 28, 80)
	t.Logf("%d connections, %d observations; counted once: %d bytes, %d packets, edges %v", len(conns), observations, truth.bytes, truth.packets, byEdge)
	var active struct{ Flows uint64 }
	if err := getResponse(cl, "/api/v1/aggregates/active", net1, &active); err != nil {
		t.Fatal(err)
	}
	if active.Flows != 2 {
		t.Errorf("active count %d, want 2 (one open connection to B, one to C)", active.Flows)
	}
}

func rowsText(rows []api.FlowRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %s %s %s %s active=%v bytes=%d+%d status=%#x\n", r.FlowID, r.HostID, r.Direction, rowKey(r), r.Active, r.BytesSent, r.BytesRecv, r.Status)
	}
	return b.String()
}

// kill -9 of an agent with connections open, some of which close while it
// is down, then a restart on its state dir: those are closed (ended
// unobserved), the others keep their flow_id and stay active, none is
// listed twice, and the active count follows.
func TestAgentKilledWithOpenConnectionsKeepsAndClosesThem(t *testing.T) {
	h := newTwoHosts(t)
	c := serve(t, t.TempDir())
	stateA := t.TempDir()
	a := startAgent(t, h.hostA, c.grpc, stateA, countingAgentFlags...)
	startAgent(t, h.hostB, c.grpc, t.TempDir(), countingAgentFlags...)

	ln, accepted := listenOpen(t, h.B, h.bIP, 9900)
	var conns []*openConn
	payload := map[int]int{} // client port -> bytes sent
	for i := range 6 {
		o := dialOpen(t, h.A, ln, accepted, 10_000+1_000*i)
		conns = append(conns, o)
		payload[o.port] = 10_000 + 1_000*i
	}
	closing, staying := conns[:3], conns[3:]

	// Announced by A, and updated with their bytes so far (which the
	// state dir keeps, for the DESTROY of a flow found gone).
	ids := map[int]string{}
	var rows []api.FlowRow
	testutil.WaitFor(t, 60*time.Second, "A's update of every open connection", func() bool {
		rows = all(t, c.http, "network_id=mesh1&node_id=host-a&direction=egress")
		for _, r := range rows {
			if r.Active && r.BytesSent >= uint64(payload[int(r.SrcPort)]) {
				ids[int(r.SrcPort)] = r.FlowID
			}
		}
		return len(rows) == len(conns) && len(ids) == len(conns)
	})

	a.cmd.Process.Kill()
	<-a.exited
	var ports []int
	for _, o := range closing {
		o.close()
		ports = append(ports, o.port)
	}
	stopReap := h.reap(t)
	defer stopReap()
	testutil.WaitFor(t, 30*time.Second, "the closed connections gone from A's conntrack", func() bool {
		for _, f := range h.Dump(t) {
			for _, p := range ports {
				if f.TupleOrig.Proto.SourcePort == uint16(p) {
					return false
				}
			}
		}
		return true
	})

	a = startAgent(t, h.hostA, c.grpc, stateA, countingAgentFlags...)
	cl := apiClient(t, c.http)
	settled := func(wantActive int, closedUnobserved map[int]bool) func() bool {
		return func() bool {
			rows = all(t, c.http, "network_id=mesh1")
			if len(rows) != len(conns) {
				return false
			}
			active := 0
			for _, r := range rows {
				port := int(r.SrcPort)
				if r.FlowID != ids[port] || r.HostID != "host-a" {
					return false
				}
				unobserved := r.Status&flowlog.StatusEndedUnobserved != 0
				if closedUnobserved[port] {
					if r.State != "finished" || !unobserved {
						return false
					}
				} else if r.Active {
					active++
				}
			}
			var n struct{ Flows uint64 }
			return active == wantActive && getResponse(cl, "/api/v1/aggregates/active", "network_id=mesh1", &n) == nil &&
				n.Flows == uint64(wantActive)
		}
	}
	down := map[int]bool{}
	for _, p := range ports {
		down[p] = true
	}
	if !testutil.Eventually(60*time.Second, settled(len(staying), down)) {
		t.Fatalf("after the restart, want the %d connections closed while A was down finished (status %#x), the %d others active, each under its flow_id %v, once:\n%s\nagent log:\n%s",
			len(closing), flowlog.StatusEndedUnobserved, len(staying), ids, rowsText(rows), a.log())
	}
	t.Logf("after the restart:\n%s", rowsText(rows))
	// Both observations of each connection, none twice.
	everything := all(t, c.http, "network_id=mesh1&observations=all")
	seen := map[string]bool{}
	for _, r := range everything {
		if seen[r.HostID+r.FlowID] {
			t.Fatalf("flow %s of %s listed twice:\n%s", r.FlowID, r.HostID, rowsText(everything))
		}
		seen[r.HostID+r.FlowID] = true
	}
	if len(everything) != 2*len(conns) {
		t.Fatalf("observations=all lists %d flows, want %d:\n%s", len(everything), 2*len(conns), rowsText(everything))
	}

	// The ones open across the restart end as the kernel saw them.
	for _, o := range staying {
		o.close()
	}
	if !testutil.Eventually(60*time.Second, settled(0, down)) {
		t.Fatalf("after closing the rest, want no active flow, each once under its flow_id %v:\n%s\nagent log:\n%s", ids, rowsText(rows), a.log())
	}
	for _, r := range rows {
		if p := int(r.SrcPort); !down[p] && (r.Status&flowlog.StatusEndedUnobserved != 0 || r.BytesSent < uint64(payload[p])) {
			t.Errorf("connection open across the restart ended as %+v, want its kernel DESTROY", r)
		}
	}
	a.stop(t)
}

// DESTROYs a full spool dropped (collector down) do not leave their flows
// open: once the collector is back, the agent's resyncs close them, ended
// unobserved; the connections open across it keep their flow_id; nothing
// stays active or is listed twice.
func TestSpoolFullDropOfDestroysIsReconciled(t *testing.T) {
	h := newTwoHosts(t)
	addr, data, metricsAddr := freePort(t), t.TempDir(), freePort(t)
	c := serve(t, data, "--grpc-addr", addr)
	a := startAgent(t, h.hostA, addr, t.TempDir(), append(countingAgentFlags,
		"--spool-max-bytes", "1048576", "--batch-events", "100", "--metrics-addr", metricsAddr)...)
	metric := func(sample string) float64 {
		_, text := testutil.HTTPText(t, "http://"+metricsAddr+"/metrics")
		return metricValue(text, sample)
	}
	stopReap := h.reap(t)
	defer stopReap()

	ln, accepted := listenOpen(t, h.B, h.bIP, 9950)
	var conns []*openConn
	for range 3 {
		conns = append(conns, dialOpen(t, h.A, ln, accepted, 30_000))
	}
	ids := map[int]string{}
	testutil.WaitFor(t, 60*time.Second, "A's update of every open connection", func() bool {
		for _, r := range all(t, c.http, "network_id=mesh1&port=9950") {
			if r.Active && r.BytesSent >= 30_000 {
				ids[int(r.SrcPort)] = r.FlowID
			}
		}
		return len(ids) == len(conns)
	})

	// The collector goes away and a flood of short flows fills the spool:
	// the first STARTs are spooled, most DESTROYs are dropped (and handed
	// back to the next resync, dropped again while the spool stays full).
	c.stop(t)
	udpFlows(t, &mesh{a: h.A, b: h.B, aIP: h.aIP, bIP: h.bIP}, 9951, 30000, 8000)
	testutil.WaitFor(t, 60*time.Second, "the spool full and the flood gone from A's conntrack", func() bool {
		return strings.Contains(a.log(), "spool full: dropping events") && len(h.Dump(t)) <= len(conns)
	})
	for _, o := range conns {
		o.close()
	}
	testutil.WaitFor(t, 30*time.Second, "the connections gone from A's conntrack", func() bool { return len(h.Dump(t)) == 0 })
	resyncs := metric("flowlog_agent_conntrack_resyncs_total")
	testutil.WaitFor(t, 30*time.Second, "two more resyncs", func() bool {
		return metric("flowlog_agent_conntrack_resyncs_total") >= resyncs+2
	})

	c = serve(t, data, "--grpc-addr", addr)
	var rows []api.FlowRow
	cl := apiClient(t, c.http)
	var n struct{ Flows uint64 }
	settled := func() bool {
		if err := getResponse(cl, "/api/v1/aggregates/active", "network_id=mesh1", &n); err != nil || n.Flows != 0 {
			return false
		}
		rows = all(t, c.http, "network_id=mesh1&port=9950")
		if len(rows) != len(conns) {
			return false
		}
		for _, r := range rows {
			if r.State != "finished" || r.FlowID != ids[int(r.SrcPort)] || r.BytesSent < 30_000 {
				return false
			}
		}
		return true
	}
	if !testutil.Eventually(120*time.Second, settled) {
		t.Fatalf("want no active flow (%d) and the %d connections finished under their flow_id %v:\n%s\nagent log:\n%s",
			n.Flows, len(conns), ids, rowsText(rows), a.log())
	}
	everything := all(t, c.http, "network_id=mesh1&observations=all")
	seen := map[string]bool{}
	unobserved := 0
	for _, r := range everything {
		if seen[r.FlowID] || r.State != "finished" {
			t.Fatalf("flow %s listed twice or not finished: %+v", r.FlowID, r)
		}
		seen[r.FlowID] = true
		if r.Status&flowlog.StatusEndedUnobserved != 0 {
			unobserved++
		}
	}
	if unobserved == 0 {
		t.Fatalf("no flow closed as ended unobserved: no DESTROY was dropped, the test proves nothing\nagent log:\n%s", a.log())
	}
	t.Logf("%d flows listed after the flood, %d ended unobserved, none active; %v events dropped",
		len(everything), unobserved, metric("flowlog_agent_events_dropped_total"))
	a.stop(t)
}
