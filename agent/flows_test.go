package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/agent/config"
	"github.com/flowlog/flowlog/agent/conntrack"
	"github.com/flowlog/flowlog/agent/export"
	"github.com/flowlog/flowlog/agent/spool"
	"github.com/flowlog/flowlog/internal/netnstest"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// tLog writes log lines to the test's log.
type tLog struct{ t *testing.T }

func (w tLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// events is what a pipeline printed, decoded.
type events struct {
	mu  sync.Mutex
	all []*pb.FlowEvent
}

func (e *events) read(t *testing.T, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		ev := new(pb.FlowEvent)
		if err := protojson.Unmarshal(sc.Bytes(), ev); err != nil {
			t.Errorf("pipeline printed %q: %v", sc.Text(), err)
			continue
		}
		e.mu.Lock()
		e.all = append(e.all, ev)
		e.mu.Unlock()
	}
}

// of returns the events of one connection (by its client port), in order.
func (e *events) of(port uint16) []*pb.FlowEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*pb.FlowEvent
	for _, ev := range e.all {
		if ev.SrcPort == uint32(port) && ev.Protocol == 6 {
			out = append(out, ev)
		}
	}
	return out
}

// agentRun is the agent's pipeline on the real kernel: conntrack source ->
// Pipeline, printing events, with its state directory.
type agentRun struct {
	ev   *events
	src  *conntrack.Source
	stop func()
}

// startAgent runs a source on p.A into a pipeline. stop ends it the way
// kill -9 would as far as the next run can tell: the pipeline is dropped
// where it is, the kernel keeps its entries and sysctls (the tests switch
// acct and timestamps on beforehand, so Close restores nothing), and the
// state file holds what the source had synced.
func startAgent(t *testing.T, p *netnstest.Pair, state string, o conntrack.Options) *agentRun {
	t.Helper()
	return startAgentBatch(t, p, state, o, nil)
}

// startAgentBatch is startAgent into a batcher (spool) instead of printing,
// when b is not nil.
func startAgentBatch(t *testing.T, p *netnstest.Pair, state string, o conntrack.Options, b *export.Batcher) *agentRun {
	t.Helper()
	cfg, err := config.Parse("agent.yaml", fmt.Appendf(nil, `host: {id: host-a, name: a}
networks:
  - id: mesh1
    addresses: [%s]
    cidrs: [10.200.0.0/16]
`, p.AddrA))
	if err != nil {
		t.Fatal(err)
	}
	o.NetNS, o.InitialSync, o.LookupStart = p.A, true, true
	o.StateFile = filepath.Join(state, "flows")
	o.Log = slog.New(slog.NewTextHandler(tLog{t}, nil))
	src, err := conntrack.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	a := &agentRun{ev: &events{}, src: src}
	var pipe *Pipeline
	if b != nil {
		pipe = NewPipeline(cfg, b, nil)
		pw.Close()
	} else {
		pipe = NewPipeline(cfg, nil, pw)
	}
	pipe.Undelivered = src.Undelivered // as agent.Run wires it
	ctx, cancel := context.WithCancel(context.Background())
	flows := make(chan conntrack.Flow, 4096)
	var wg sync.WaitGroup
	wg.Go(func() { a.ev.read(t, pr) })
	wg.Go(func() {
		for f := range flows {
			if err := pipe.Handle(&f); err != nil {
				t.Error(err)
			}
		}
		pw.Close()
	})
	runErr := make(chan error, 1)
	go func() { runErr <- src.Run(ctx, flows); close(flows) }()
	var once sync.Once
	a.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-runErr; err != nil {
				t.Errorf("Run: %v", err)
			}
			wg.Wait()
			if err := src.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(a.stop)
	return a
}

// conn is a TCP connection from A to B that stays open until closed.
type conn struct {
	cl, sv net.Conn
	port   uint16 // the client's, A's side
}

func dial(t *testing.T, p *netnstest.Pair, ln net.Listener) *conn {
	t.Helper()
	c := &conn{}
	netnstest.In(t, p.HA, func() (err error) { c.cl, err = net.DialTimeout("tcp4", ln.Addr().String(), 3*time.Second); return err })
	var err error
	if c.sv, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, c.sv) //nolint:errcheck // drains until closed
	c.port = uint16(c.cl.LocalAddr().(*net.TCPAddr).Port)
	t.Cleanup(c.close)
	return c
}

func (c *conn) send(t *testing.T, n int) {
	t.Helper()
	if _, err := c.cl.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

func (c *conn) close() { c.cl.Close(); c.sv.Close() }

func listen(t *testing.T, p *netnstest.Pair) net.Listener {
	t.Helper()
	var ln net.Listener
	netnstest.In(t, p.HB, func() (err error) { ln, err = net.Listen("tcp4", p.AddrB.String()+":0"); return err })
	t.Cleanup(func() { ln.Close() })
	return ln
}

// agentPair is a pair with accounting and timestamps already on, as an
// agent that ran before leaves them.
func agentPair(t *testing.T) *netnstest.Pair {
	p := netnstest.New(t)
	p.Sysctl(t, "nf_conntrack_acct", "1")
	p.Sysctl(t, "nf_conntrack_timestamp", "1")
	return p
}

// gone waits until A's table has no entry for these client ports.
func gone(t *testing.T, p *netnstest.Pair, ports ...uint16) {
	t.Helper()
	testutil.WaitFor(t, 0, "closed connections to leave the conntrack table", func() bool {
		for _, f := range p.Dump(t) {
			for _, port := range ports {
				if f.TupleOrig.Proto.SourcePort == port && f.TupleOrig.IP.SourceAddress.Unmap() == p.AddrA {
					return false
				}
			}
		}
		return true
	})
}

// A connection with steady traffic is reported while it runs: STARTs of
// the same flow (same flow_id and start) with growing counters and growing
// versions, about every active timeout; its DESTROY then wins with the
// final counters.
func TestActiveTimeoutUpdatesGrow(t *testing.T) {
	t.Parallel()
	p := agentPair(t)
	ln := listen(t, p)
	a := startAgent(t, p, t.TempDir(), conntrack.Options{ActiveTimeout: 2 * time.Second})
	c := dial(t, p, ln)
	stopTraffic := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopTraffic:
				return
			case <-tk.C:
				if _, err := c.cl.Write(make([]byte, 10_000)); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	growing := func() bool {
		n := 0
		for _, ev := range a.ev.of(c.port) {
			if ev.Type == pb.EventType_EVENT_START && ev.BytesSent > 0 {
				n++
			}
		}
		return n >= 3
	}
	testutil.WaitFor(t, 30*time.Second, "3 active-timeout updates", growing)
	close(stopTraffic)
	wg.Wait()
	c.close()
	stopReaper := p.Reaper(t, 250*time.Millisecond)
	defer stopReaper()
	testutil.WaitFor(t, 0, "the DESTROY", func() bool {
		evs := a.ev.of(c.port)
		return len(evs) > 0 && evs[len(evs)-1].Type == pb.EventType_EVENT_DESTROY
	})
	evs := a.ev.of(c.port)
	first := evs[0]
	if first.Type != pb.EventType_EVENT_START || first.BytesSent != 0 {
		t.Fatalf("first event %v", first)
	}
	var prev *pb.FlowEvent
	for _, ev := range evs {
		if ev.FlowId != first.FlowId || ev.StartTsMs != first.StartTsMs || ev.EndTsMs != 0 && ev.Type == pb.EventType_EVENT_START {
			t.Fatalf("event %v is not the same open flow as %v", ev, first)
		}
		if prev != nil && (ev.Version <= prev.Version || ev.BytesSent < prev.BytesSent || ev.PacketsSent < prev.PacketsSent) {
			t.Fatalf("event %v after %v: version and counters must grow", ev, prev)
		}
		t.Logf("%v v%d +%dms sent %d B/%d pkts recv %d B", ev.Type, ev.Version, ev.Version-first.Version, ev.BytesSent, ev.PacketsSent, ev.BytesRecv)
		prev = ev
	}
	if last := evs[len(evs)-1]; last.Status&flowlog.StatusEndedUnobserved != 0 {
		t.Fatalf("a DESTROY the kernel sent is marked ended-unobserved: %v", last)
	}
	if st := a.src.Stats(); st.Updates < 3 {
		t.Fatalf("stats %+v", st)
	}
}

// kill -9 with connections open, some of which close while the agent is
// down; the next run on the same state directory closes those (DESTROY
// marked ended-unobserved, with the counters of their last update) and
// keeps the flow_id of the others, announcing none of them again.
func TestRestartClosesAndKeepsFlows(t *testing.T) {
	t.Parallel()
	p := agentPair(t)
	ln := listen(t, p)
	state := t.TempDir()
	a1 := startAgent(t, p, state, conntrack.Options{ActiveTimeout: time.Second})
	var conns []*conn
	for range 6 {
		c := dial(t, p, ln)
		c.send(t, 50_000)
		conns = append(conns, c)
	}
	closing, staying := conns[:3], conns[3:]
	// Each announced, and updated with its counters at least once.
	lastUpdate := map[uint16]*pb.FlowEvent{}
	testutil.WaitFor(t, 0, "an update of every connection", func() bool {
		for _, c := range conns {
			evs := a1.ev.of(c.port)
			if len(evs) == 0 || evs[len(evs)-1].BytesSent < 50_000 {
				return false
			}
			lastUpdate[c.port] = evs[len(evs)-1]
		}
		return true
	})
	a1.stop()
	started := map[uint16]string{}
	for _, c := range conns {
		evs := a1.ev.of(c.port)
		started[c.port] = evs[0].FlowId
		lastUpdate[c.port] = evs[len(evs)-1]
		if evs[0].Type != pb.EventType_EVENT_START {
			t.Fatalf("first event %v", evs[0])
		}
	}

	// While the agent is down.
	var ports []uint16
	for _, c := range closing {
		c.close()
		ports = append(ports, c.port)
	}
	gone(t, p, ports...)

	a2 := startAgent(t, p, state, conntrack.Options{})
	if st := a2.src.Stats(); st.StateRestored != 6 || st.StateCorrupt != 0 {
		t.Fatalf("restored %+v", st)
	}
	testutil.WaitFor(t, 0, "the DESTROYs of the connections closed while down", func() bool {
		for _, c := range closing {
			if len(a2.ev.of(c.port)) == 0 {
				return false
			}
		}
		return true
	})
	for _, c := range closing {
		evs := a2.ev.of(c.port)
		d, u := evs[0], lastUpdate[c.port]
		if len(evs) != 1 || d.Type != pb.EventType_EVENT_DESTROY || d.FlowId != started[c.port] ||
			d.Status&flowlog.StatusEndedUnobserved == 0 || d.BytesSent != u.BytesSent || d.BytesRecv != u.BytesRecv ||
			d.Version <= u.Version || d.EndTsMs < d.StartTsMs {
			t.Fatalf("port %d: after restart %v; want one ended-unobserved DESTROY of %s with the counters of %v", c.port, evs, started[c.port], u)
		}
	}
	for _, c := range staying {
		c.close()
	}
	stopReaper := p.Reaper(t, 250*time.Millisecond)
	defer stopReaper()
	testutil.WaitFor(t, 0, "the DESTROYs of the connections open across the restart", func() bool {
		for _, c := range staying {
			if len(a2.ev.of(c.port)) == 0 {
				return false
			}
		}
		return true
	})
	for _, c := range staying {
		evs := a2.ev.of(c.port)
		d := evs[0]
		if len(evs) != 1 || d.Type != pb.EventType_EVENT_DESTROY || d.FlowId != started[c.port] ||
			d.Status&flowlog.StatusEndedUnobserved != 0 || d.BytesSent < 50_000 {
			t.Fatalf("port %d: after restart %v; want only the kernel's DESTROY of %s", c.port, evs, started[c.port])
		}
	}
}

// Connections open before conntrack timestamps were on (every connection
// open when the agent is first installed) have no kernel start: the agent
// takes its own clock's, and keeps it across restarts, so their flow_id
// does not change and they are not announced again.
func TestFlowsWithoutTimestampsKeepTheirID(t *testing.T) {
	t.Parallel()
	p := agentPair(t)
	p.Sysctl(t, "nf_conntrack_timestamp", "0")
	ln := listen(t, p)
	c1, c2 := dial(t, p, ln), dial(t, p, ln)
	state := t.TempDir()
	a1 := startAgent(t, p, state, conntrack.Options{})
	testutil.WaitFor(t, 0, "both connections announced by the first dump", func() bool {
		return len(a1.ev.of(c1.port)) == 1 && len(a1.ev.of(c2.port)) == 1
	})
	a1.stop()
	id1, id2 := a1.ev.of(c1.port)[0].FlowId, a1.ev.of(c2.port)[0].FlowId
	if fb := a1.src.Stats().ResyncStarts; fb < 2 {
		t.Fatalf("stats %+v", a1.src.Stats())
	}

	for run := range 2 {
		a := startAgent(t, p, state, conntrack.Options{ResyncInterval: 200 * time.Millisecond})
		if run == 1 {
			// These entries never send a DESTROY (no listener when they
			// were created): a resync finds them gone.
			c1.close()
			testutil.WaitFor(t, 0, "the DESTROY of the closed connection", func() bool { return len(a.ev.of(c1.port)) > 0 })
			if d := a.ev.of(c1.port)[0]; d.Type != pb.EventType_EVENT_DESTROY || d.FlowId != id1 {
				t.Fatalf("after restart %v, want a DESTROY of %s", d, id1)
			}
		} else {
			testutil.WaitFor(t, 0, "a periodic resync", func() bool { return a.src.Stats().Resyncs >= 3 })
			if evs := a.ev.of(c1.port); len(evs) != 0 {
				t.Fatalf("restart %d announced the open flow again: %v", run, evs)
			}
		}
		if evs := a.ev.of(c2.port); len(evs) != 0 {
			t.Fatalf("restart %d announced the open flow %s again: %v", run, id2, evs)
		}
		a.stop()
	}
}

// DESTROYs a full spool dropped are not lost for good: the pipeline hands
// them back to the source, whose next resync (finding the flows gone)
// emits them again, marked ended-unobserved, with their final counters,
// until the spool takes them.
func TestSpoolFullDestroysClosedLater(t *testing.T) {
	t.Parallel()
	p := agentPair(t)
	ln := listen(t, p)
	state := t.TempDir()
	sp, err := spool.Open(filepath.Join(state, "spool"), spool.Options{MaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	b := export.NewBatcher(sp, 1, slog.New(slog.DiscardHandler))
	a := startAgentBatch(t, p, state, conntrack.Options{ResyncInterval: 300 * time.Millisecond}, b)
	var conns []*conn
	for range 3 {
		c := dial(t, p, ln)
		c.send(t, 20_000)
		conns = append(conns, c)
	}
	ids := map[uint16]string{}
	closed := map[string]*pb.FlowEvent{}
	// read acknowledges what is spooled, as the collector would.
	read := func() {
		for sp.Stats().Entries > 0 {
			ent, err := sp.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var env pb.FlowEnvelope
			if err := proto.Unmarshal(ent.Data, &env); err == nil {
				for _, ev := range env.Events {
					switch ev.Type {
					case pb.EventType_EVENT_START:
						ids[uint16(ev.SrcPort)] = ev.FlowId
					case pb.EventType_EVENT_DESTROY:
						closed[ev.FlowId] = ev
					}
				}
			}
			if err := sp.Ack(ent.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	testutil.WaitFor(t, 0, "the STARTs spooled", func() bool { read(); return len(ids) >= 3 })
	for { // the collector goes away; the spool fills up
		if _, err := sp.Append(make([]byte, 1000)); err != nil {
			break
		}
	}
	for _, c := range conns {
		c.close()
	}
	stopReaper := p.Reaper(t, 250*time.Millisecond)
	defer stopReaper()
	testutil.WaitFor(t, 0, "the DESTROYs dropped, handed back and dropped again", func() bool {
		return b.Dropped.Load() >= 6 && a.src.Stats().Redelivered >= 6
	})
	testutil.WaitFor(t, 0, "the DESTROYs spooled once the collector is back", func() bool { read(); return len(closed) >= 3 })
	for _, c := range conns {
		d := closed[ids[c.port]]
		if d == nil || d.Status&flowlog.StatusEndedUnobserved == 0 || d.BytesSent < 20_000 {
			t.Fatalf("port %d (%s): DESTROY %v, want ended-unobserved with the final counters", c.port, ids[c.port], d)
		}
	}
}
