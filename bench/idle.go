package bench

// The idle-streams measurement (issue 14): N agents, one connection and one
// open StreamFlows stream each, that send nothing, as a fleet of real agents
// holds its streams between flushes. It reports what each stream costs the
// collector in RSS and goroutines, and what RSS is left once they close.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowlog/flowlog/loadgen"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// IdleReport is what RunIdle measured.
type IdleReport struct {
	Streams         int
	Sent            int     // events each stream sent (one envelope, acked) before idling
	HoldSec         float64 // streams held open this long past settleOpen before measuring
	BaseRSS         int64   // before the streams opened, the collector settled
	OpenRSS         int64   // with every stream open, settled
	PeakRSS         int64   // highest VmRSS polled
	ClosedRSS       int64   // settleClosed after the last stream closed
	BaseGoroutines  int     // go_goroutines before
	OpenGoroutines  int     // ... and with every stream open
	OpenSec         float64 // time to open them all
	BytesPerStream  float64 // (OpenRSS - BaseRSS) / Streams
	GoroutinesPerSt float64 // (OpenGoroutines - BaseGoroutines) / Streams
	// Where the bytes are: the Go runtime's heap and goroutine stacks in
	// use (go_memstats_*), before and with the streams open.
	BaseHeap, OpenHeap, BaseStack, OpenStack int
}

// settleOpen and settleClosed are how long the collector is left alone
// before RSS is read: the scavenger returns freed pages on its own pace.
const (
	settleOpen   = 5 * time.Second
	settleClosed = 15 * time.Second
)

// RunIdle opens n idle streams, one connection each, against a collector it
// starts (per-address and total stream caps off), measures after
// settleOpen+hold (a hold past 2 minutes includes the runtime's periodic
// garbage collection, which shrinks idle goroutines' stacks: the steady
// state of a fleet), closes them and measures again. The file-descriptor limit of this process (inherited by
// the collector) is raised to its hard limit.
//
// With c.MTLS the agents connect with mutual TLS, as an authenticating
// collector's do.
//
// With send > 0 each stream first sends one envelope of send events and reads
// its ack, as an agent that flushed once and idles until its next flush:
// the goroutines that decoded and stored it keep whatever stack they grew.
func RunIdle(ctx context.Context, c Config, n, send int, hold time.Duration, log *slog.Logger) (*IdleReport, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < uint64(n)+200 {
		return nil, fmt.Errorf("idle streams: %d need as many file descriptors, the limit is %d (raise ulimit -n)", n, lim.Cur)
	}
	dir := c.Data
	if dir == "" {
		return nil, fmt.Errorf("idle streams: a data directory is needed")
	}
	args := []string{"--max-streams", strconv.Itoa(n + 100), "--max-streams-per-address", "0", "--max-streams-per-host", "0"}
	creds := insecure.NewCredentials()
	if c.MTLS { // agents as they connect when the collector authenticates them
		tlsArgs, tc, err := benchPKI(dir)
		if err != nil {
			return nil, err
		}
		args, creds = append(args, tlsArgs...), tc
	}
	col, err := c.startCollector(ctx, dir, args...)
	if err != nil {
		return nil, err
	}
	defer col.stop(30 * time.Second)
	pid := col.cmd.Process.Pid
	metricsURL := "http://" + col.httpAddr + "/metrics"
	rep := &IdleReport{Streams: n, Sent: send, HoldSec: hold.Seconds()}
	rss := pollRSS(pid, 200*time.Millisecond)

	time.Sleep(settleOpen)
	if rep.BaseRSS, _, err = procMem(pid); err != nil {
		return nil, err
	}
	if rep.BaseGoroutines, err = gauge(metricsURL, "go_goroutines"); err != nil {
		return nil, err
	}
	rep.BaseHeap, _ = gauge(metricsURL, "go_memstats_heap_inuse_bytes")
	rep.BaseStack, _ = gauge(metricsURL, "go_memstats_stack_inuse_bytes")

	var first *pb.FlowEnvelope
	if send > 0 {
		cfg, err := loadgen.Config{Streams: 1, EventsPerEnvelope: send}.WithDefaults()
		if err != nil {
			return nil, err
		}
		first = &pb.FlowEnvelope{Events: loadgen.NewGenerator(cfg, 0).Next(nil)}
	}
	log.Info("opening idle streams", "streams", n, "grpc", col.grpcAddr)
	t0 := time.Now()
	sctx, cancel := context.WithCancel(ctx)
	conns, err := openIdle(sctx, col.grpcAddr, creds, n, first)
	defer func() {
		cancel()
		for _, cc := range conns {
			cc.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	if err := waitGauge(ctx, metricsURL, "flowlog_streams_open", func(v int) bool { return v == n }); err != nil {
		return nil, err
	}
	rep.OpenSec = time.Since(t0).Seconds()
	time.Sleep(settleOpen + hold)
	if rep.OpenRSS, _, err = procMem(pid); err != nil {
		return nil, err
	}
	if rep.OpenGoroutines, err = gauge(metricsURL, "go_goroutines"); err != nil {
		return nil, err
	}
	rep.OpenHeap, _ = gauge(metricsURL, "go_memstats_heap_inuse_bytes")
	rep.OpenStack, _ = gauge(metricsURL, "go_memstats_stack_inuse_bytes")

	log.Info("closing idle streams")
	cancel()
	for _, cc := range conns {
		cc.Close()
	}
	conns = nil
	if err := waitGauge(ctx, metricsURL, "flowlog_streams_open", func(v int) bool { return v == 0 }); err != nil {
		return nil, err
	}
	time.Sleep(settleClosed)
	if rep.ClosedRSS, _, err = procMem(pid); err != nil {
		return nil, err
	}
	rep.PeakRSS, _ = rss.stop()
	rep.BytesPerStream = float64(rep.OpenRSS-rep.BaseRSS) / float64(n)
	rep.GoroutinesPerSt = float64(rep.OpenGoroutines-rep.BaseGoroutines) / float64(n)
	return rep, nil
}

// openIdle opens n connections with one StreamFlows stream each, a few at a
// time (a burst of 10,000 handshakes would overrun the listen backlog).
// A non-nil first is sent on each stream, and its ack awaited.
func openIdle(ctx context.Context, addr string, creds credentials.TransportCredentials, n int, first *pb.FlowEnvelope) ([]*grpc.ClientConn, error) {
	conns := make([]*grpc.ClientConn, n)
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range work {
				cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
				if err != nil {
					errs <- err
					continue
				}
				conns[i] = cc
				st, err := pb.NewFlowServiceClient(cc).StreamFlows(ctx)
				if err == nil && first != nil {
					err = exchange(st, first)
				}
				if err != nil {
					errs <- fmt.Errorf("stream %d: %w", i, err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	open := conns[:0]
	for _, cc := range conns {
		if cc != nil {
			open = append(open, cc)
		}
	}
	if err := <-errs; err != nil {
		return open, err
	}
	return open, nil
}

// exchange sends env and reads its ack, which must be a success.
func exchange(st pb.FlowService_StreamFlowsClient, env *pb.FlowEnvelope) error {
	if err := st.Send(env); err != nil {
		return err
	}
	r, err := st.Recv()
	if err != nil {
		return err
	}
	if !r.GetSuccess() {
		return fmt.Errorf("envelope not stored: %s", r.GetError())
	}
	return nil
}

// gauge reads one unlabelled metric from a Prometheus text page.
func gauge(url, name string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	io.Copy(io.Discard, resp.Body)
	return 0, fmt.Errorf("%s: no metric %s", url, name)
}

// waitGauge polls a metric until ok (at most 10 minutes).
func waitGauge(ctx context.Context, url, name string, ok func(int) bool) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		v, err := gauge(url, name)
		if err == nil && ok(v) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s stayed at %d (%v)", name, v, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Print writes the report, one figure a line.
func (r *IdleReport) Print(w io.Writer) {
	fmt.Fprintf(w, "idle streams             %d (one connection each, %d events sent on each first), opened in %.1f s\n", r.Streams, r.Sent, r.OpenSec)
	fmt.Fprintf(w, "collector RSS before     %s\n", mib(r.BaseRSS))
	fmt.Fprintf(w, "collector RSS open       %s (peak %s), held %.0f s\n", mib(r.OpenRSS), mib(r.PeakRSS), settleOpen.Seconds()+r.HoldSec)
	fmt.Fprintf(w, "per stream               %.1f kB, %.2f goroutines (%d -> %d)\n", r.BytesPerStream/1000, r.GoroutinesPerSt, r.BaseGoroutines, r.OpenGoroutines)
	fmt.Fprintf(w, "per stream, Go heap      %.1f kB in use (%s -> %s)\n", float64(r.OpenHeap-r.BaseHeap)/float64(r.Streams)/1000, mib(int64(r.BaseHeap)), mib(int64(r.OpenHeap)))
	fmt.Fprintf(w, "per stream, stacks       %.1f kB in use (%s -> %s)\n", float64(r.OpenStack-r.BaseStack)/float64(r.Streams)/1000, mib(int64(r.BaseStack)), mib(int64(r.OpenStack)))
	fmt.Fprintf(w, "collector RSS closed     %s (%s after the last stream closed)\n", mib(r.ClosedRSS), settleClosed)
}
