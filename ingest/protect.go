package ingest

// Protection of the gRPC side against agents that send too much, stop
// reading, hold idle connections or send garbage (SECURITY.md):
//
//   - a token bucket per host, in events and in bytes (the authenticated
//     identity's host_id, else the host_id the events claim: behind a proxy
//     every agent has the proxy's address): an envelope over the rate is
//     answered success=false at once (transient, the agent retries later)
//     without touching the group commit, so it costs other hosts nothing;
//   - streams capped per host and per address, idle streams reaped, revoked
//     identities' streams ended (admission.go);
//   - a stream whose acks cannot be sent for StallTimeout (the agent does not
//     read: its HTTP/2 window is full) is ended with DeadlineExceeded, which
//     frees its slot and goroutines; the in-flight bound per stream already
//     stops reading from it while it stalls;
//   - keepalive enforcement and server pings, idle-connection and handshake
//     timeouts, a bound on the size of a stream's headers (metadata);
//   - a message that is not a FlowEnvelope (undecodable bytes, or a known
//     field with the wrong wire type) ends the stream with InvalidArgument
//     (wireCodec, StreamFlows).

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/metrics"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Protection is the ingest side's abuse limits. Zero values take the
// defaults noted; the rate limit is off unless Rate is set.
type Protection struct {
	// Rate is the events per second one host may send: the authenticated
	// identity's host_id, or, without identity, the host_id its events
	// claim. 0: unlimited.
	Rate float64
	// Burst is the bucket size, in events: what a host may send at once
	// after being quiet. Default 2 x Rate; never less than the largest
	// envelope (MaxEventsPerEnv), which would otherwise never pass.
	Burst int
	// RateBytes is the envelope bytes per second one host may send (a few
	// huge events cost as much as many small ones). 0: unlimited.
	RateBytes float64
	// BurstBytes is its bucket size. Default 2 x RateBytes; never less than
	// the largest message (MaxMessageBytes).
	BurstBytes int

	// MaxStreamsPerHost caps the streams of one host (authenticated, or
	// claimed by its first events); MaxStreamsPerAddress those of one
	// client address. At a cap, the host's (address's) longest-idle stream
	// makes room; when all are busy the new one is refused. Defaults 16 and
	// 256; negative: no cap.
	MaxStreamsPerHost    int
	MaxStreamsPerAddress int
	// TrustedProxies are the addresses of TLS-terminating proxies in front
	// of the collector: their own address is not an agent's, so streams
	// through them are counted by the X-Forwarded-For address the proxy
	// adds (or not per address at all without one), which logs show too.
	TrustedProxies []netip.Prefix
	// StreamIdleTimeout ends a stream that received no envelope for this
	// long and owes no answer (default 10m; negative: never).
	StreamIdleTimeout time.Duration
	// RevalidateEvery is how soon a stream notices that the identities file
	// no longer grants its identity (default 1s).
	RevalidateEvery time.Duration
	// MaxHeaderBytes bounds a stream's headers (gRPC metadata), which grpc
	// holds in memory for the stream's life (default 64 KiB).
	MaxHeaderBytes int
	// RejectedBytesRate is the rejected_events budget of one host: bytes
	// of rejected events' bodies kept per second (default 64 KiB/s;
	// negative: unlimited), RejectedBytesBurst its bucket (default 16 MiB).
	// Past it their reasons are kept, and 128 bytes of their bodies. Each
	// body is cut to 4 KiB anyway (its size and SHA-256 kept).
	RejectedBytesRate  float64
	RejectedBytesBurst int

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

	DefaultMaxStreamsPerHost    = 16
	DefaultMaxStreamsPerAddress = 256
	DefaultStreamIdleTimeout    = 10 * time.Minute
	DefaultRevalidateEvery      = time.Second
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultRejectedBytesRate    = 64 << 10
	// DefaultRateBytes is the --ingest-rate-bytes flag's default (RateBytes
	// itself is unlimited at zero, like Rate): 640 bytes for each of the
	// 50,000 events/s of --ingest-rate, twice what a real event weighs.
	DefaultRateBytes          = 32 << 20
	DefaultRejectedBytesBurst = 16 << 20
)

func (p *Protection) defaults(maxEventsPerEnv, maxMessageBytes int) {
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
	dur(&p.StreamIdleTimeout, DefaultStreamIdleTimeout)
	dur(&p.RevalidateEvery, DefaultRevalidateEvery)
	num := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	num(&p.MaxStreamsPerHost, DefaultMaxStreamsPerHost)
	num(&p.MaxStreamsPerAddress, DefaultMaxStreamsPerAddress)
	if p.MaxHeaderBytes <= 0 {
		p.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	bucket := func(rate *float64, burst *int, least int) {
		if *rate <= 0 {
			*rate, *burst = 0, 0
			return
		}
		if *burst <= 0 {
			*burst = int(min(2**rate, math.MaxInt32))
		}
		*burst = max(*burst, least)
	}
	if p.RejectedBytesRate == 0 {
		p.RejectedBytesRate = DefaultRejectedBytesRate
	}
	if p.RejectedBytesBurst <= 0 {
		p.RejectedBytesBurst = DefaultRejectedBytesBurst
	}
	bucket(&p.RejectedBytesRate, &p.RejectedBytesBurst, maxRejectedEvent)
	bucket(&p.Rate, &p.Burst, maxEventsPerEnv)
	bucket(&p.RateBytes, &p.BurstBytes, maxMessageBytes)
}

// ErrRateLimited is matched (errors.Is) by the answer to an envelope over its
// host's rate. It also matches ErrOverloaded: to the agent both mean "retry
// later", and the answer carries the message as it is.
var ErrRateLimited = errors.New("rate limit")

// rateLimitError is the answer to one envelope over the rate.
type rateLimitError struct {
	who  string
	rate float64
	unit string // "events" or "bytes"
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("rate limit: host %s exceeds %s %s/s, retry later", e.who, strconv.FormatFloat(e.rate, 'f', -1, 64), e.unit)
}

func (e *rateLimitError) Is(target error) bool {
	return target == ErrRateLimited || target == ErrOverloaded
}

// guard holds the protection state of one Server.
type guard struct {
	p       Protection
	log     *slog.Logger
	auth    *auth.Authenticator // nil: streams carry no identity to revalidate
	m       *metrics.Collector
	limiter *limiter // nil: no rate limit
	// rejectBudget holds each host's budget of rejected bytes kept (nil:
	// unlimited).
	rejectBudget *limiter
	streams      *admission
	watcher      watcher
	now          func() time.Time
}

func newGuard(o Options, log *slog.Logger) *guard {
	p := o.Protect
	p.defaults(o.MaxEventsPerEnv, o.MaxMessageBytes)
	g := &guard{p: p, log: log, auth: o.Auth, m: o.Metrics, now: o.Clock}
	if p.Rate > 0 || p.RateBytes > 0 {
		g.limiter = newLimiter(limits{p.Rate, p.RateBytes}, limits{float64(p.Burst), float64(p.BurstBytes)}, g.now)
	}
	if p.RejectedBytesRate > 0 {
		g.rejectBudget = newLimiter(limits{0, p.RejectedBytesRate}, limits{0, float64(p.RejectedBytesBurst)}, g.now)
	}
	g.streams = newAdmission(p, o.Metrics, g.now)
	g.watcher.g = g
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
		grpc.MaxHeaderListSize(uint32(min(g.p.MaxHeaderBytes, math.MaxUint32))),
		// One stream per agent connection: an HPACK table would keep its
		// headers for the connection's life, unused (~0.5 kB an agent).
		grpc.HeaderTableSize(0),
		grpc.ChainStreamInterceptor(g.watch),
	}
}

// admit applies the rate limit to one envelope of a stream authenticated as
// id (nil: none) from peerAddr; wireBytes is its size as received. It
// returns nil if the envelope may go on; otherwise a ticket already
// answered success=false.
func (g *guard) admit(env *pb.FlowEnvelope, wireBytes int, id *auth.Identity, peerAddr string) *ticket {
	if g.limiter == nil {
		return nil
	}
	events := env.GetEvents()
	if len(events) == 0 {
		return nil
	}
	// The bytes the agent sent, not proto.Size of the decoded envelope:
	// that walks every event again (5% of the collector's CPU under the
	// bench) and, for an older-generation agent, measures the renumbered
	// message instead of what it sent.
	costs := rateCosts(events, float64(wireBytes), id)
	ok, unit, c, logNow, denied := g.limiter.allow(costs)
	if ok {
		return nil
	}
	rate := g.p.Rate
	if unit == "bytes" {
		rate = g.p.RateBytes
	}
	err := &rateLimitError{who: c.who, rate: rate, unit: unit}
	if logNow {
		g.log.Warn("rate limit: envelopes answered success=false", "host", c.who, "peer", peerAddr,
			"rate", g.p.Rate, "burst", g.p.Burst, "rate_bytes", g.p.RateBytes, "burst_bytes", g.p.BurstBytes, "over", unit, "denied_envelopes", denied)
	}
	t := &ticket{done: make(chan struct{}), err: err}
	close(t.done)
	return t
}

// cost is what one envelope takes from one host's bucket.
type cost struct {
	key, who string
	n        limits
}

// rateCosts charges an envelope to its host: the identity's, or, without
// identity, each host its events claim, by its share of the events (an
// address says nothing behind a proxy, and many agents may share one).
func rateCosts(events []*pb.FlowEvent, size float64, id *auth.Identity) []cost {
	if id != nil {
		return []cost{{key: "host:" + id.HostID, who: id.HostID, n: limits{float64(len(events)), size}}}
	}
	var costs []cost
	index := map[string]int{}
	perEvent := size / float64(len(events))
	for _, ev := range events {
		h := ev.GetHostId()
		i, ok := index[h]
		if !ok {
			i = len(costs)
			index[h] = i
			costs = append(costs, cost{key: "claim:" + h, who: fmt.Sprintf("%q (unauthenticated, as its events claim)", h)})
		}
		costs[i].n[0]++
		costs[i].n[1] += perEvent
	}
	return costs
}

// limits is a pair of quantities: events and bytes. A rate of 0 in one
// of them is no limit on it.
type limits [2]float64

var limitUnits = [2]string{"events", "bytes"}

// limiter is a token bucket per key, in events and in bytes. A bucket that
// has filled up again is indistinguishable from a new one, so idle buckets
// are dropped.
type limiter struct {
	rate, burst limits
	now         func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens   limits
	last     time.Time
	denied   int       // envelopes denied since the last log line
	loggedAt time.Time // last log line about this bucket
}

// logEvery bounds the log lines about one flooding host.
const logEvery = 10 * time.Second

func newLimiter(rate, burst limits, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: burst, now: now, buckets: map[string]*bucket{}, lastSweep: now()}
}

// allow takes every cost from its key's bucket if all of them hold enough;
// otherwise it takes nothing and names the unit and the cost that did not
// fit. logNow then says whether to log (at most once per logEvery per key)
// and denied how many envelopes were denied since the last line.
func (l *limiter) allow(costs []cost) (ok bool, unit string, over cost, logNow bool, denied int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		l.sweep(now)
	}
	bs := make([]*bucket, len(costs))
	for i, c := range costs {
		b := l.buckets[c.key]
		if b == nil {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[c.key] = b
		}
		b.refill(now, l.rate, l.burst)
		bs[i] = b
		for d := range l.rate {
			if l.rate[d] > 0 && b.tokens[d] < c.n[d] {
				b.denied++
				if now.Sub(b.loggedAt) >= logEvery {
					denied, b.denied, b.loggedAt = b.denied, 0, now
					logNow = true
				}
				return false, limitUnits[d], c, logNow, denied
			}
		}
	}
	for i, c := range costs {
		for d := range l.rate {
			if l.rate[d] > 0 {
				bs[i].tokens[d] -= c.n[d]
			}
		}
	}
	return true, "", cost{}, false, 0
}

func (b *bucket) refill(now time.Time, rate, burst limits) {
	if d := now.Sub(b.last); d > 0 {
		for i := range rate {
			b.tokens[i] = min(burst[i], b.tokens[i]+d.Seconds()*rate[i])
		}
		b.last = now
	}
}

// sweep drops the buckets that are full again.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		b.refill(now, l.rate, l.burst)
		if b.tokens == l.burst && b.denied == 0 {
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

// watch is the stream interceptor: it admits the stream (admission.go) and
// runs the handler on a watched stream, in grpc's own goroutine for it. The
// guard's one checker (watcher) ends the stream when an ack could not be
// sent for StallTimeout, when it idled for StreamIdleTimeout, when its
// identity is revoked; admission ends it when a newer stream supersedes it.
// Ending is a status on the slot's end channel, which the handler selects on
// (ended) and returns: grpc then cancels the stream's context, which
// unblocks a Send stuck on a full window (its acks already computed are
// dropped; the agent resends what it did not see acked). Nothing per stream
// ticks: 10,000 idle agents cost no timer and no goroutine here.
func (g *guard) watch(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	sl, err := g.streams.open(ctx)
	if err != nil {
		return g.refused(ctx, err)
	}
	defer g.streams.release(sl)
	if g.auth != nil {
		sl.idSet = g.auth.Identities() // what the interceptor before this one judged by
	}
	w := &watchedStream{ServerStream: ss, g: g, slot: sl, ctx: context.WithValue(ctx, endKey{}, sl.end)}
	g.watcher.add(w)
	defer g.watcher.remove(w)
	return handler(srv, w)
}

// refused logs a stream admission refused, and returns its status. Apart
// from watch, which every stream's handler runs under: its frame stays small.
func (g *guard) refused(ctx context.Context, err error) error {
	g.log.Warn("stream refused", "peer", peerOf(ctx, g.p.TrustedProxies), "host", hostOf(ctx), "err", status.Convert(err).Message())
	return err
}

// endKey is the context key of a watched stream's end channel.
type endKey struct{}

// ended is the channel on which the collector's verdict that a stream must
// end (stalled, idle, revoked, superseded) arrives: the handler returns
// that status. Nil (never ready) for a stream not watched.
func ended(ctx context.Context) <-chan error {
	ch, _ := ctx.Value(endKey{}).(chan error)
	return ch
}

// watcher runs check on every open stream each checkEvery, on one
// goroutine for all of them, started with the first stream and gone with
// the last (a goroutine and a ticker per stream cost 10,000 idle agents
// tens of megabytes).
type watcher struct {
	g       *guard
	mu      sync.Mutex
	streams map[*watchedStream]struct{}
	running bool
}

func (wt *watcher) add(w *watchedStream) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	if wt.streams == nil {
		wt.streams = map[*watchedStream]struct{}{}
	}
	wt.streams[w] = struct{}{}
	if !wt.running {
		wt.running = true
		go wt.loop()
	}
}

func (wt *watcher) remove(w *watchedStream) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	delete(wt.streams, w)
}

// loop checks the streams until none is left. A stream found at fault is
// ended once and no longer checked.
func (wt *watcher) loop() {
	tick := time.NewTicker(wt.g.checkEvery())
	defer tick.Stop()
	var batch []*watchedStream
	for range tick.C {
		wt.mu.Lock()
		if len(wt.streams) == 0 {
			wt.running = false
			wt.mu.Unlock()
			return
		}
		batch = batch[:0]
		for w := range wt.streams {
			batch = append(batch, w)
		}
		wt.mu.Unlock()
		for _, w := range batch {
			if err := wt.g.check(w.ctx, w); err != nil {
				wt.remove(w)
				w.slot.stop(err)
			}
		}
		clear(batch) // hold no ended stream until the next tick
	}
}

// checkEvery is the period of the streams' checks: often enough that each
// limit is noticed within a quarter of it (a second for revocation).
func (g *guard) checkEvery() time.Duration {
	d := g.p.RevalidateEvery
	for _, l := range []time.Duration{g.p.StallTimeout, g.p.StreamIdleTimeout} {
		if l > 0 {
			d = min(d, l/4)
		}
	}
	return max(d, 10*time.Millisecond)
}

// check is the status that ends w's stream now, or nil.
func (g *guard) check(ctx context.Context, w *watchedStream) error {
	// Named only when logged: one goroutine checks every stream each second.
	client, host := func() string { return peerOf(ctx, g.p.TrustedProxies) }, func() string { return hostOf(ctx) }
	if d := w.sendingFor(); g.p.StallTimeout > 0 && d >= g.p.StallTimeout {
		g.log.Warn("stream stalled: the agent does not read its acks; ending the stream",
			"peer", client(), "host", host(), "blocked", d.Round(time.Millisecond), "limit", g.p.StallTimeout)
		return status.Errorf(codes.DeadlineExceeded,
			"stream stalled: acknowledgements could not be sent for %s (the agent does not read them; its receive window is full): ending the stream; reconnect and resend unacknowledged envelopes",
			g.p.StallTimeout)
	}
	if d := w.slot.idleFor(g.now()); g.p.StreamIdleTimeout > 0 && d >= g.p.StreamIdleTimeout {
		g.log.Info("idle stream ended", "peer", client(), "host", host(), "idle", d.Round(time.Millisecond), "limit", g.p.StreamIdleTimeout)
		g.m.StreamsEnded.WithLabelValues(metrics.EndedIdle).Inc()
		return status.Errorf(codes.Unavailable, flowlog.IdleStream+"no envelope for %s; ending the stream (reconnect when there is data)", g.p.StreamIdleTimeout)
	}
	if err := revoked(ctx, g.auth, w.slot); err != nil {
		g.log.Warn("identity revoked or changed: ending its stream", "peer", client(), "host", host(), "why", status.Convert(err).Message())
		g.m.StreamsEnded.WithLabelValues(metrics.EndedRevoked).Inc()
		return err
	}
	return nil
}

// watchedStream times Send, counts what is owed an answer, and judges what
// Recv decoded.
type watchedStream struct {
	grpc.ServerStream
	g         *guard
	slot      *slot
	ctx       context.Context // the stream's, carrying the end channel (ended)
	sendStart atomic.Int64    // unix nanos of the Send in progress; 0: none
}

func (w *watchedStream) Context() context.Context { return w.ctx }

func (w *watchedStream) SendMsg(m any) error {
	w.sendStart.Store(time.Now().UnixNano())
	err := w.ServerStream.SendMsg(m)
	w.sendStart.Store(0)
	if err == nil {
		w.slot.inFlight.Add(-1)
		w.slot.touch(w.g.now())
	}
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

// RecvMsg counts each envelope as owed an answer and binds a stream
// without identity to the host its first events claim (admission.go): until
// it is bound, envelopes are decoded here, not in a preparation slot
// (Server.ticket). An envelope that is no envelope (wireEnvelope.err) is the
// server's to refuse.
func (w *watchedStream) RecvMsg(m any) error {
	if err := w.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	w.slot.touch(w.g.now())
	w.slot.inFlight.Add(1) // every envelope gets one answer
	if env, ok := m.(*wireEnvelope); ok && w.slot.host == "" && w.g.streams.maxPerHost > 0 {
		env.decodeReceived()
		if evs := env.env.GetEvents(); env.err == nil && len(evs) > 0 {
			if err := w.g.streams.claim(w.slot, evs[0].GetHostId()); err != nil {
				w.g.log.Warn("stream refused", "peer", peerOf(w.Context(), w.g.p.TrustedProxies), "claimed_host", evs[0].GetHostId(), "err", status.Convert(err).Message())
				return err
			}
		}
	}
	return nil
}

// peerOf names the stream's client for logs: its address, or the one a
// trusted proxy forwarded, via the proxy's.
func peerOf(ctx context.Context, trusted []netip.Prefix) string {
	_, shown := clientAddr(ctx, trusted)
	return shown
}

// hostOf is the authenticated host of ctx, if any.
func hostOf(ctx context.Context) string {
	if id, _, ok := auth.FromContext(ctx); ok {
		return id.HostID
	}
	return ""
}

// What a rejected event may cost the rejected_events table: a rejected
// event is kept to be looked at, and a 4 MiB host_name says no more in
// full than in its first kilobytes.
const (
	maxRejectedEvent  = 4 << 10 // bytes of the event's JSON kept
	maxRejectedHostID = 256     // bytes of its host_id kept (a column key)
	maxRejectedReason = 1 << 10 // bytes of the reason kept
	minRejectedEvent  = 128     // bytes of the event's JSON kept past the host's budget
)

// bounded is s if it fits in max bytes, else its first bytes (cut at a
// character boundary) followed by its size and SHA-256: retries of the same
// event still collapse (the table's key hashes this text), and nothing
// bounds what an operator can learn of the original less than needed.
func bounded(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%s… [%d bytes, sha256 %x]", s[:cut], len(s), sum)
}

// keepRejected bounds what is kept of each rejected event, and holds each
// host to its budget of rejected bytes (RejectedBytesRate): past it, an
// event's reason, host and index are still kept (the ack names it too), and
// of its body only the first 128 bytes, its size and hash.
func (g *guard) keepRejected(rs []flowlog.Rejected, id *auth.Identity, peerAddr string) {
	for i := range rs {
		r := &rs[i]
		r.Event = bounded(r.Event, maxRejectedEvent)
		r.HostID = bounded(r.HostID, maxRejectedHostID)
		r.Reason = bounded(r.Reason, maxRejectedReason)
		if g.rejectBudget == nil {
			continue
		}
		c := cost{key: "host:" + r.HostID, who: r.HostID, n: limits{0, float64(len(r.Event))}}
		if id != nil {
			c.key, c.who = "host:"+id.HostID, id.HostID
		}
		if ok, _, _, logNow, denied := g.rejectBudget.allow([]cost{c}); !ok {
			r.Event = bounded(r.Event, minRejectedEvent) // still told apart from its neighbours by its hash
			if logNow {
				g.log.Warn("rejected events over the host's budget: keeping their reasons, 128 bytes of their bodies", "host", c.who, "peer", peerAddr,
					"rate_bytes", g.p.RejectedBytesRate, "burst_bytes", g.p.RejectedBytesBurst, "denied", denied)
			}
		}
	}
}
