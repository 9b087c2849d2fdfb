package e2e

// End-to-end tests of `flowlog agent` against the real kernel: two network
// namespaces joined by a veth pair, an nftables rule that uses `ct` (which
// turns conntrack on there), short conntrack timeouts so DESTROY comes
// quickly, the agent watching namespace A's conntrack, and `flowlog serve`
// on loopback. Traffic of known sizes is made in-process: sockets are
// created from a thread switched into a namespace and stay there.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/flowlog/flowlog/internal/testutil"
)

// mesh is two namespaces: A (the agent's host) and B (a peer), one /24.
type mesh struct {
	a, b       string // namespace names
	aIP, bIP   string
	prefix     string
	configPath string
}

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.Root(t)
	for _, tool := range []string{"ip", "nft", "conntrack"} {
		testutil.Tool(t, tool)
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newMesh(t *testing.T) *mesh {
	requireRoot(t)
	x := rand.IntN(200) + 20
	id := fmt.Sprintf("%d%d", os.Getpid()%1000, x)
	m := &mesh{a: "flA" + id, b: "flB" + id, aIP: fmt.Sprintf("10.77.%d.1", x), bIP: fmt.Sprintf("10.77.%d.2", x),
		prefix: fmt.Sprintf("10.77.%d.0/24", x)}
	run(t, "ip", "netns", "add", m.a)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", m.a).Run() })
	run(t, "ip", "netns", "add", m.b)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", m.b).Run() })
	va, vb := "va"+id, "vb"+id
	run(t, "ip", "link", "add", va, "netns", m.a, "type", "veth", "peer", "name", vb, "netns", m.b)
	for _, ns := range []struct{ ns, dev, ip string }{{m.a, va, m.aIP}, {m.b, vb, m.bIP}} {
		run(t, "ip", "-n", ns.ns, "addr", "add", ns.ip+"/24", "dev", ns.dev)
		run(t, "ip", "-n", ns.ns, "link", "set", ns.dev, "up")
		run(t, "ip", "-n", ns.ns, "link", "set", "lo", "up")
	}
	// A rule that uses ct makes the kernel track connections in A.
	run(t, "ip", "netns", "exec", m.a, "nft", "add table inet flowlog; add chain inet flowlog out { type filter hook output priority 0; }; add rule inet flowlog out ct state new,established counter accept")
	for _, s := range []string{"tcp_timeout_time_wait", "tcp_timeout_close", "tcp_timeout_fin_wait", "tcp_timeout_close_wait",
		"tcp_timeout_last_ack", "udp_timeout", "udp_timeout_stream", "icmp_timeout"} {
		run(t, "ip", "netns", "exec", m.a, "sysctl", "-qw", "net.netfilter.nf_conntrack_"+s+"=1")
	}
	m.configPath = filepath.Join(t.TempDir(), "agent.yaml")
	cfg := fmt.Sprintf(`host:
  id: host-a
  name: alpha
networks:
  - id: mesh1
    addresses: [%s]
    cidrs: [%s]
participants:
  - match: %s
    type: node
    id: host-b
    name: beta
`, m.aIP, m.prefix, m.bIP)
	if err := os.WriteFile(m.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

// in runs fn on a thread inside namespace ns; sockets it creates stay there.
func in(t *testing.T, ns string, fn func() error) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	if err := fn(); err != nil {
		t.Fatal(err)
	}
}

// tcpExchange: the client (in ns from) sends up bytes, the server (in ns
// to) answers down bytes, then both close. Returns the client's port.
func tcpExchange(t *testing.T, from, to, toIP string, port, up, down int) int {
	t.Helper()
	var ln net.Listener
	in(t, to, func() (err error) { ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", toIP, port)); return })
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		if _, err := io.CopyN(io.Discard, c, int64(up)); err != nil {
			served <- err
			return
		}
		_, err = c.Write(make([]byte, down))
		served <- err
	}()
	var c net.Conn
	in(t, from, func() (err error) { c, err = net.Dial("tcp", ln.Addr().String()); return })
	if _, err := c.Write(make([]byte, up)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, c, int64(down)); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	c.Close()
	return c.LocalAddr().(*net.TCPAddr).Port
}

// udpExchange sends one datagram of up bytes from ns from and gets down back.
func udpExchange(t *testing.T, from, to, toIP string, port, up, down int) int {
	t.Helper()
	var srv net.PacketConn
	in(t, to, func() (err error) { srv, err = net.ListenPacket("udp", fmt.Sprintf("%s:%d", toIP, port)); return })
	defer srv.Close()
	go func() {
		buf := make([]byte, 65536)
		_, addr, err := srv.ReadFrom(buf)
		if err == nil {
			srv.WriteTo(make([]byte, down), addr)
		}
	}()
	var c net.Conn
	in(t, from, func() (err error) { c, err = net.Dial("udp", srv.LocalAddr().String()); return })
	defer c.Close()
	if _, err := c.Write(make([]byte, up)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 65536)); err != nil {
		t.Fatal(err)
	}
	return c.LocalAddr().(*net.UDPAddr).Port
}

// agentProc is a running `flowlog agent`.
type agentProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	logs   strings.Builder
	exited chan error
}

func startAgent(t *testing.T, m *mesh, collector, state string, extra ...string) *agentProc {
	t.Helper()
	args := append([]string{"--log-format", "json", "agent", "--config", m.configPath, "--collector", collector,
		"--state-dir", state, "--netns", m.a, "--batch-interval", "100ms",
		"--drain-timeout", "2s", "--backoff-max", "500ms"}, extra...)
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--tls") || a == "--stdout" }) {
		args = append(args, "--plaintext")
	}
	cmd := exec.Command(binary, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, exited: make(chan error, 1)}
	running := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			a.mu.Lock()
			a.logs.WriteString(sc.Text() + "\n")
			a.mu.Unlock()
			if strings.Contains(sc.Text(), `"msg":"agent running"`) {
				once.Do(func() { close(running) })
			}
		}
		a.exited <- cmd.Wait()
	}()
	select {
	case <-running:
	case err := <-a.exited:
		t.Fatalf("agent exited at start: %v\n%s", err, a.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not start:\n%s", a.log())
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return a
}

func (a *agentProc) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

func (a *agentProc) stop(t *testing.T) {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.exited:
		if err != nil {
			t.Fatalf("agent exit after SIGTERM: %v\n%s", err, a.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not stop:\n%s", a.log())
	}
}

type agentFlow struct {
	FlowID        string `json:"flow_id"`
	Protocol      int    `json:"protocol"`
	SrcIP         string `json:"src_ip"`
	DstIP         string `json:"dst_ip"`
	SrcPort       int    `json:"src_port"`
	DstPort       int    `json:"dst_port"`
	Direction     string `json:"direction"`
	SrcType       string `json:"src_type"`
	SrcEntityID   string `json:"src_entity_id"`
	SrcEntityName string `json:"src_entity_name"`
	DstType       string `json:"dst_type"`
	DstEntityID   string `json:"dst_entity_id"`
	DstEntityName string `json:"dst_entity_name"`
	HostID        string `json:"host_id"`
	NetworkID     string `json:"network_id"`
	BytesSent     uint64 `json:"bytes_sent"`
	BytesRecv     uint64 `json:"bytes_recv"`
	PacketsSent   uint64 `json:"packets_sent"`
	PacketsRecv   uint64 `json:"packets_recv"`
	Active        bool   `json:"active"`
}

// finishedFlows waits until the API lists at least n finished flows of
// mesh1 for this host, and returns them.
func finishedFlows(t *testing.T, m *mesh, base string, n int, timeout time.Duration) []agentFlow {
	t.Helper()
	var flows []agentFlow
	var err error
	answered := false
	testutil.Eventually(timeout, func() bool {
		exec.Command("ip", "netns", "exec", m.a, "conntrack", "-L").Run() // evicts expired entries now
		var resp []byte
		if resp, err = httpGet(base + "/api/v1/flows?state=finished&per_page=1000&network_id=mesh1"); err != nil {
			return false
		}
		var r struct{ Response []agentFlow }
		json.Unmarshal(resp, &r)
		flows, answered = r.Response, true
		return len(flows) >= n
	})
	if !answered {
		t.Fatalf("API not answering: %v", err)
	}
	return flows // the callers say what is missing
}

func httpGet(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// counted checks a conntrack byte counter: L3 bytes are the payload plus, per
// packet, an IPv4 header (20) and a TCP (20-60) or UDP (8) header.
func counted(t *testing.T, what string, bytes, packets uint64, payload int, minHdr, maxHdr uint64) {
	t.Helper()
	lo, hi := uint64(payload)+packets*minHdr, uint64(payload)+packets*maxHdr
	if packets == 0 || bytes < lo || bytes > hi {
		t.Errorf("%s: %d bytes in %d packets, want payload %d plus %d..%d header bytes per packet (%d..%d)",
			what, bytes, packets, payload, minHdr, maxHdr, lo, hi)
	}
}

func TestAgentReportsKernelFlowsWithDirectionParticipantsAndCounters(t *testing.T) {
	m := newMesh(t)
	c := serve(t, t.TempDir())
	a := startAgent(t, m, c.grpc, t.TempDir())

	egressPort := tcpExchange(t, m.a, m.b, m.bIP, 9000, 100_000, 5_000) // A → B
	tcpExchange(t, m.b, m.a, m.aIP, 9002, 3_000, 7_000)                 // B → A: ingress at A
	udpPort := udpExchange(t, m.a, m.b, m.bIP, 9001, 1_000, 500)

	flows := finishedFlows(t, m, c.http, 3, 90*time.Second)
	byKey := map[string]agentFlow{}
	for _, f := range flows {
		key := fmt.Sprintf("%d/%d", f.Protocol, f.DstPort)
		if _, dup := byKey[key]; dup {
			t.Fatalf("flow %s listed twice: %+v", key, flows)
		}
		byKey[key] = f
	}
	if len(flows) != 3 {
		t.Fatalf("want exactly 3 finished flows, got %d: %+v\nagent log:\n%s", len(flows), flows, a.log())
	}

	eg := byKey["6/9000"]
	if eg.Direction != "egress" || eg.SrcIP != m.aIP || eg.DstIP != m.bIP || eg.SrcPort != egressPort ||
		eg.HostID != "host-a" || eg.NetworkID != "mesh1" ||
		eg.SrcType != "node" || eg.SrcEntityID != "host-a" || eg.SrcEntityName != "alpha" ||
		eg.DstType != "node" || eg.DstEntityID != "host-b" || eg.DstEntityName != "beta" {
		t.Errorf("egress TCP flow: %+v", eg)
	}
	counted(t, "egress TCP sent", eg.BytesSent, eg.PacketsSent, 100_000, 40, 80)
	counted(t, "egress TCP recv", eg.BytesRecv, eg.PacketsRecv, 5_000, 40, 80)

	ing := byKey["6/9002"]
	if ing.Direction != "ingress" || ing.SrcIP != m.bIP || ing.DstIP != m.aIP || ing.SrcEntityID != "host-b" {
		t.Errorf("ingress TCP flow: %+v", ing)
	}
	// Sent is always from this host: A answered 7,000 and received 3,000.
	counted(t, "ingress TCP sent", ing.BytesSent, ing.PacketsSent, 7_000, 40, 80)
	counted(t, "ingress TCP recv", ing.BytesRecv, ing.PacketsRecv, 3_000, 40, 80)

	udp := byKey["17/9001"]
	if udp.Direction != "egress" || udp.SrcPort != udpPort || udp.PacketsSent != 1 || udp.PacketsRecv != 1 {
		t.Errorf("UDP flow: %+v", udp)
	}
	counted(t, "UDP sent", udp.BytesSent, udp.PacketsSent, 1_000, 28, 28)
	counted(t, "UDP recv", udp.BytesRecv, udp.PacketsRecv, 500, 28, 28)
	a.stop(t)
}

// freePort returns a loopback port nobody listens on (yet).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// udpFlows makes n short UDP flows from A to B, each from its own source
// port (an ephemeral port could repeat and join a still-open flow).
func udpFlows(t *testing.T, m *mesh, port, firstSrcPort, n int) {
	t.Helper()
	var srv net.PacketConn
	in(t, m.b, func() (err error) { srv, err = net.ListenPacket("udp", fmt.Sprintf("%s:%d", m.bIP, port)); return })
	defer srv.Close()
	in(t, m.a, func() error {
		for i := 0; i < n; i++ {
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(m.aIP), Port: firstSrcPort + i}, srv.LocalAddr().(*net.UDPAddr))
			if err != nil {
				return err
			}
			c.Write([]byte("x"))
			c.Close()
		}
		return nil
	})
}

func waitConntrackEmpty(t *testing.T, ns string, timeout time.Duration) {
	t.Helper()
	testutil.WaitFor(t, timeout, "an empty conntrack table in "+ns, func() bool {
		// A dump (-L) also evicts expired entries at once; the kernel's own
		// garbage collection can take half a minute.
		out, err := exec.Command("ip", "netns", "exec", ns, "conntrack", "-L").Output()
		if err != nil {
			t.Fatalf("conntrack -L in %s: %v", ns, err)
		}
		return len(strings.TrimSpace(string(out))) == 0
	})
}

func countFlows(t *testing.T, base, query string) int {
	t.Helper()
	return len(all(t, base, query))
}

// Collector down for a while, then up: the agent's spool and reconnects
// deliver every flow. Then the agent is killed with a non-empty spool and
// restarted: the spooled flows arrive too. None is listed twice.
func TestAgentSpoolsWhileCollectorIsDownAndAcrossRestart(t *testing.T) {
	m := newMesh(t)
	addr := freePort(t)
	state, data := t.TempDir(), t.TempDir()
	a := startAgent(t, m, addr, state)
	const n = 300
	udpFlows(t, m, 9100, 20000, n)
	waitConntrackEmpty(t, m.a, 60*time.Second) // every DESTROY read by the agent
	c := serve(t, data, "--grpc-addr", addr)
	waitFinished(t, c.http, n, a)

	// Second round: collector stopped, flows spooled, agent killed.
	c.stop(t)
	udpFlows(t, m, 9101, 21000, n)
	waitConntrackEmpty(t, m.a, 60*time.Second)
	time.Sleep(time.Second) // > --batch-interval: the last envelope is sealed
	a.cmd.Process.Kill()
	<-a.exited

	c = serve(t, data, "--grpc-addr", addr)
	a = startAgent(t, m, addr, state)
	if !strings.Contains(a.log(), `"msg":"resuming with spooled envelopes"`) {
		t.Errorf("agent did not resume from its spool:\n%s", a.log())
	}
	waitFinished(t, c.http, 2*n, a)
	if got := countFlows(t, c.http, "network_id=mesh1"); got != 2*n {
		t.Fatalf("merged view lists %d flows, want %d (a flow twice?)", got, 2*n)
	}
	a.stop(t)
}

// waitFinished waits for exactly n finished flows of mesh1 and no active one.
func waitFinished(t *testing.T, base string, n int, a *agentProc) {
	t.Helper()
	q := "network_id=mesh1&state=finished"
	testutil.Eventually(60*time.Second, func() bool { return countFlows(t, base, q) >= n })
	got := countFlows(t, base, q)
	active := all(t, base, "network_id=mesh1&state=active")
	if got != n || len(active) != 0 {
		t.Fatalf("%d finished flows, want %d; %d active: %+v\nagent log:\n%s", got, n, len(active), active, a.log())
	}
}

// With the collector unreachable and a small spool, the agent drops (and
// counts) what does not fit, keeps running, and its memory stays bounded.
func TestAgentDropsAndCountsWhenSpoolIsFull(t *testing.T) {
	m := newMesh(t)
	a := startAgent(t, m, freePort(t), t.TempDir(), "--spool-max-bytes", "1048576", "--batch-events", "100")
	udpFlows(t, m, 9200, 30000, 8000) // ~16k events, well over 1 MiB of envelopes
	if !testutil.Eventually(30*time.Second, func() bool { return strings.Contains(a.log(), "spool full: dropping events") }) {
		t.Fatalf("no drop was reported:\n%s", a.log())
	}
	if err := a.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("agent died: %v", err)
	}
	if rss := rssKB(t, a.cmd.Process.Pid); rss > 200_000 {
		t.Errorf("agent RSS %d KB with a 1 MiB spool: memory not bounded", rss)
	}
	a.stop(t)
	var stopped struct {
		Dropped uint64 `json:"dropped_events"`
	}
	for _, l := range strings.Split(a.log(), "\n") {
		if strings.Contains(l, `"msg":"agent stopped"`) {
			json.Unmarshal([]byte(l), &stopped)
		}
	}
	if stopped.Dropped == 0 {
		t.Errorf("agent stopped without counting drops:\n%s", a.log())
	}
}

func rssKB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%d", &kb)
			return kb
		}
	}
	return 0
}

// With TLS configured on both sides, flows arrive over an encrypted stream.
func TestAgentStreamsOverTLS(t *testing.T) {
	m := newMesh(t)
	ca, cert, key := testPKI(t, t.TempDir())
	c := serve(t, t.TempDir(), "--tls-cert", cert, "--tls-key", key)
	a := startAgent(t, m, c.grpc, t.TempDir(), "--tls-ca", ca)
	tcpExchange(t, m.a, m.b, m.bIP, 9300, 1000, 1000)
	if flows := finishedFlows(t, m, c.http, 1, 60*time.Second); len(flows) != 1 || flows[0].DstPort != 9300 {
		t.Fatalf("over TLS: %+v\nagent log:\n%s", flows, a.log())
	}
	a.stop(t)
}

// --stdout prints each event as a JSON line instead of streaming.
func TestAgentStdoutPrintsEvents(t *testing.T) {
	m := newMesh(t)
	cmd := exec.Command(binary, "agent", "--config", m.configPath, "--stdout", "--netns", m.a, "--state-dir", t.TempDir())
	out, _ := cmd.StdoutPipe()
	logs := &logBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Subscribed to conntrack once it says it runs.
	testutil.WaitFor(t, 30*time.Second, "the agent running", func() bool { return strings.Contains(logs.String(), "agent running") })
	tcpExchange(t, m.a, m.b, m.bIP, 9400, 10, 10)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	seen := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for !(seen["EVENT_START"] && seen["EVENT_DESTROY"]) {
		exec.Command("ip", "netns", "exec", m.a, "conntrack", "-L").Run()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("agent --stdout ended early")
			}
			var ev struct {
				Type      string `json:"type"`
				DstPort   int    `json:"dst_port"`
				Direction string `json:"direction"`
				FlowID    string `json:"flow_id"`
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("not a JSON line: %q", l)
			}
			if ev.DstPort == 9400 && ev.Direction == "DIR_EGRESS" && ev.FlowID != "" {
				seen[ev.Type] = true
			}
		case <-time.After(250 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no START and DESTROY for the flow on stdout; seen %v", seen)
		}
	}
}
