// Package netnstest builds what the agent's kernel tests run in: two fresh
// network namespaces joined by a veth pair, with conntrack active in one of
// them. Test code only (root, ip, nft); nothing in the binary imports it.
package netnstest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"

	"github.com/flowlog/flowlog/internal/testutil"
)

// Pair is two network namespaces joined by a veth: A (10.200.x.1, where
// conntrack is watched) and B (10.200.x.2).
type Pair struct {
	A, B         string // names under /var/run/netns, unique per test
	HA, HB       netns.NsHandle
	AddrA, AddrB netip.Addr
}

// NeedRoot skips (fails under CI) unless the test can build namespaces.
func NeedRoot(t *testing.T) {
	t.Helper()
	testutil.Root(t) // creates network namespaces and reads kernel conntrack
	testutil.Tool(t, "ip")
	testutil.Tool(t, "nft")
}

// Run runs a command, failing the test with its output.
func Run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// New makes the namespaces (removed at cleanup), a conntrack-using
// nftables rule in A and 1 s conntrack timeouts there for entries past
// their traffic (closing TCP, UDP, ICMP), so they expire soon after it.
func New(t *testing.T) *Pair {
	t.Helper()
	NeedRoot(t)
	sfx := fmt.Sprintf("%d%06d", os.Getpid()%1000, rand.IntN(1e6))
	x := rand.IntN(256)
	p := &Pair{A: "fltA" + sfx, B: "fltB" + sfx,
		AddrA: netip.AddrFrom4([4]byte{10, 200, byte(x), 1}), AddrB: netip.AddrFrom4([4]byte{10, 200, byte(x), 2})}
	Run(t, "ip", "netns", "add", p.A)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.A).Run() })
	Run(t, "ip", "netns", "add", p.B)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.B).Run() })
	va, vb := "va"+sfx, "vb"+sfx // ≤ 15 chars
	Run(t, "ip", "link", "add", va, "netns", p.A, "type", "veth", "peer", "name", vb, "netns", p.B)
	Run(t, "ip", "-n", p.A, "addr", "add", p.AddrA.String()+"/24", "dev", va)
	Run(t, "ip", "-n", p.B, "addr", "add", p.AddrB.String()+"/24", "dev", vb)
	for _, c := range [][]string{{p.A, va}, {p.B, vb}, {p.A, "lo"}, {p.B, "lo"}} {
		Run(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	nft := func(args ...string) { Run(t, append([]string{"ip", "netns", "exec", p.A, "nft"}, args...)...) }
	nft("add", "table", "inet", "t")
	nft("add", "chain", "inet", "t", "c", "{ type filter hook output priority 0; }")
	nft("add", "rule", "inet", "t", "c", "ct", "state", "new,established", "accept")
	for _, s := range []string{"tcp_timeout_time_wait", "tcp_timeout_close", "tcp_timeout_fin_wait",
		"tcp_timeout_close_wait", "tcp_timeout_last_ack", "udp_timeout", "udp_timeout_stream", "icmp_timeout"} {
		p.Sysctl(t, "nf_conntrack_"+s, "1")
	}
	var err error
	if p.HA, err = netns.GetFromName(p.A); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.HA.Close() })
	if p.HB, err = netns.GetFromName(p.B); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.HB.Close() })
	return p
}

// Sysctl sets net.netfilter.NAME in A.
func (p *Pair) Sysctl(t *testing.T, name, val string) {
	t.Helper()
	Run(t, "ip", "netns", "exec", p.A, "sysctl", "-qw", "net.netfilter."+name+"="+val)
}

// ReadSysctl reads net.netfilter.NAME in A.
func (p *Pair) ReadSysctl(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", p.A, "cat", "/proc/sys/net/netfilter/"+name).Output()
	if err != nil {
		t.Error(err) // not Fatal: may run on another goroutine
		return ""
	}
	return strings.TrimSpace(string(out))
}

// In runs fn on an OS thread that joined ns; sockets made there stay
// there. The thread is never returned to the scheduler.
func In(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with the goroutine
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// Dump returns A's conntrack table.
func (p *Pair) Dump(t *testing.T) []ct.Flow {
	t.Helper()
	c, err := ct.Dial(&netlink.Config{NetNS: int(p.HA)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fs, err := c.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// Reaper dumps A's table now and then: a dump removes expired entries at
// once (hence their DESTROY), where the kernel's garbage collector can
// take tens of seconds on a quiet table.
func (p *Pair) Reaper(t *testing.T, every time.Duration) (stop func()) {
	c, err := ct.Dial(&netlink.Config{NetNS: int(p.HA)})
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
