package ingest

// Stream admission: what one host or one address may hold of the
// collector's stream slots (SECURITY.md).
//
//   - Streams are counted per host (the authenticated identity's host_id, or,
//     without identity, the host_id the stream's first events claim) and per
//     client address (the peer's IP; behind a trusted proxy the address it
//     forwards, or none). At a cap, the stream of that host (address) that
//     has been idle longest, if it has been idle for supersedeIdle with
//     nothing unanswered, is ended to make room: stock agents leak a stream
//     per burst and never use it again. When all are busy the new stream is
//     refused with ResourceExhausted, naming the cap.
//   - A stream that received nothing for StreamIdleTimeout with nothing
//     unanswered is ended (Unavailable: reconnect when there is data).
//   - A stream whose identity was removed from, or changed in, the
//     identities file is ended within RevalidateEvery (Unauthenticated).

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/metrics"
)

// supersedeIdle is how long a stream must have been idle before a new
// stream of its host or address may take its place: a stream just opened
// has not had time to send its first envelope.
const supersedeIdle = time.Second

// slot is one admitted stream's place in the admission table.
type slot struct {
	addr string // client address counted against MaxStreamsPerAddress; "" exempt
	host string // "auth:<host_id>" or "claim:<host_id>"; "" until known

	last     atomic.Int64 // unix nanos of the last envelope received or answer sent
	inFlight atomic.Int64 // envelopes received and not yet answered
	end      chan error   // capacity 1: the collector ends the stream with this status

	idSet *auth.Set // identities the stream's identity was last checked against (the watcher's goroutine only)
}

func (s *slot) touch(now time.Time) { s.last.Store(now.UnixNano()) }

// stop ends the stream with err, unless a reason to end it is already
// pending (the watcher and admission may both judge it).
func (s *slot) stop(err error) {
	select {
	case s.end <- err:
	default:
	}
}

// idleFor is how long s has had nothing to do (0 while an envelope waits
// for its answer).
func (s *slot) idleFor(now time.Time) time.Duration {
	if s.inFlight.Load() > 0 {
		return 0
	}
	return now.Sub(time.Unix(0, s.last.Load()))
}

// admission is the table of admitted streams by host and by address.
type admission struct {
	maxPerHost, maxPerAddr int
	trusted                []netip.Prefix
	now                    func() time.Time
	m                      *metrics.Collector

	mu     sync.Mutex
	byHost map[string]map[*slot]struct{}
	byAddr map[string]map[*slot]struct{}
}

func newAdmission(p Protection, m *metrics.Collector, now func() time.Time) *admission {
	return &admission{maxPerHost: p.MaxStreamsPerHost, maxPerAddr: p.MaxStreamsPerAddress, trusted: p.TrustedProxies,
		now: now, m: m, byHost: map[string]map[*slot]struct{}{}, byAddr: map[string]map[*slot]struct{}{}}
}

// open admits a new stream: by its client address, and by its host if the
// stream is authenticated. The error is the stream's final status.
func (a *admission) open(ctx context.Context) (*slot, error) {
	s := &slot{end: make(chan error, 1)}
	s.touch(a.now())
	s.addr, _ = clientAddr(ctx, a.trusted)
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.addr != "" && a.maxPerAddr > 0 {
		if err := a.place(a.byAddr, s.addr, s, a.maxPerAddr, "address "+s.addr, "--max-streams-per-address", metrics.RefusedPerAddress); err != nil {
			return nil, err
		}
	}
	if id, _, ok := auth.FromContext(ctx); ok {
		if err := a.bindLocked(s, "auth:"+id.HostID, id.HostID); err != nil {
			a.removeLocked(s)
			return nil, err
		}
	}
	return s, nil
}

// claim binds an unauthenticated stream to the host its first events name:
// behind a proxy the address says nothing, the claimed host is all there is.
func (a *admission) claim(s *slot, hostID string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.host != "" {
		return nil
	}
	return a.bindLocked(s, "claim:"+hostID, hostID)
}

func (a *admission) bindLocked(s *slot, key, hostID string) error {
	if a.maxPerHost <= 0 {
		return nil
	}
	if err := a.place(a.byHost, key, s, a.maxPerHost, fmt.Sprintf("host %q", hostID), "--max-streams-per-host", metrics.RefusedPerHost); err != nil {
		return err
	}
	s.host = key
	return nil
}

// place puts s into m[key], ending the longest-idle stream there if key
// already holds limit streams; if none has been idle for supersedeIdle,
// s is refused.
func (a *admission) place(m map[string]map[*slot]struct{}, key string, s *slot, limit int, who, flag, refusal string) error {
	set := m[key]
	if set == nil {
		set = map[*slot]struct{}{}
		m[key] = set
	}
	if len(set) >= limit {
		now := a.now()
		var victim *slot
		var longest time.Duration
		for o := range set {
			if d := o.idleFor(now); d >= supersedeIdle && d > longest {
				victim, longest = o, d
			}
		}
		if victim == nil {
			a.m.StreamsRefused.WithLabelValues(refusal).Inc()
			return status.Errorf(codes.ResourceExhausted,
				"too many concurrent streams for %s: limit is %d (%s), all busy; reuse one stream per agent", who, limit, flag)
		}
		a.removeLocked(victim)
		victim.stop(status.Errorf(codes.ResourceExhausted,
			"stream superseded: %s opened a new stream while holding %d (%s); this one was idle for %s", who, limit, flag, longest.Round(time.Millisecond)))
		a.m.StreamsEnded.WithLabelValues(metrics.EndedSuperseded).Inc()
	}
	set[s] = struct{}{}
	return nil
}

// release removes s (it ended); safe after s was superseded.
func (a *admission) release(s *slot) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removeLocked(s)
}

func (a *admission) removeLocked(s *slot) {
	for _, e := range []struct {
		m   map[string]map[*slot]struct{}
		key string
	}{{a.byAddr, s.addr}, {a.byHost, s.host}} {
		if set := e.m[e.key]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(e.m, e.key)
			}
		}
	}
}

// clientAddr is the address of the agent behind ctx's stream, for the
// per-address cap (key: an IP, "" when exempt) and for logs (shown). A
// trusted proxy's own address says nothing about the agent: its
// X-Forwarded-For (the last entry, the one the proxy added) is used, and
// without one the stream is exempt from the per-address cap.
func clientAddr(ctx context.Context, trusted []netip.Prefix) (key, shown string) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "", ""
	}
	shown = p.Addr.String()
	key = shown
	if h, _, err := net.SplitHostPort(shown); err == nil {
		key = h
	}
	ip, err := netip.ParseAddr(key)
	if err != nil || !isTrusted(ip.Unmap(), trusted) {
		return key, shown
	}
	md, _ := metadata.FromIncomingContext(ctx)
	xff := md.Get("x-forwarded-for")
	if len(xff) == 0 {
		return "", shown + " (trusted proxy)"
	}
	hops := strings.Split(xff[len(xff)-1], ",")
	fwd := strings.TrimSpace(hops[len(hops)-1])
	if _, err := netip.ParseAddr(fwd); err != nil {
		return "", shown + " (trusted proxy)"
	}
	return fwd, fwd + " via " + shown
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// revoked says why the identity a stream was authenticated with no longer
// holds (nil: it does), checking again only when the identities changed.
func revoked(ctx context.Context, a *auth.Authenticator, s *slot) error {
	id, _, ok := auth.FromContext(ctx)
	if !ok || a == nil {
		return nil
	}
	cur := a.Identities()
	if cur == s.idSet {
		return nil
	}
	s.idSet = cur
	now, _, err := a.Authenticate(ctx)
	switch {
	case err != nil:
		return status.Errorf(codes.Unauthenticated, "identity revoked: %s; ending the stream", status.Convert(err).Message())
	case now == nil:
		return status.Errorf(codes.Unauthenticated, "identity revoked: %s is no longer in the identities file; ending the stream", id)
	case !now.Same(id):
		return status.Errorf(codes.Unauthenticated, "identity changed: %s now reads %s with networks %v; ending the stream, reconnect", id, now, now.Networks)
	}
	return nil
}
