// Package ingest is the collector's gRPC side: netmaker.flow.FlowService.
// Every envelope is validated, group-committed with other streams' envelopes,
// and answered with one FlowResponse, in arrival order, once its events are
// durably stored (see docs/design.md "Semantics that matter").
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	encproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/metrics"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Options are the ingest knobs; zero values take the defaults below.
type Options struct {
	FlushRows         int           // a second insert runs alongside one in flight when this many rows wait (default 50,000)...
	FlushInterval     time.Duration // ...or the oldest waited this long (default 500ms); an idle store commits at once...
	Linger            time.Duration // ...after gathering what arrives within this (default 2ms; negative: none)
	MaxPendingRows    int           // beyond this, envelopes get success=false (default 1,000,000)
	InsertTimeout     time.Duration // one insert may take this long (default 30s)
	Writers           int           // inserts running in parallel (default 2)
	MaxEventsPerEnv   int           // larger envelopes end the stream with InvalidArgument (default 10,000)
	MaxMessageBytes   int           // larger messages end the stream with ResourceExhausted (default 16 MiB)
	MaxStreams        int           // concurrent streams; more get ResourceExhausted (default 1,000)
	InFlightPerStream int           // envelopes received but not yet answered, per stream (default 64)
	Preparing         int           // envelopes decoded and validated at once, all streams together (default DefaultPreparing)
	// DrainQuiet: on shutdown a stream still takes (commits and answers)
	// envelopes until none arrived for this long, then ends (default
	// DefaultDrainQuiet). The stock Netmaker exporter flushes concurrently
	// on one stream and reads whichever ack comes next: ending a stream
	// between two of its envelopes could hand the first one's success to
	// the flush of the second, which is then never resent.
	DrainQuiet time.Duration
	// OnCommit, if set, sees the events of every committed insert (the live
	// tail). It runs on the commit goroutine: it must be quick and must not
	// keep the slice, which is reused.
	OnCommit func([]flowlog.Event)
	// Agents, if set, records which agent software and wire generation
	// each host reports through (agents.go); nil: not recorded.
	Agents flowlog.AgentRecorder
	// Enrich, if set, completes every valid event once, before it is
	// stored (the collector names external endpoints: ipdb). It must be
	// safe for concurrent use: streams call it in parallel.
	Enrich func(*flowlog.Event)
	// Auth, if set, authenticates every stream (GRPCServer installs its
	// interceptor) and binds it to its identity's host and networks: an event
	// naming another host or a network not allowed is rejected (identity.go).
	// Nil: no authentication, any host_id is accepted.
	Auth *auth.Authenticator
	// Metrics, if set, counts what the service does (metrics.Collector);
	// nil: nothing is exported.
	Metrics *metrics.Collector
	// Protect is the abuse protection: per-host rate limit, stalled
	// streams, keepalive and handshake limits (protect.go).
	Protect Protection
	// Clock, if set, is the time of the stream limits (idle, superseding)
	// and of received events: tests move it. Default time.Now.
	Clock func() time.Time

	clock clock // the group commit's time (tests); nil: the real one
}

// Defaults of Options (the collector's DefaultConfig uses them too).
const (
	DefaultFlushRows     = 50_000
	DefaultFlushInterval = 500 * time.Millisecond
	// DefaultLinger: agents that flush on the same tick (a fleet restarted
	// together, the bench's paced agents) arrive within a millisecond of
	// each other; committing the first alone makes the others wait for its
	// insert and then their own (light-load ack p50 ~2 inserts). Gathering
	// them costs each ack at most this.
	DefaultLinger          = 2 * time.Millisecond
	DefaultMaxPendingRows  = 1_000_000
	DefaultWriters         = 2
	DefaultMaxEventsPerEnv = 10_000
	DefaultMaxMessageBytes = 16 << 20
	DefaultMaxStreams      = 1000
	// DefaultDrainQuiet: envelopes of one flush burst arrive within
	// milliseconds; a stream quiet this long has sent what it had.
	DefaultDrainQuiet = 200 * time.Millisecond
	// drainMax bounds a stream's drain however busy its agent: shutdown
	// (and so the restart gap agents see) must not wait on a busy sender.
	drainMax = time.Second
)

// DefaultPreparing: preparing an envelope is CPU work only (decoding,
// validation, enrichment), so twice as many as the Go scheduler runs at
// once keep every core busy, while each envelope waiting its turn stays
// as received, a fraction of its decoded size: with one preparation per
// stream, the bench's 100 streams held ~100 decoded envelopes (~40 MB of
// live heap) for two cores (BENCHMARKS.md "Ingest memory, round 5").
func DefaultPreparing() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.FlushRows, DefaultFlushRows)
	def(&o.MaxPendingRows, DefaultMaxPendingRows)
	def(&o.MaxEventsPerEnv, DefaultMaxEventsPerEnv)
	def(&o.MaxMessageBytes, DefaultMaxMessageBytes)
	def(&o.MaxStreams, DefaultMaxStreams)
	def(&o.InFlightPerStream, 64)
	def(&o.Preparing, DefaultPreparing())
	if o.DrainQuiet <= 0 {
		o.DrainQuiet = DefaultDrainQuiet
	}
	def(&o.Writers, DefaultWriters)
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.InsertTimeout <= 0 {
		o.InsertTimeout = 30 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewCollector(nil) // counted, exported nowhere
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// Server implements FlowService.
type Server struct {
	pb.UnimplementedFlowServiceServer
	opts    Options
	commit  *committer
	log     *slog.Logger
	streams atomic.Int64
	drain   chan struct{} // closed when shutdown begins
	once    sync.Once
	now     func() time.Time
	guard   *guard       // rate limit, stall watch, keepalive (protect.go)
	prep    slots        // bounds the envelopes being prepared (ticket)
	backlog backlogWatch // for CommitBacklog (ready.go)
	// allRejected counts open streams that sent events and had every one
	// rejected (flowlog_streams_all_rejected): an agent nothing of which
	// is stored, visible at a glance.
	allRejected atomic.Int64
	// speaking counts open streams that sent events of each generation
	// (flowlog_streams_wire_generation).
	speaking [3]atomic.Int64
	release  *releaser   // memory back to the OS after a burst of closes (memory.go)
	scratch  scratchPool // the preparations' memory (scratch.go)
	agents   *agentLog   // nil without Options.Agents
}

// Inserter is all ingest needs of a store (flowlog.Store is one): Insert
// writes the batch durably, and is safe to call again with the same rows.
type Inserter interface {
	Insert(ctx context.Context, b *flowlog.Batch) error
}

// New returns a FlowService writing to store.
func New(store Inserter, o Options, log *slog.Logger) *Server {
	o.defaults()
	s := &Server{opts: o, commit: newCommitter(store, o, log), log: log, drain: make(chan struct{}), now: o.Clock, release: newReleaser(),
		agents: newAgentLog(o.Agents, log), prep: newSlots(o.Preparing)}
	s.guard = newGuard(o, log)
	o.Metrics.StreamsOpen.Set(func() float64 { return float64(s.streams.Load()) })
	o.Metrics.StreamsAllRejected.Set(func() float64 { return float64(s.allRejected.Load()) })
	o.Metrics.StreamsByGeneration.Set(func() map[string]float64 {
		return map[string]float64{genCurrent.String(): float64(s.speaking[genCurrent].Load()), genLegacy.String(): float64(s.speaking[genLegacy].Load())}
	})
	return s
}

// GRPCServer returns a grpc.Server with the message-size limit set and this
// service registered.
func (s *Server) GRPCServer(extra ...grpc.ServerOption) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.opts.MaxMessageBytes),
		grpc.ForceServerCodecV2(wireCodec{encoding.GetCodecV2(encproto.Name)}),
	}
	if s.opts.Auth != nil {
		opts = append(opts, grpc.ChainStreamInterceptor(s.countUnauthenticated, s.opts.Auth.StreamInterceptor()), grpc.ChainUnaryInterceptor(s.opts.Auth.UnaryInterceptor()))
	}
	opts = append(opts, s.guard.serverOptions()...) // after authentication: the watch sees the identity
	opts = append(opts, extra...)
	g := grpc.NewServer(opts...)
	pb.RegisterFlowServiceServer(g, s)
	return g
}

// Shutdown answers what every stream has received, ends the streams with
// Unavailable (agents reconnect and resend anything unanswered), stops g and
// commits what remains. ctx bounds the wait.
func (s *Server) Shutdown(ctx context.Context, g *grpc.Server) {
	s.once.Do(func() { close(s.drain) })
	s.commit.hurry()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.log.Warn("graceful stop timed out; closing streams")
		g.Stop()
		<-stopped
	}
	s.commit.close()
	s.agents.wait(ctx)
}

// StreamFlows serves one agent. Its goroutine runs the receive loop; a pump
// goroutine receives (grpc-go allows one receiver and one sender per
// stream), and a sender (ackQueue) exists only while answers are owed:
// responses are queued in arrival order and each is sent when its
// envelope's group commit is done. An idle stream costs two goroutines.
//
// Stack depth: grpc-go runs this handler some 1.5 kB deep, and a goroutine
// keeps the stack its deepest call grew. The functions an idle stream waits
// in (this one, receive) hold little on their frames and leave the work to
// callees that return (openStream, take, finish): the idle handler then fits
// a 4 kB stack, not 8 kB, 40 MB for 10,000 agents.
func (s *Server) StreamFlows(stream pb.FlowService_StreamFlowsServer) error {
	n := s.streams.Add(1)
	if n > int64(s.opts.MaxStreams) {
		return s.refuse()
	}
	s.release.opened(n)
	defer func() { s.release.closed(s.streams.Add(-1)) }()
	st := s.openStream(stream)
	defer st.view.end()
	final := s.receive(st)
	st.draining.stop()
	return s.finish(st, final)
}

// refuse ends a stream over MaxStreams (already counted in s.streams).
func (s *Server) refuse() error {
	s.streams.Add(-1)
	s.opts.Metrics.StreamsRefused.WithLabelValues(metrics.RefusedMaxStreams).Inc()
	return status.Errorf(codes.ResourceExhausted, "too many concurrent streams: limit is %d", s.opts.MaxStreams)
}

// inStream is one agent's stream, as its handler sees it.
type inStream struct {
	ctx  context.Context
	id   *auth.Identity // nil: not authenticated (allowed)
	view *agentView
	acks *ackQueue
	// recvd carries the pump's envelopes; the pump closes it when it
	// ends, with its last word in recvErr (set before the close). One
	// channel, closed rather than sent to, so that an idle handler waits
	// on as few as it can: each channel a goroutine waits on costs it a
	// waiter record (~100 B), 10,000 idle agents each.
	recvd   chan *wireEnvelope
	recvErr error
	// draining: shutdown began (nil: not yet); StreamFlows stops its
	// timer (receive has no defer: its frame stays small).
	draining *draining
}

// openStream starts the stream's receive pump.
func (s *Server) openStream(stream pb.FlowService_StreamFlowsServer) *inStream {
	ctx := stream.Context()
	peerAddr := peerOf(ctx, s.guard.p.TrustedProxies)
	st := &inStream{ctx: ctx, recvd: make(chan *wireEnvelope),
		acks: &ackQueue{s: s, stream: stream, room: make(chan struct{}, s.opts.InFlightPerStream)}}
	go s.pump(st, stream)
	st.id, _, _ = auth.FromContext(ctx)
	st.view = s.newAgentView(peerAddr, userAgent(ctx), st.id)
	return st
}

// pump receives the stream's envelopes, as received (they are decoded in a
// preparation slot: ticket), and hands them to the handler. It ends,
// closing st.recvd, when receiving fails (the agent closed its side:
// io.EOF; the stream broke or was cancelled).
func (s *Server) pump(st *inStream, stream pb.FlowService_StreamFlowsServer) {
	defer close(st.recvd)
	for {
		env := &wireEnvelope{intern: &st.acks.intern}
		if err := stream.RecvMsg(env); err != nil {
			st.recvErr = err
			return
		}
		select {
		case st.recvd <- env:
		case <-st.ctx.Done():
			st.recvErr = st.ctx.Err()
			return
		}
	}
}

// finish answers what is owed after receive ended with final, and returns
// the stream's status.
func (s *Server) finish(st *inStream, final error) error {
	if _, ok := final.(endedError); !ok {
		// Answer what is owed; the collector may still end the stream
		// meanwhile (an agent that closed its side but reads no acks).
		answered := make(chan error, 1)
		go func() { answered <- st.acks.wait() }()
		select {
		case err := <-answered:
			if err != nil {
				return err
			}
			return final
		case err := <-ended(st.ctx):
			final = endedError{err}
		}
	}
	// The collector ends the stream (stalled, idle, revoked, superseded): a
	// Send may be stuck on a full window, so the answers owed are not
	// waited for; returning cancels the stream, which frees the sender.
	err := final.(endedError).error
	s.log.Info("stream ended by the collector", "peer", st.view.peer, "host", hostOf(st.ctx), "why", status.Convert(err).Message())
	return err
}

// endedError is the status of a stream the collector ended (ended).
type endedError struct{ error }

// receive turns envelopes into tickets until the agent closes its side, the
// stream breaks, a limit is exceeded, the collector ends the stream, or
// shutdown begins. It returns the stream's final status.
func (s *Server) receive(st *inStream) error {
	drain := s.drain
	end := ended(st.ctx)
	for {
		d := st.draining
		select {
		case w, ok := <-st.recvd:
			if !ok { // the pump ended; a cancelled stream ends it too
				return pumpEnded(st.recvErr)
			}
			d.arrived()
			if err := s.take(st, w, end); err != nil {
				return err
			}
		case err := <-end:
			return endedError{err}
		case <-drain:
			drain = nil
			st.draining = s.startDraining()
		case <-d.quietC():
			return errShuttingDown
		case <-d.maxC():
			return errShuttingDown
		}
	}
}

// pumpEnded is the stream's status once the pump ended with err: none if
// the agent closed its side.
func pumpEnded(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

var errShuttingDown = status.Error(codes.Unavailable, "collector shutting down; reconnect and resend unacknowledged envelopes")

// draining is a stream's drain on shutdown: it ends once nothing arrived for
// DrainQuiet (quiet), or after drainMax however busy (max). A nil
// *draining is a stream not draining: its channels are nil, never ready.
type draining struct {
	quiet    *time.Timer
	quietFor time.Duration
	max      <-chan time.Time
}

func (s *Server) startDraining() *draining {
	return &draining{quiet: time.NewTimer(s.opts.DrainQuiet), quietFor: s.opts.DrainQuiet, max: time.After(drainMax)}
}

// arrived restarts the quiet period.
func (d *draining) arrived() {
	if d != nil {
		d.quiet.Reset(d.quietFor)
	}
}

func (d *draining) quietC() <-chan time.Time {
	if d == nil {
		return nil
	}
	return d.quiet.C
}

func (d *draining) maxC() <-chan time.Time {
	if d == nil {
		return nil
	}
	return d.max
}

func (d *draining) stop() {
	if d != nil {
		d.quiet.Stop()
	}
}

// take prepares one received envelope and queues its answer, waiting while
// the stream has InFlightPerStream envelopes unanswered. A non-nil error
// ends the stream.
func (s *Server) take(st *inStream, w *wireEnvelope, end <-chan error) error {
	t, err := s.ticket(st, w)
	if err != nil {
		return err
	}
	select {
	case st.acks.room <- struct{}{}: // blocks while InFlightPerStream envelopes await commit
		st.acks.push(t)
		return nil
	case err := <-end:
		return endedError{err}
	case <-st.ctx.Done():
		return st.ctx.Err()
	}
}

// malformed ends a stream that sent bytes that are no envelope.
func (s *Server) malformed(st *inStream, err error) error {
	s.log.Warn("malformed message: ending the stream", "peer", st.view.peer, "host", hostOf(st.ctx), "err", err)
	return status.Errorf(codes.InvalidArgument, "malformed FlowEnvelope: %v; ending the stream", err)
}

// tooManyEvents ends a stream that sent an envelope of n events, over the
// limit.
func (s *Server) tooManyEvents(st *inStream, n int) error {
	s.log.Warn("envelope over the event limit; ending stream", "peer", st.view.peer, "events", n, "limit", s.opts.MaxEventsPerEnv)
	return status.Error(codes.InvalidArgument, flowlog.TooManyEvents(n, s.opts.MaxEventsPerEnv))
}

// ticket decodes, admits (per-host rate limit) and prepares w on a
// goroutine of its own, and waits for it: decoding, validation, enrichment
// and logging run deep, and the handler's goroutine, which then waits for
// the stream's next envelope, would keep the stack they grew for as long
// as the agent stays connected (16 kB instead of 4 for every agent between
// two flushes). A goroutine per envelope costs a microsecond or two; an
// envelope carries hundreds of events.
//
// The work runs in one of s.prep's slots, taken in arrival order: it only
// needs the CPU, and nothing in it waits on an agent (the answer's room is
// waited for after, in take), so a stream holds a slot for the time of one
// envelope's work, and every stream waiting gets the next free slot in
// turn. A non-nil error ends the stream.
func (s *Server) ticket(st *inStream, w *wireEnvelope) (*ticket, error) {
	type prepared struct {
		t   *ticket
		err error
	}
	ready := make(chan prepared, 1)
	go func() {
		s.prep.take()
		defer s.prep.give()
		t, err := s.decodeAndPrepare(st, w)
		ready <- prepared{t, err}
	}()
	p := <-ready
	return p.t, p.err
}

// decodeAndPrepare is ticket's work, in a slot.
func (s *Server) decodeAndPrepare(st *inStream, w *wireEnvelope) (*ticket, error) {
	w.scratch = s.scratch.get()
	defer s.scratch.put(w.scratch) // prepare left nothing in it: the commit copied its events
	w.decodeReceived()
	if w.err != nil {
		return nil, s.malformed(st, w.err)
	}
	if n := len(w.env.GetEvents()); n > s.opts.MaxEventsPerEnv {
		return nil, s.tooManyEvents(st, n)
	}
	if t := s.guard.admit(w.env, w.wireBytes, st.id, st.view.peer); t != nil { // over the limit
		return t, nil
	}
	return s.prepare(w, st.view, st.id), nil
}

// slots bounds how many goroutines hold one at once; waiters get them in
// the order they asked (a channel's senders queue in order).
type slots struct {
	free    chan struct{}
	waiting atomic.Int64 // goroutines waiting for a slot (tests)
}

func newSlots(n int) slots { return slots{free: make(chan struct{}, n)} }

func (p *slots) take() {
	select {
	case p.free <- struct{}{}:
		return
	default:
	}
	p.waiting.Add(1)
	p.free <- struct{}{}
	p.waiting.Add(-1)
}

func (p *slots) give() { <-p.free }

// ackQueue answers a stream's tickets in order as their commits finish. Its
// sender goroutine runs only while tickets are queued: most agents' streams
// are idle most of the time, and an idle goroutine still holds its stack.
type ackQueue struct {
	s      *Server
	stream pb.FlowService_StreamFlowsServer
	// room holds a token for each ticket queued and not yet answered: the
	// receiver takes one before push (InFlightPerStream bounds what a
	// stream may have in flight), the sender gives it back once answered.
	room chan struct{}
	// intern is the stream's interner, dropped once every envelope has been
	// answered for internIdle (forgetting, started when the queue empties).
	intern     internSlot
	forgetting *time.Timer

	mu      sync.Mutex
	queue   []*ticket
	sending bool           // a sender goroutine runs
	senders sync.WaitGroup // the sender, for wait
	failed  error          // the first Send error; later tickets are dropped
}

// push queues t (its room token taken) and starts a sender if none runs.
// Only the receive loop pushes.
func (q *ackQueue) push(t *ticket) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, t)
	if !q.sending {
		q.sending = true
		q.senders.Add(1)
		go q.send()
	}
}

// send answers queued tickets until none is left.
func (q *ackQueue) send() {
	defer q.senders.Done()
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.sending = false
			q.queue = nil // an idle stream holds no backing array
			q.forgetLater()
			q.mu.Unlock()
			return
		}
		t := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		failed := q.failed
		q.mu.Unlock()
		<-t.done
		if failed == nil { // after a failure keep draining, so the receiver never blocks
			if err := q.stream.Send(response(t)); err != nil {
				q.mu.Lock()
				q.failed = err
				q.mu.Unlock()
			} else {
				q.s.opts.Metrics.EnvelopesAcked.WithLabelValues(ackResult(t)).Inc()
			}
		}
		<-q.room
	}
}

// internIdle: a stream answered this long drops its interner. A busy
// agent's envelopes follow each other closer than this, and keep what the
// earlier ones taught (its participants read, decoding 40% faster); one
// between two flushes keeps nothing.
const internIdle = 2 * time.Second

// forgetLater drops the interner internIdle from now unless an envelope is
// queued meanwhile; q.mu is held.
func (q *ackQueue) forgetLater() {
	if q.forgetting == nil {
		q.forgetting = time.AfterFunc(internIdle, q.forgetIfIdle)
	} else {
		q.forgetting.Reset(internIdle)
	}
}

func (q *ackQueue) forgetIfIdle() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.sending {
		q.intern.forget()
	}
}

// wait returns, once every queued ticket is answered, the first Send error.
// Call it after the last push.
func (q *ackQueue) wait() error {
	q.senders.Wait()
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failed
}

// prepare validates an envelope (and, for an authenticated stream, that each
// event is the identity's to report) and submits it for commit. A ticket
// that cannot be submitted is already done, with the reason.
func (s *Server) prepare(w *wireEnvelope, view *agentView, id *auth.Identity) *ticket {
	peerAddr := view.peer
	t := &ticket{done: make(chan struct{})}
	now := s.now()
	events := w.env.GetEvents()
	m := s.opts.Metrics
	m.EnvelopesReceived.Inc()
	m.EventsReceived.Add(float64(len(events)))
	t.events = w.scratch.converted(len(events))
	var byGen [3]int
	for i, ev := range events {
		byGen[w.events[i].gen]++
		t.events = append(t.events, flowlog.Event{}) // converted in place (capacity: no move)
		e := &t.events[len(t.events)-1]
		err := w.events[i].reject
		if err == nil {
			err = convertInto(e, ev, now)
		}
		if err == nil {
			err = checkIdentity(e, id)
		}
		if err != nil {
			t.events = t.events[:len(t.events)-1]
			m.Rejected(ReasonClass(err))
			original := originalJSON(ev)
			if w.events[i].raw != nil {
				original = undecodedJSON(w.events[i].raw)
			}
			t.rejected = append(t.rejected, flowlog.Rejected{
				Received: now, Peer: peerAddr, HostID: ev.GetHostId(), Index: i,
				Reason: err.Error(), Class: ReasonClass(err), Event: original,
			})
			continue
		}
		if s.opts.Enrich != nil {
			s.opts.Enrich(e)
		}
	}
	for g, n := range byGen {
		if n > 0 {
			m.EventsByGeneration.WithLabelValues(generation(g).String()).Add(float64(n))
		}
	}
	s.guard.keepRejected(t.rejected, id, peerAddr) // bounded, and within the host's budget
	t.note = rejectNote(t.rejected, len(events))
	view.saw(w, t) // before submit: the writer clears the ticket once committed
	if t.rows() == 0 {
		t.events = nil // the scratch's (decodeAndPrepare)
		close(t.done)
		return t
	}
	if err := s.commit.submit(t); err != nil { // on success it copied the events and let them go
		t.events = nil
		t.err = err
		close(t.done)
	}
	return t
}

// originalJSON keeps a rejected event as the agent sent it, with the
// .proto's field names so operators can match it to the spec.
func originalJSON(ev *pb.FlowEvent) string {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ev)
	if err != nil {
		return fmt.Sprintf("unencodable event: %v", err)
	}
	return string(b)
}

// maxErrorItems bounds how many rejected events one response names.
const maxErrorItems = 20

// rejectNote names each rejected event by index and reason, for the agent.
func rejectNote(rejected []flowlog.Rejected, total int) string {
	if len(rejected) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rejected %d of %d events:", len(rejected), total)
	for i, r := range rejected {
		if i == maxErrorItems {
			fmt.Fprintf(&b, " ... and %d more", len(rejected)-i)
			break
		}
		fmt.Fprintf(&b, " [%d] %s;", r.Index, r.Reason)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// countUnauthenticated counts the streams the auth interceptor (inside it)
// refuses; StreamFlows itself never ends a stream with Unauthenticated.
func (s *Server) countUnauthenticated(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	if status.Code(err) == codes.Unauthenticated {
		s.opts.Metrics.StreamsRefused.WithLabelValues(metrics.RefusedUnauthenticated).Inc()
	}
	return err
}

// ackResult is the result label of the answer to t.
func ackResult(t *ticket) string {
	switch {
	case t.err == nil:
		return metrics.AckSuccess
	case errors.Is(t.err, ErrOverloaded):
		return metrics.AckOverloaded
	default:
		return metrics.AckFailedTransient
	}
}

// response is success=true once stored (rejects included: retrying would not
// help), success=false only for transient trouble.
func response(t *ticket) *pb.FlowResponse {
	if t.err != nil {
		msg := t.err.Error()
		if !errors.Is(t.err, ErrOverloaded) && !errors.Is(t.err, errClosed) {
			msg = "store unavailable, retry: " + msg
		}
		return &pb.FlowResponse{Success: false, Error: msg}
	}
	return &pb.FlowResponse{Success: true, Error: t.note}
}
