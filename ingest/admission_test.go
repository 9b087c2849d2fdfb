package ingest_test

// Stream admission over real gRPC (admission.go): what one host or one
// address may hold of the stream slots.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
	"github.com/flowlog/flowlog/store"
)

// dialFrom connects from a given loopback address (several agents behind
// one address, or agents on different ones).
func dialFrom(t *testing.T, addr, ip string) *grpc.ClientConn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// One (unauthenticated) host leaking streams, as the stock exporter does
// under bursts, holds at most its cap: another host still gets a stream
// although the leaks would have used up --max-streams. A new stream of the
// leaking host takes the place of its longest-idle one.
func TestLeakedStreamsOfOneHostDoNotLockOutOthers(t *testing.T) {
	clock := newFakeClock()
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond, MaxStreams: 4, Clock: clock.now,
		Protect: ingest.Protection{MaxStreamsPerHost: 2}})
	cc := dialConn(t, c.addr)
	var leaked []*agentStream
	for i := range 4 {
		s := newStreamOn(t, cc)
		r, err := s.exchange(&pb.FlowEnvelope{Events: hostEvents(fmt.Sprintf("leak-%d", i), "leaky", "n", 1)})
		switch {
		case i < 2:
			wantOK(t, fmt.Sprintf("leaky stream %d", i), r, err)
			leaked = append(leaked, s)
		default: // both others just used: refused, naming the cap
			wantCode(t, fmt.Sprintf("leaky stream %d", i), err, codes.ResourceExhausted, `too many concurrent streams for host "leaky": limit is 2 (--max-streams-per-host), all busy`)
		}
		clock.add(100 * time.Millisecond) // the first is idle longest
	}
	r, err := newStreamOn(t, cc).exchange(&pb.FlowEnvelope{Events: hostEvents("calm", "calm", "n", 1)})
	wantOK(t, "another host while leaky holds its cap", r, err)

	// Once its streams have idled, a new one of the leaky host supersedes
	// the longest-idle (the first).
	clock.add(2 * time.Second)
	r, err = newStreamOn(t, cc).exchange(&pb.FlowEnvelope{Events: hostEvents("leak-new", "leaky", "n", 1)})
	wantOK(t, "leaky stream after its others idled", r, err)
	_, err = leaked[0].s.Recv()
	wantCode(t, "the superseded stream", err, codes.ResourceExhausted, `stream superseded: host "leaky" opened a new stream while holding 2`)
	r, err = leaked[1].exchange(&pb.FlowEnvelope{Events: hostEvents("leak-1b", "leaky", "n", 1)})
	wantOK(t, "the other leaky stream lives on", r, err)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A stream that sends nothing is ended after the idle timeout; one that
// keeps sending is not, however long it lives.
func TestIdleStreamsAreReaped(t *testing.T) {
	const idle = 300 * time.Millisecond
	c := start(t, ingest.Options{FlushInterval: 5 * time.Millisecond, Protect: ingest.Protection{StreamIdleTimeout: idle}})
	cc := dialConn(t, c.addr)
	quiet, busy := newStreamOn(t, cc), newStreamOn(t, cc)
	r, err := quiet.exchange(&pb.FlowEnvelope{Events: events("quiet", 1)})
	wantOK(t, "quiet stream's envelope", r, err)
	began := time.Now()
	ended := make(chan error, 1)
	go func() { _, err := quiet.s.Recv(); ended <- err }()
	var reaped error
	for i := 0; reaped == nil || time.Since(began) < 3*idle; i++ {
		select {
		case reaped = <-ended:
			wantCode(t, "the idle stream", reaped, codes.Unavailable, "idle stream: no envelope for 300ms")
			if d := time.Since(began); d < idle {
				t.Fatalf("ended after %v, before the idle timeout", d)
			}
		default:
			if time.Since(began) > 30*time.Second {
				t.Fatal("the quiet stream is still open 30s later")
			}
		}
		r, err := busy.exchange(&pb.FlowEnvelope{Events: events(fmt.Sprintf("busy-%d", i), 1)})
		wantOK(t, "busy stream, outliving several idle timeouts", r, err)
	}
}

// Many agents behind one address (a proxy, a NAT): the rate limit of an
// unauthenticated agent is that of the host its events claim, so one host
// flooding does not throttle the others.
func TestRateLimitByClaimedHostBehindOneAddress(t *testing.T) {
	clock := newFakeClock()
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond, MaxEventsPerEnv: 150, Clock: clock.now,
		Protect: ingest.Protection{Rate: 100, Burst: 200}})
	cc := dialFrom(t, c.addr, "127.0.0.1")
	a, b := newStreamOn(t, cc), newStreamOn(t, cc)
	r, err := a.exchange(&pb.FlowEnvelope{Events: hostEvents("a-1", "a", "n", 150)})
	wantOK(t, "host a, first envelope (within the burst)", r, err)
	r, err = a.exchange(&pb.FlowEnvelope{Events: hostEvents("a-2", "a", "n", 150)})
	want := `rate limit: host "a" (unauthenticated, as its events claim) exceeds 100 events/s, retry later`
	if err != nil || r.Success || r.Error != want {
		t.Fatalf("host a, second envelope: got %+v %v, want success=false %q", r, err, want)
	}
	for i := range 3 { // the same address, other hosts: their own buckets
		host := fmt.Sprintf("b%d", i)
		r, err = b.exchange(&pb.FlowEnvelope{Events: hostEvents(host, host, "n", 150)})
		wantOK(t, "host "+host+" behind the same address while a is limited", r, err)
	}
	// Empty envelopes (keepalives of some agents) cost nothing.
	if r, err := a.exchange(&pb.FlowEnvelope{}); err != nil || !r.Success {
		t.Fatalf("empty envelope while limited: %+v %v", r, err)
	}
	// Host a from another address shares a's bucket: the host is the key.
	r, err = newStreamOn(t, dialFrom(t, c.addr, "127.0.0.2")).exchange(&pb.FlowEnvelope{Events: hostEvents("a-3", "a", "n", 150)})
	if err != nil || r.Success || r.Error != want {
		t.Fatalf("host a from another address: got %+v %v, want %q", r, err, want)
	}
	// The refused envelope, resent once the bucket refilled, lands once.
	clock.add(1500 * time.Millisecond)
	r, err = a.exchange(&pb.FlowEnvelope{Events: hostEvents("a-2", "a", "n", 150)})
	wantOK(t, "host a once its bucket refilled", r, err)
	if n := count(t, c.st); n != 5*150 {
		t.Fatalf("want %d flows stored, got %d", 5*150, n)
	}
}

// Streams per client address are capped; behind a trusted proxy the
// address is the one the proxy forwards, and without one the proxy's own
// address is not capped (every agent has it).
func TestStreamsPerAddress(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond, Clock: newFakeClock().now, // nothing idles
		Protect: ingest.Protection{MaxStreamsPerAddress: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}}})
	open := func(cc *grpc.ClientConn, host string, md ...string) error {
		s := newStreamOn(t, cc)
		if len(md) > 0 {
			ctx := metadata.AppendToOutgoingContext(context.Background(), md...)
			ctx, cancel := context.WithCancel(ctx)
			t.Cleanup(cancel)
			var err error
			if s.s, err = pb.NewFlowServiceClient(cc).StreamFlows(ctx); err != nil {
				return err
			}
		}
		r, err := s.exchange(&pb.FlowEnvelope{Events: hostEvents(host, host, "n", 1)})
		if err == nil && !r.Success {
			err = fmt.Errorf("success=false: %s", r.Error)
		}
		return err
	}
	direct := dialFrom(t, c.addr, "127.0.0.2")
	for i := range 2 {
		if err := open(direct, fmt.Sprintf("d%d", i)); err != nil {
			t.Fatalf("stream %d from 127.0.0.2: %v", i, err)
		}
	}
	wantCode(t, "third stream from 127.0.0.2", open(direct, "d2"), codes.ResourceExhausted,
		"too many concurrent streams for address 127.0.0.2: limit is 2 (--max-streams-per-address)")
	if err := open(dialFrom(t, c.addr, "127.0.0.1"), "other"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	proxy := dialFrom(t, c.addr, "127.0.0.3")
	for i := range 4 {
		if err := open(proxy, fmt.Sprintf("p%d", i)); err != nil {
			t.Fatalf("stream %d through the trusted proxy without X-Forwarded-For: %v", i, err)
		}
	}
	for i := range 2 {
		if err := open(proxy, fmt.Sprintf("x%d", i), "x-forwarded-for", "203.0.113.9"); err != nil {
			t.Fatalf("stream %d forwarded for 203.0.113.9: %v", i, err)
		}
	}
	wantCode(t, "third stream forwarded for 203.0.113.9", open(proxy, "x2", "x-forwarded-for", "203.0.113.9"),
		codes.ResourceExhausted, "for address 203.0.113.9: limit is 2")
	// An untrusted peer cannot pick its address with the header.
	wantCode(t, "third stream from 127.0.0.2 claiming another address", open(direct, "d3", "x-forwarded-for", "198.51.100.1"),
		codes.ResourceExhausted, "for address 127.0.0.2")
}

// Headers are bounded: grpc keeps a stream's metadata for its whole life,
// so 150 streams with 15 MiB of headers each held gigabytes.
func TestStreamHeadersAreBounded(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond})
	cc := dialConn(t, c.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := metadata.AppendToOutgoingContext(ctx, "x-padding", strings.Repeat("p", 1<<20))
	s, err := pb.NewFlowServiceClient(cc).StreamFlows(big)
	if err == nil {
		if err = s.Send(&pb.FlowEnvelope{Events: events("big", 1)}); err == nil || err == io.EOF {
			_, err = s.Recv()
		}
	}
	if err == nil || status.Code(err) == codes.OK {
		t.Fatal("a stream with 1 MiB of headers was served")
	}
	t.Logf("1 MiB of headers: %v", err)
	r, err := newStreamOn(t, cc).exchange(&pb.FlowEnvelope{Events: events("small", 1)})
	wantOK(t, "ordinary headers on the same connection", r, err)
	if n := count(t, c.st); n != 1 {
		t.Fatalf("stored %d flows, want only the ordinary stream's 1", n)
	}
}

// Removing (or narrowing) an identity ends its open streams within
// seconds, not only its next ones.
func TestRevokedIdentityEndsOpenStreams(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: h1, token_sha256: %s}\n  - {host_id: h2, token_sha256: %s}\n",
		auth.HashToken("t1"), auth.HashToken("t2")))
	c, a := startAuth(t, p, false, false)
	s1, s2 := newStreamOn(t, conn(t, p, c.addr, nil, "t1")), newStreamOn(t, conn(t, p, c.addr, nil, "t2"))
	r, err := s1.exchange(&pb.FlowEnvelope{Events: hostEvents("h1-a", "h1", "n", 1)})
	wantOK(t, "h1 before the edit", r, err)
	r, err = s2.exchange(&pb.FlowEnvelope{Events: hostEvents("h2-a", "h2", "n", 1)})
	wantOK(t, "h2 before the edit", r, err)

	set, err := auth.Parse("edited", []byte(fmt.Sprintf("identities:\n  - {host_id: h2, token_sha256: %s}\n", auth.HashToken("t2"))))
	if err != nil {
		t.Fatal(err)
	}
	a.SetIdentities(set)
	ended := make(chan error, 1)
	go func() { _, err := s1.s.Recv(); ended <- err }()
	select {
	case err := <-ended:
		wantCode(t, "h1's open stream after its removal", err, codes.Unauthenticated, "identity revoked: unknown bearer token")
	case <-time.After(30 * time.Second):
		t.Fatal("h1's open stream still open 30s after its identity was removed")
	}
	r, err = s2.exchange(&pb.FlowEnvelope{Events: hostEvents("h2-b", "h2", "n", 1)})
	wantOK(t, "h2, unchanged by the edit, keeps its stream", r, err)
	if n := count(t, c.st); n != 3 {
		t.Fatalf("stored %d flows, want 3", n)
	}
}

// Behind a proxy that speaks the PROXY protocol (v1 or v2), the agent's
// address is the one the header carries: streams are capped by it and
// logged with it; the proxy's own health checks (LOCAL) keep its address.
func TestProxyProtocolGivesTheAgentsAddress(t *testing.T) {
	testutil.NeedEngine(t)
	st, err := store.OpenEngine(context.Background(), engine, store.Options{Database: t.Name(), Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	srv := ingest.New(st, ingest.Options{FlushInterval: 10 * time.Millisecond, Clock: newFakeClock().now,
		Protect: ingest.Protection{MaxStreamsPerAddress: 1}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g := srv.GRPCServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ingest.ProxyListener(ln, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx, g)
	})
	v2 := func(ip [4]byte) []byte {
		h := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0, 12)
		h = append(h, ip[:]...)
		h = append(h, 127, 0, 0, 1, 0x30, 0x39, 0x01, 0xbb)
		return h
	}
	through := func(header []byte) *grpc.ClientConn {
		cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
				if err == nil {
					_, err = c.Write(header)
				}
				return c, err
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	exchange := func(cc *grpc.ClientConn, host string) error {
		r, err := newStreamOn(t, cc).exchange(&pb.FlowEnvelope{Events: hostEvents(host, host, "n", 1)})
		if err == nil && !r.Success {
			err = fmt.Errorf("success=false: %s", r.Error)
		}
		return err
	}
	a := through([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"))
	if err := exchange(a, "a1"); err != nil {
		t.Fatalf("first stream of 203.0.113.7 (v1): %v", err)
	}
	wantCode(t, "second stream of 203.0.113.7 (v2)", exchange(through(v2([4]byte{203, 0, 113, 7})), "a2"),
		codes.ResourceExhausted, "for address 203.0.113.7: limit is 1")
	if err := exchange(through(v2([4]byte{198, 51, 100, 9})), "b"); err != nil {
		t.Fatalf("another agent behind the same proxy: %v", err)
	}
	if err := exchange(through([]byte("PROXY UNKNOWN\r\n")), "proxy"); err != nil {
		t.Fatalf("the proxy's own connection: %v", err)
	}
	wantCode(t, "a trusted peer without a header", exchange(through(nil), "c"), codes.Unavailable, "")
}
