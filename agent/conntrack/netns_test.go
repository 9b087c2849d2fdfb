package conntrack

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"

	"github.com/flowlog/flowlog/internal/testutil"
)

// pair is two network namespaces joined by a veth: A (10.200.x.1, where
// conntrack is watched) and B (10.200.x.2).
type pair struct {
	A, B         string
	hA, hB       netns.NsHandle
	addrA, addrB netip.Addr
}

func needRoot(t *testing.T) {
	t.Helper()
	testutil.Root(t) // creates network namespaces and reads kernel conntrack
	testutil.Tool(t, "ip")
	testutil.Tool(t, "nft")
}

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newPair makes the namespaces, a conntrack-using nftables rule in A and
// 1 s conntrack timeouts there, so entries expire soon after their traffic.
func newPair(t *testing.T) *pair {
	t.Helper()
	needRoot(t)
	sfx := fmt.Sprintf("%d%06d", os.Getpid()%1000, rand.IntN(1e6))
	x := rand.IntN(256)
	p := &pair{A: "fltA" + sfx, B: "fltB" + sfx,
		addrA: netip.AddrFrom4([4]byte{10, 200, byte(x), 1}), addrB: netip.AddrFrom4([4]byte{10, 200, byte(x), 2})}
	run(t, "ip", "netns", "add", p.A)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.A).Run() })
	run(t, "ip", "netns", "add", p.B)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.B).Run() })
	va, vb := "va"+sfx, "vb"+sfx // ≤ 15 chars
	run(t, "ip", "link", "add", va, "netns", p.A, "type", "veth", "peer", "name", vb, "netns", p.B)
	run(t, "ip", "-n", p.A, "addr", "add", p.addrA.String()+"/24", "dev", va)
	run(t, "ip", "-n", p.B, "addr", "add", p.addrB.String()+"/24", "dev", vb)
	for _, c := range [][]string{{p.A, va}, {p.B, vb}, {p.A, "lo"}, {p.B, "lo"}} {
		run(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	nft := func(args ...string) { run(t, append([]string{"ip", "netns", "exec", p.A, "nft"}, args...)...) }
	nft("add", "table", "inet", "t")
	nft("add", "chain", "inet", "t", "c", "{ type filter hook output priority 0; }")
	nft("add", "rule", "inet", "t", "c", "ct", "state", "new,established", "accept")
	for _, s := range []string{"tcp_timeout_time_wait", "tcp_timeout_close", "tcp_timeout_fin_wait",
		"tcp_timeout_close_wait", "tcp_timeout_last_ack", "udp_timeout", "udp_timeout_stream", "icmp_timeout"} {
		p.sysctl(t, "nf_conntrack_"+s, "1")
	}
	var err error
	if p.hA, err = netns.GetFromName(p.A); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.hA.Close() })
	if p.hB, err = netns.GetFromName(p.B); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.hB.Close() })
	return p
}

func (p *pair) sysctl(t *testing.T, name, val string) {
	t.Helper()
	run(t, "ip", "netns", "exec", p.A, "sysctl", "-qw", "net.netfilter."+name+"="+val)
}

func (p *pair) readSysctl(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", p.A, "cat", "/proc/sys/net/netfilter/"+name).Output()
	if err != nil {
		t.Error(err) // not Fatal: may run on another goroutine
		return ""
	}
	return strings.TrimSpace(string(out))
}

// in runs fn on a thread in ns; sockets made there stay there.
func in(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	if err := inNetNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// reaper dumps A's table now and then: a dump removes expired entries at
// once (hence their DESTROY), where the kernel's garbage collector can
// take tens of seconds on a quiet table.
func (p *pair) reaper(t *testing.T, every time.Duration) (stop func()) {
	c, err := ct.Dial(&netlink.Config{NetNS: int(p.hA)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				_, _ = c.Dump(nil)
			}
		}
	})
	return func() { close(done); wg.Wait(); c.Close() }
}

// collector gathers what a Source emits.
type collector struct {
	mu    sync.Mutex
	flows []Flow
}

func (c *collector) consume(ch <-chan Flow) {
	for f := range ch {
		c.mu.Lock()
		c.flows = append(c.flows, f)
		c.mu.Unlock()
	}
}

func (c *collector) find(k Kind, match func(Flow) bool) (Flow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.flows {
		if f.Kind == k && match(f) {
			return f, true
		}
	}
	return Flow{}, false
}

func (c *collector) all() []Flow {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Flow(nil), c.flows...)
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}
