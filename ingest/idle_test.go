package ingest_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// A fleet of agents holds its streams open between flushes: an idle stream
// must cost the collector little. Over one connection, each stream adds
// the client's own goroutine and at most two of the collector's (handler and
// receive pump): no per-stream watch goroutine or ticker, no ack sender
// while nothing is owed. And a stream that is answered and then idle gives
// its sender back.
func TestIdleStreamHoldsTwoGoroutines(t *testing.T) {
	c := start(t, ingest.Options{Protect: ingest.Protection{MaxStreamsPerHost: -1}}) // every stream claims host "h"
	cc := dialConn(t, c.addr)
	first := newStreamOn(t, cc) // the connection's own goroutines, both sides
	if r, err := first.exchange(&pb.FlowEnvelope{Events: events("idle", 3)}); err != nil || !r.GetSuccess() {
		t.Fatalf("first envelope: %v %v", r, err)
	}
	const n = 50
	settle := func(want int) int {
		var got int
		deadline := time.Now().Add(10 * time.Second)
		for {
			got = runtime.NumGoroutine()
			if got <= want || time.Now().After(deadline) {
				return got
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	before := runtime.NumGoroutine()
	streams := make([]*agentStream, n)
	for i := range streams {
		streams[i] = newStreamOn(t, cc)
		// One answered envelope each: the sender ran, and must be gone.
		if r, err := streams[i].exchange(&pb.FlowEnvelope{Events: events("idle", 1)}); err != nil || !r.GetSuccess() {
			t.Fatalf("stream %d: %v %v", i, r, err)
		}
	}
	const perStream = 1 + 2 // the client's, the collector's handler and pump
	if got := settle(before + n*perStream); got > before+n*perStream {
		t.Fatalf("%d idle streams added %d goroutines, %.1f per stream; want at most %d (client 1, collector 2)",
			n, got-before, float64(got-before)/n, perStream)
	}
}

// An agent between two flushes keeps its stream open for minutes: the
// goroutines that wait for its next envelope must not keep the stack that
// validating and storing the last one grew (a goroutine keeps its deepest
// stack; the GC halves it only while it uses under a quarter of it). A
// stream that sent an envelope holds about the stacks of one that never
// did (the handler and pump, 4 kB each), however deep the envelope's work
// went (here an enrichment 8 kB deep; the collector's runs 16 kB deep with
// its logging).
func TestIdleStreamAfterAnEnvelopeHoldsSmallStacks(t *testing.T) {
	enrich := func(*flowlog.Event) { deepStack(8) }
	c := start(t, ingest.Options{Enrich: enrich, Protect: ingest.Protection{MaxStreamsPerHost: -1, MaxStreamsPerAddress: -1}})
	cc := dialConn(t, c.addr)
	first := newStreamOn(t, cc)
	if r, err := first.exchange(&pb.FlowEnvelope{Events: events("warm", 3)}); err != nil || !r.GetSuccess() {
		t.Fatalf("first envelope: %v %v", r, err)
	}
	stacks := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.StackInuse
	}
	const n = 200
	perStream := func(send bool) uint64 {
		before, goroutines := stacks(), runtime.NumGoroutine()
		for i := range n {
			s := newStreamOn(t, cc)
			if !send {
				continue
			}
			if r, err := s.exchange(&pb.FlowEnvelope{Events: events(fmt.Sprintf("idle%d", i), 50)}); err != nil || !r.GetSuccess() {
				t.Fatalf("stream %d: %v %v", i, r, err)
			}
		}
		// Every stream open on both ends: the client's goroutine, the
		// collector's handler and pump.
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() < goroutines+3*n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return (stacks() - before) / n
	}
	unused, used := perStream(false), perStream(true)
	t.Logf("goroutine stacks per idle stream: %d bytes, %d after an envelope of 50 events", unused, used)
	if used > unused+4<<10 {
		t.Fatalf("a stream idle after one envelope holds %d bytes of goroutine stacks, one that sent nothing %d: the envelope's work left its stack behind", used, unused)
	}
}

// deepStack uses about n kB of stack.
//
//go:noinline
func deepStack(n int) byte {
	var b [1 << 10]byte
	b[n] = byte(n)
	if n == 0 {
		return b[0]
	}
	return deepStack(n-1) + b[n]
}

// An agent opens one stream per connection, so an HPACK table of its
// headers would be kept for the connection's life and never used again
// (~0.5 kB each side, 5 MB for 10,000 agents): the collector's first
// SETTINGS ask for none (SETTINGS_HEADER_TABLE_SIZE 0).
func TestCollectorAsksAgentsForNoHeaderTable(t *testing.T) {
	c := start(t, ingest.Options{})
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The client's preface and an empty SETTINGS frame.
	if _, err := conn.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	var head [9]byte // length (24 bits), type, flags, stream
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		t.Fatal(err)
	}
	if head[3] != 4 {
		t.Fatalf("the server's first frame is of type %d, not SETTINGS", head[3])
	}
	payload := make([]byte, int(head[0])<<16|int(head[1])<<8|int(head[2]))
	if _, err := io.ReadFull(conn, payload); err != nil {
		t.Fatal(err)
	}
	for s := payload; len(s) >= 6; s = s[6:] {
		if id, v := binary.BigEndian.Uint16(s), binary.BigEndian.Uint32(s[2:]); id == 1 { // HEADER_TABLE_SIZE
			if v != 0 {
				t.Fatalf("SETTINGS_HEADER_TABLE_SIZE is %d, want 0", v)
			}
			return
		}
	}
	t.Fatalf("the server's SETTINGS (% x) leave the header table at its default, 4096 bytes", payload)
}
