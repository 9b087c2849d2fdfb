package ingest

// Protection of the gRPC side against agents that send too much, stop
// reading, hold idle connections or send garbage (SECURITY.md):
//
//   - a token bucket per host (the authenticated identity's host_id, else
//     the peer's IP address): an envelope over the rate is answered
//     success=false at once (transient, the agent retries later) without
//     touching the group commit, so it costs other hosts nothing;
//   - a stream whose acks cannot be sent for StallTimeout (the agent does not
//     read: its HTTP/2 window is full) is ended with DeadlineExceeded, which
//     frees its slot and goroutines; the in-flight bound per stream already
//     stops reading from it while it stalls;
//   - keepalive enforcement and server pings, idle-connection and handshake
//     timeouts;
//   - a message that is not a FlowEnvelope (undecodable bytes, or a known
//     field with the wrong wire type) ends the stream with InvalidArgument
//     (wireCodec, StreamFlows).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog/auth"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Protection is the ingest side's abuse limits. Zero values take the
// defaults noted; the rate limit is off unless Rate is set.
type Protection struct {
	// Rate is the events per second one host may send: the authenticated
	// identity's host_id, or, without identity, the peer's IP address.
	// 0: unlimited.
	Rate float64
	// Burst is the bucket size, in events: what a host may send at once
	// after being quiet. Default 2 x Rate; never less than the largest
	// envelope (MaxEventsPerEnv), which would otherwise never pass.
	Burst int
	// StallTimeout ends a stream whose acks could not be sent for this long;
	// 0: never (DefaultStallTimeout is a good value).
	StallTimeout time.Duration

	KeepaliveMinTime  time.Duration // agents may ping this often, no more (default 10s; our agent pings every 30s)
	KeepaliveTime     time.Duration // ping a connection quiet this long (default 1m)...
	KeepaliveTimeout  time.Duration // ...and close it without an answer within this (default 20s)
	MaxConnectionIdle time.Duration // close a connection without streams after this (default 5m)
	HandshakeTimeout  time.Duration // TCP accept to HTTP/2 ready, TLS included (default 20s)
}

// Defaults of Protection.
const (
	DefaultStallTimeout      = 60 * time.Second
	DefaultKeepaliveMinTime  = 10 * time.Second
	DefaultKeepaliveTime     = time.Minute
	DefaultKeepaliveTimeout  = 20 * time.Second
	DefaultMaxConnectionIdle = 5 * time.Minute
	DefaultHandshakeTimeout  = 20 * time.Second
)

func (p *Protection) defaults(maxEventsPerEnv int) {
	dur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	dur(&p.KeepaliveMinTime, DefaultKeepaliveMinTime)
	dur(&p.KeepaliveTime, DefaultKeepaliveTime)
	dur(&p.KeepaliveTimeout, DefaultKeepaliveTimeout)
	dur(&p.MaxConnectionIdle, DefaultMaxConnectionIdle)
	dur(&p.HandshakeTimeout, DefaultHandshakeTimeout)
	if p.Rate < 0 {
		p.Rate = 0
	}
	if p.Rate > 0 {
		if p.Burst <= 0 {
			p.Burst = int(min(2*p.Rate, math.MaxInt32))
		}
		p.Burst = max(p.Burst, maxEventsPerEnv)
	}
}

// ErrRateLimited is matched (errors.Is) by the answer to an envelope over its
// host's rate. It also matches ErrOverloaded: to the agent both mean "retry
// later", and the answer carries the message as it is.
var ErrRateLimited = errors.New("rate limit")

// rateLimitError is the answer to one envelope over the rate.
type rateLimitError struct {
	who  string
	rate float64
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("rate limit: host %s exceeds %s events/s, retry later", e.who, strconv.FormatFloat(e.rate, 'f', -1, 64))
}

func (e *rateLimitError) Is(target error) bool {
	return target == ErrRateLimited || target == ErrOverloaded
}

// guard holds the protection state of one Server.
type guard struct {
	p       Protection
	log     *slog.Logger
	limiter *limiter // nil: no rate limit
}

func newGuard(p Protection, maxEventsPerEnv int, log *slog.Logger) *guard {
	p.defaults(maxEventsPerEnv)
	g := &guard{p: p, log: log}
	if p.Rate > 0 {
		g.limiter = newLimiter(p.Rate, float64(p.Burst), time.Now)
	}
	return g
}

// serverOptions are the grpc.Server options of the protection: keepalive
// enforcement and pings, timeouts, and the interceptor that watches each
// stream (install it after the authentication interceptor, so that it sees
// the stream's identity and watches only streams that were let in).
func (g *guard) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: g.p.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: g.p.MaxConnectionIdle, Time: g.p.KeepaliveTime, Timeout: g.p.KeepaliveTimeout,
		}),
		grpc.ConnectionTimeout(g.p.HandshakeTimeout),
		grpc.ChainStreamInterceptor(g.watch),
	}
}

// admit applies the rate limit to one envelope of a stream authenticated as
// id (nil: none) from peerAddr. It returns nil if the envelope may go on;
// otherwise a ticket already answered success=false.
func (g *guard) admit(env *pb.FlowEnvelope, id *auth.Identity, peerAddr string) *ticket {
	if g.limiter == nil {
		return nil
	}
	n := len(env.GetEvents())
	if n == 0 {
		return nil
	}
	key, who := rateKey(id, peerAddr)
	ok, logNow, denied := g.limiter.allow(key, float64(n))
	if ok {
		return nil
	}
	err := &rateLimitError{who: who, rate: g.p.Rate}
	if logNow {
		g.log.Warn("rate limit: envelopes answered success=false", "host", who, "peer", peerAddr,
			"rate", g.p.Rate, "burst", g.p.Burst, "denied_envelopes", denied)
	}
	t := &ticket{done: make(chan struct{}), err: err}
	close(t.done)
	return t
}

// rateKey is the bucket of a stream: its identity's host, or its peer's
// address (all unauthenticated agents behind one address share it).
func rateKey(id *auth.Identity, peerAddr string) (key, who string) {
	if id != nil {
		return "host:" + id.HostID, id.HostID
	}
	ip := peerAddr
	if h, _, err := net.SplitHostPort(peerAddr); err == nil {
		ip = h
	}
	return "ip:" + ip, ip + " (unauthenticated, limited by address)"
}

// limiter is a token bucket per key. A bucket that has filled up again is
// indistinguishable from a new one, so idle buckets are dropped.
type limiter struct {
	rate, burst float64
	now         func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens   float64
	last     time.Time
	denied   int       // envelopes denied since the last log line
	loggedAt time.Time // last log line about this bucket
}

// logEvery bounds the log lines about one flooding host.
const logEvery = 10 * time.Second

func newLimiter(rate, burst float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: burst, now: now, buckets: map[string]*bucket{}, lastSweep: now()}
}

// allow takes n tokens from key's bucket if it holds them. When it does
// not, logNow says whether to log (at most once per logEvery per key) and
// denied how many envelopes were denied since the last line.
func (l *limiter) allow(key string, n float64) (ok, logNow bool, denied int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens >= n {
		b.tokens -= n
		return true, false, 0
	}
	b.denied++
	if now.Sub(b.loggedAt) >= logEvery {
		denied, b.denied, b.loggedAt = b.denied, 0, now
		return false, true, denied
	}
	return false, false, 0
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
}

// sweep drops the buckets that are full again.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		b.refill(now, l.rate, l.burst)
		if b.tokens >= l.burst && b.denied == 0 {
			delete(l.buckets, k)
		}
	}
}

// size is the number of buckets held (tests).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// watch is the stream interceptor: it runs the handler on a watched stream
// and ends the stream if an ack could not be sent for StallTimeout.
// Returning ends the RPC: grpc cancels the stream's context, which unblocks
// the handler's Send and Recv, and the handler unwinds on its own (its acks
// already computed are dropped; the agent resends what it did not see acked).
func (g *guard) watch(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	w := &watchedStream{ServerStream: ss, g: g}
	if g.p.StallTimeout <= 0 {
		return handler(srv, w)
	}
	done := make(chan error, 1)
	go func() { done <- handler(srv, w) }()
	tick := time.NewTicker(max(g.p.StallTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if d := w.sendingFor(); d >= g.p.StallTimeout {
				g.log.Warn("stream stalled: the agent does not read its acks; ending the stream",
					"peer", peerOf(ss.Context()), "host", hostOf(ss.Context()), "blocked", d.Round(time.Millisecond), "limit", g.p.StallTimeout)
				return status.Errorf(codes.DeadlineExceeded,
					"stream stalled: acknowledgements could not be sent for %s (the agent does not read them; its receive window is full): ending the stream; reconnect and resend unacknowledged envelopes",
					g.p.StallTimeout)
			}
		}
	}
}

// watchedStream times Send.
type watchedStream struct {
	grpc.ServerStream
	g         *guard
	sendStart atomic.Int64 // unix nanos of the Send in progress; 0: none
}

func (w *watchedStream) SendMsg(m any) error {
	w.sendStart.Store(time.Now().UnixNano())
	err := w.ServerStream.SendMsg(m)
	w.sendStart.Store(0)
	return err
}

// sendingFor is how long the Send in progress has been blocked (0: none).
func (w *watchedStream) sendingFor() time.Duration {
	s := w.sendStart.Load()
	if s == 0 {
		return 0
	}
	return time.Since(time.Unix(0, s))
}

func peerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// hostOf is the authenticated host of ctx, if any.
func hostOf(ctx context.Context) string {
	if id, _, ok := auth.FromContext(ctx); ok {
		return id.HostID
	}
	return ""
}
