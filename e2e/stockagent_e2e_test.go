package e2e

// Traffic shaped like the stock Netmaker exporter's, against the real
// binary: both wire generations, overlapping flushes that share one stream
// (one flush may read another's ack), three tries 300 ms apart and then the
// batch is dropped, and a collector restart in the middle. What a stock
// agent was told was delivered must be stored, once.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/internal/wiretest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// stockExporter behaves as the stock exporter does (described, not copied:
// flow/exporter/grpc.go of netclient): one connection and one stream shared
// by concurrent flushes, Send then Recv per try, a reconnect after EOF with
// a 300 ms pause, three tries 300 ms apart, then the batch is given up.
type stockExporter struct {
	addr string
	gen  string // wiretest.GenLegacy or GenCurrent

	mu     sync.Mutex // the connection and stream
	conn   *grpc.ClientConn
	stream grpc.ClientStream
	sendMu sync.Mutex // grpc-go needs one sender at a time; the stock
	recvMu sync.Mutex // exporter's flushes still interleave Send and Recv

	// afterSend, if set, runs once after an envelope was sent, before any
	// other is (the test begins the collector's shutdown in the middle of a
	// burst with it).
	afterSend func()

	okMu      sync.Mutex
	delivered [][]string  // flow ids of each batch the exporter believes delivered
	dropped   int         // batches given up after three tries
	acks      []time.Time // when each success=true arrived
}

const (
	stockTries      = 3
	stockRetryPause = 300 * time.Millisecond
	// stockBurstPause is the test agents' pause between bursts of flushes:
	// a stock agent flushes on a 30 s timer or when a batch fills.
	stockBurstPause = 250 * time.Millisecond
)

func (e *stockExporter) connect() error {
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	s, err := pb.NewFlowServiceClient(conn).StreamFlows(context.Background(), grpc.ForceCodecV2(wiretest.RawCodec{}))
	if err != nil {
		conn.Close()
		return err
	}
	e.conn, e.stream = conn, s
	return nil
}

// reconnect drops the stream and opens a new one after a pause.
func (e *stockExporter) reconnect() error {
	if e.conn != nil {
		e.conn.Close()
	}
	e.conn, e.stream = nil, nil
	time.Sleep(stockRetryPause) // the stock exporter's pause, not a test synchronisation
	return e.connect()
}

func (e *stockExporter) sendOnce(env []byte) error {
	e.mu.Lock()
	if e.stream == nil {
		if err := e.reconnect(); err != nil {
			e.mu.Unlock()
			return err
		}
	}
	s := e.stream
	e.mu.Unlock()
	e.sendMu.Lock()
	err := s.SendMsg(wiretest.RawMsg(env))
	if e.afterSend != nil && err == nil {
		e.afterSend() // holding sendMu: the burst's other envelopes wait for it
		e.afterSend = nil
	}
	e.sendMu.Unlock()
	if err == nil {
		var resp pb.FlowResponse
		e.recvMu.Lock()
		err = s.RecvMsg(&resp)
		e.recvMu.Unlock()
		if err == nil {
			if !resp.Success {
				return fmt.Errorf("server rejected: %s", resp.Error)
			}
			e.okMu.Lock()
			e.acks = append(e.acks, time.Now())
			e.okMu.Unlock()
			return nil
		}
	}
	if errors.Is(err, io.EOF) {
		e.mu.Lock()
		if e.stream == s {
			e.reconnect()
		}
		e.mu.Unlock()
		return err
	}
	// Any other status leaves the broken stream in place, as the stock
	// exporter does; the next Send on it sees EOF and reconnects.
	return err
}

// flush sends one batch with the stock retry policy.
func (e *stockExporter) flush(ids []string, events [][]byte) {
	env := wiretest.Envelope(events...)
	for try := 1; try <= stockTries; try++ {
		if e.sendOnce(env) == nil {
			e.okMu.Lock()
			e.delivered = append(e.delivered, ids)
			e.okMu.Unlock()
			return
		}
		time.Sleep(stockRetryPause)
	}
	e.okMu.Lock()
	e.dropped++
	e.okMu.Unlock()
}

// stockFlows are n flows of one host as the stock agent reports them: a
// START stamped by the agent's clock, then a DESTROY whose start is the
// kernel's, 2 ms later.
func stockFlows(gen, network, host string, n int, t0 time.Time) (ids []string, starts, destroys [][]byte) {
	for i := range n {
		id := fmt.Sprintf("%s-%05d", host, i)
		start := t0.Add(time.Duration(i) * time.Millisecond).UnixMilli()
		f := wiretest.Fields{
			"type": uint64(1), "flow_id": id, "host_id": host, "host_name": "", "network_id": network,
			"protocol": uint64(6), "src_port": uint64(30000 + i%30000), "dst_port": uint64(443), "direction": uint64(2),
			"src":         wiretest.Part{IP: "10.7.0.1", Type: 1, ID: host},
			"dst":         wiretest.Part{IP: fmt.Sprintf("10.7.%d.%d", 1+i/250%250, 1+i%250), Type: 5},
			"start_ts_ms": start, "version": start,
		}
		ids = append(ids, id)
		starts = append(starts, wiretest.EncodeEvent(gen, f, false))
		f["type"], f["start_ts_ms"], f["end_ts_ms"] = uint64(2), start+2, start+5000
		f["bytes_sent"], f["bytes_recv"], f["packets_sent"], f["packets_recv"] = uint64(1000+i), uint64(2000), uint64(10), uint64(20)
		f["version"] = start + 5000
		destroys = append(destroys, wiretest.EncodeEvent(gen, f, false))
	}
	return ids, starts, destroys
}

// freeAddr is a loopback address nothing listens on now, for a collector
// that must come back on the same port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestStockAgentsAcrossARestartLoseNothingAcked(t *testing.T) {
	needBinary(t)
	data := t.TempDir()
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	args := []string{"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--flush-interval", "500ms"}
	c := serve(t, data, args...)

	const network, perAgent, batch, flushers = "stock-net", 300, 20, 3
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	type agent struct {
		exp              *stockExporter
		ids              []string
		starts, destroys [][]byte
	}
	var agents []*agent
	for i, gen := range []string{wiretest.GenLegacy, wiretest.GenCurrent} {
		a := &agent{exp: &stockExporter{addr: grpcAddr, gen: gen}}
		a.ids, a.starts, a.destroys = stockFlows(gen, network, fmt.Sprintf("stock-%d", i), perAgent, t0)
		if err := a.exp.connect(); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
	}
	t.Cleanup(func() {
		for _, a := range agents {
			a.exp.conn.Close()
		}
	})

	// Each agent flushes in bursts, as the stock exporter does when a batch
	// fills while its timer's flush still runs: several flushes at once on
	// one stream, then a pause. STARTs first, then DESTROYs; the collector
	// restarts when half are out.
	var sent sync.WaitGroup
	half, draining := make(chan struct{}), make(chan struct{})
	var halfOnce sync.Once
	for _, a := range agents {
		events := slices.Concat(a.starts, a.destroys)
		// "S:id" or "D:id": which event of which flow a batch carries.
		var ids []string
		for _, kind := range []string{"S:", "D:"} {
			for _, id := range a.ids {
				ids = append(ids, kind+id)
			}
		}
		sent.Add(1)
		go func() {
			defer sent.Done()
			for lo := 0; lo < len(events); lo += batch * flushers {
				if lo >= len(events)/2 {
					// Shut the collector down between this burst's first
					// envelope and the others.
					halfOnce.Do(func() {
						a.exp.sendMu.Lock()
						a.exp.afterSend = func() { close(half); <-draining }
						a.exp.sendMu.Unlock()
					})
				}
				var burst sync.WaitGroup
				for f := range flushers {
					b := lo + f*batch
					if b >= len(events) {
						break
					}
					e := min(b+batch, len(events))
					burst.Add(1)
					go func() { defer burst.Done(); a.exp.flush(ids[b:e], events[b:e]) }()
				}
				burst.Wait()
				time.Sleep(stockBurstPause) // the agent's own pace between bursts, not a synchronisation
			}
		}()
	}
	<-half
	sigterm := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	// The collector drains once /readyz fails (it stops being ready first).
	testutil.WaitFor(t, 0, "the collector to begin its shutdown", func() bool {
		resp, err := http.Get(c.http + "/readyz")
		if err != nil {
			return true // already past it
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusOK
	})
	close(draining)
	select {
	case err := <-c.exited:
		if err != nil {
			t.Fatalf("collector exited with %v after SIGTERM\n%s", err, c.logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("collector did not stop within 60s of SIGTERM")
	}
	stopped := time.Now()
	c = serve(t, data, args...)
	serving := time.Now()
	sent.Wait()

	// The restart gap a stock agent sees: the longest time without a
	// successful ack around the restart.
	var gap time.Duration
	var acks []time.Time
	for _, a := range agents {
		acks = append(acks, a.exp.acks...)
	}
	slices.SortFunc(acks, func(x, y time.Time) int { return x.Compare(y) })
	for i := 1; i < len(acks); i++ {
		if acks[i].After(sigterm) && acks[i-1].Before(serving.Add(time.Second)) {
			gap = max(gap, acks[i].Sub(acks[i-1]))
		}
	}
	dropped := 0
	for _, a := range agents {
		dropped += a.exp.dropped
	}
	t.Logf("restart: SIGTERM to exit %s, to serving again %s; longest time without an ack %s; batches a stock agent gave up: %d",
		stopped.Sub(sigterm).Round(time.Millisecond), serving.Sub(sigterm).Round(time.Millisecond), gap.Round(time.Millisecond), dropped)

	// Everything a stock agent was told was delivered is stored, once.
	rows := all(t, c.http, "network_id="+network+"&per_page=1000")
	seen, active := map[string]int{}, map[string]bool{}
	for _, r := range rows {
		seen[r.FlowID]++
		active[r.FlowID] = r.Active
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("flow %s listed %d times", id, n)
		}
	}
	missing := 0
	for _, a := range agents {
		for _, b := range a.exp.delivered {
			for _, ev := range b {
				kind, id := ev[:2], ev[2:]
				switch {
				case seen[id] == 0:
					missing++
				case kind == "D:" && active[id]:
					// The DESTROY's start is 2 ms after the START's: they
					// must still collapse into one finished flow.
					t.Errorf("flow %s: its DESTROY was acked but the flow is listed as active", id)
				}
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d flow events acknowledged to a stock agent are not stored\n%s", missing, c.logs)
	}
	c.stop(t)
}
