package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowlog/flowlog/proto/flow"
)

// Run plays cfg.Streams agents against the collector at cfg.Addr until
// cfg.Duration has passed or cfg.Events have been generated, then waits for
// every outstanding ack (bounded by ctx) and reports. If a stream fails, the
// others are cancelled and the error names the stream; the Report then holds
// what was acked until then. A cancelled ctx also ends the run early.
func Run(ctx context.Context, cfg Config) (Report, error) {
	c, err := cfg.WithDefaults()
	if err != nil {
		return Report{}, err
	}
	if c.Addr == "" {
		return Report{}, errors.New("loadgen: no collector address")
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	conns := make([]*grpc.ClientConn, c.Conns)
	defer func() {
		for _, cc := range conns {
			if cc != nil {
				cc.Close()
			}
		}
	}()
	for i := range conns {
		creds := c.Creds
		if creds == nil {
			creds = insecure.NewCredentials()
		}
		if conns[i], err = grpc.NewClient(c.Addr, grpc.WithTransportCredentials(creds)); err != nil {
			return Report{}, fmt.Errorf("loadgen: dial %s: %w", c.Addr, err)
		}
	}

	// Open every stream before the clock starts: connection setup is not
	// what is measured.
	p, token := newPool(c.Participants, c.Seed), runToken()
	codec := grpc.ForceCodecV2(sendCodec{pool: new(dirtyPool)})
	streams := make([]*stream, c.Streams)
	for i := range streams {
		sctx, scancel := context.WithCancel(runCtx) // lets a failed sender unblock its own receiver
		defer scancel()
		st, err := flow.NewFlowServiceClient(conns[i%c.Conns]).StreamFlows(sctx, codec)
		if err != nil {
			return Report{}, fmt.Errorf("loadgen: stream %d: open: %w", i, err)
		}
		streams[i] = newStream(c, st, scancel, newGenerator(c, i, p, token))
	}

	var budget *atomic.Int64
	if c.Events > 0 {
		budget = new(atomic.Int64)
		budget.Store(int64(c.Events))
	}
	start := time.Now()
	var deadline time.Time
	if c.Duration > 0 {
		deadline = start.Add(c.Duration)
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i, s := range streams {
		wg.Go(func() {
			if err := s.run(runCtx, deadline, budget); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("loadgen: stream %d: %w", i, err)
					cancel() // the first failure stops everyone; later ones are its echo
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	rep := merge(streams, time.Since(start))
	rep.Expect.NetworkID = c.NetworkID
	ctxErr := ctx.Err()
	if dl, ok := ctx.Deadline(); ctxErr == nil && ok && !time.Now().Before(dl) {
		// grpc may end the streams at the deadline a moment before ctx's own
		// timer fires; the cause is still the caller's deadline.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil {
		return rep, fmt.Errorf("loadgen: %w", ctxErr)
	}
	return rep, firstErr
}

// envelope is one message of a stream and what it adds to Expect once
// acked. A stream owns Window of them and recycles them after success;
// after success=false the same envelope is sent again.
type envelope struct {
	msg   flow.FlowEnvelope
	delta delta
	seq   int64
}

type inflight struct {
	env *envelope
	at  time.Time
}

type completion struct {
	env *envelope
	ok  bool
}

// stream is one agent: its generator, its gRPC stream, and the tallies of
// its receiver (read only after both goroutines ended).
type stream struct {
	cfg    Config
	cancel context.CancelFunc // ends this stream's RPC
	gen    *Generator
	grpc   grpc.BidiStreamingClient[flow.FlowEnvelope, flow.FlowResponse]
	envs   []*envelope

	fifo     chan inflight   // sender -> receiver, in send order (acks carry no id)
	done     chan completion // receiver -> sender, frees a window slot
	acked    atomic.Int64    // see Generator.acked
	sent     int64
	tally    tally
	recvDone chan struct{} // closed when the receiver returns
}

// tally is what the receiver counted.
type tally struct {
	acked, failed, events, rejected int64
	firstRejected                   string
	flows, finished                 int64
	bytesSent, bytesRecv            uint64
	lat                             []time.Duration
}

func newStream(c Config, st grpc.BidiStreamingClient[flow.FlowEnvelope, flow.FlowResponse], cancel context.CancelFunc, g *Generator) *stream {
	s := &stream{
		cfg:      c,
		cancel:   cancel,
		gen:      g,
		grpc:     st,
		fifo:     make(chan inflight, c.Window),
		done:     make(chan completion, c.Window),
		recvDone: make(chan struct{}),
	}
	g.acked = &s.acked
	for range c.Window {
		s.envs = append(s.envs, &envelope{msg: flow.FlowEnvelope{Events: make([]*flow.FlowEvent, 0, c.EventsPerEnvelope)}})
	}
	// Latency slots for the expected number of acks, so recording never
	// allocates in steady state (10k events/s per stream would be plenty).
	est := c.Events / c.EventsPerEnvelope / c.Streams
	if c.Duration > 0 {
		est = max(est, int(c.Duration.Seconds()*10_000)/c.EventsPerEnvelope)
	}
	s.tally.lat = make([]time.Duration, 0, est+64)
	return s
}

// run drives one stream: a sender (this goroutine, the only one calling
// Send and CloseSend) and a receiver (the only one calling Recv), as
// grpc-go requires. It returns after both have ended.
func (s *stream) run(ctx context.Context, deadline time.Time, budget *atomic.Int64) error {
	recvErr := make(chan error, 1)
	go func() {
		defer close(s.recvDone)
		recvErr <- s.receive()
	}()
	sendErr := s.send(ctx, deadline, budget)
	if sendErr != nil {
		s.cancel() // Recv may be blocked on a healthy connection
	}
	err := <-recvErr
	switch {
	case sendErr == nil:
		return err
	case errors.Is(sendErr, errStreamClosed) && err != nil:
		return err // the receiver saw the real status behind Send's io.EOF
	default:
		return sendErr
	}
}

var errStreamClosed = errors.New("collector closed the stream")

// send generates and sends envelopes, at most Window unanswered, resending
// those answered success=false, until the end condition; then it waits for
// every answer and closes its side.
func (s *stream) send(ctx context.Context, deadline time.Time, budget *atomic.Int64) error {
	window := s.cfg.Window
	free := s.envs
	var retry []*envelope
	inFlight := 0
	stopped := false
	// Pacing (Config.Rate): the next new envelope is due at nextAt; pace
	// fires then while the sender waits.
	var every time.Duration
	if s.cfg.Rate > 0 {
		every = time.Duration(float64(s.cfg.EventsPerEnvelope) / s.cfg.Rate * float64(time.Second))
	}
	nextAt := time.Now()
	var pace <-chan time.Time
	handle := func(c completion) {
		inFlight--
		if c.ok {
			free = append(free, c.env)
		} else {
			retry = append(retry, c.env)
		}
	}
	for {
		// Take answers already in, so retries go out first.
	drain:
		for {
			select {
			case c := <-s.done:
				handle(c)
			default:
				break drain
			}
		}
		if inFlight < window {
			var env *envelope
			switch {
			case len(retry) > 0:
				env, retry = retry[0], retry[1:]
			case !stopped && every > 0 && time.Now().Before(nextAt):
				if pace == nil {
					pace = time.After(time.Until(nextAt))
				}
			case !stopped:
				nextAt = nextAt.Add(every)
				n := s.cfg.EventsPerEnvelope
				if !deadline.IsZero() && !time.Now().Before(deadline) {
					n = 0
				} else if budget != nil {
					n = take(budget, n)
				}
				if n == 0 {
					stopped = true
					continue
				}
				env, free = free[len(free)-1], free[:len(free)-1]
				now := time.Now()
				env.msg.Events = s.gen.next(env.msg.Events[:0], n, now.UnixMilli())
				env.delta, env.seq = s.gen.last, s.gen.seq
			}
			if env != nil {
				inFlight++
				s.fifo <- inflight{env: env, at: time.Now()} // before Send: the ack may beat us back
				s.sent++
				if err := s.grpc.Send(&env.msg); err != nil {
					if errors.Is(err, io.EOF) {
						return errStreamClosed
					}
					return err
				}
				continue
			}
		}
		if stopped && inFlight == 0 && len(retry) == 0 {
			break
		}
		select {
		case c := <-s.done:
			handle(c)
		case <-pace:
			pace = nil
		case <-s.recvDone:
			return fmt.Errorf("%w with %d envelopes unanswered", errStreamClosed, inFlight)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.grpc.CloseSend()
}

// take reserves up to n events from the run's budget.
func take(budget *atomic.Int64, n int) int {
	left := budget.Add(-int64(n)) // may go negative: the last takers get less or nothing
	if left >= 0 {
		return n
	}
	return max(0, n+int(left))
}

// receive matches each answer with the oldest envelope in flight, counts
// it, and hands the envelope back to the sender.
func (s *stream) receive() error {
	var (
		high   int64   // highest envelope number answered so far (any outcome)
		failed []int64 // envelope numbers answered success=false and not yet success=true
		resp   flow.FlowResponse
	)
	t := &s.tally
	for {
		resp.Reset()
		if err := s.grpc.RecvMsg(&resp); err != nil {
			if errors.Is(err, io.EOF) {
				if n := len(s.fifo); n > 0 {
					return fmt.Errorf("%w with %d envelopes unanswered", errStreamClosed, n)
				}
				return nil
			}
			return err
		}
		now := time.Now()
		var in inflight
		select {
		case in = <-s.fifo:
		default:
			return errors.New("collector sent an answer for no envelope")
		}
		t.lat = append(t.lat, now.Sub(in.at))
		env := in.env
		high = max(high, env.seq)
		if resp.GetSuccess() {
			t.acked++
			t.events += int64(len(env.msg.Events))
			t.flows += int64(env.delta.starts)
			t.finished += int64(env.delta.destroys)
			t.bytesSent += env.delta.bytesSent
			t.bytesRecv += env.delta.bytesRecv
			if e := resp.GetError(); e != "" {
				t.rejected++
				if t.firstRejected == "" {
					t.firstRejected = e
				}
			}
			if i := slices.Index(failed, env.seq); i >= 0 {
				failed = slices.Delete(failed, i, i+1)
			}
		} else {
			t.failed++
			if !slices.Contains(failed, env.seq) {
				failed = append(failed, env.seq)
			}
		}
		// Every envelope up to high has been answered once; those still in
		// failed await their retry, so DESTROYs must not follow their STARTs yet.
		mark := high
		if len(failed) > 0 {
			mark = slices.Min(failed) - 1
		}
		s.acked.Store(mark)
		s.done <- completion{env: env, ok: resp.GetSuccess()}
	}
}

// merge adds up the streams' tallies.
func merge(streams []*stream, elapsed time.Duration) Report {
	r := Report{Elapsed: elapsed}
	var lat []time.Duration
	for _, s := range streams {
		t := &s.tally
		r.EnvelopesSent += s.sent
		r.EnvelopesAcked += t.acked
		r.EnvelopesFailed += t.failed
		r.EventsAcked += t.events
		r.RejectedErrors += t.rejected
		if r.FirstRejected == "" {
			r.FirstRejected = t.firstRejected
		}
		r.Expect.Flows += t.flows
		r.Expect.Finished += t.finished
		r.Expect.BytesSent += t.bytesSent
		r.Expect.BytesRecv += t.bytesRecv
		lat = append(lat, t.lat...)
	}
	if elapsed > 0 {
		r.EventsPerSec = float64(r.EventsAcked) / elapsed.Seconds()
	}
	slices.Sort(lat)
	r.LatencyP50, r.LatencyP99 = percentile(lat, 0.50), percentile(lat, 0.99)
	if len(lat) > 0 {
		r.LatencyMax = lat[len(lat)-1]
	}
	return r
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
