package loadgen

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog/proto/flow"
)

// check compares Run's report with what the fake collector saw and acked.
func check(t *testing.T, rep Report, f *fakeCollector, networkID string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		t.Error("collector saw:", p)
	}
	if rep.EnvelopesSent != f.received || rep.EnvelopesAcked != f.acked || rep.EnvelopesFailed != f.failed {
		t.Errorf("envelopes sent/acked/failed %d/%d/%d, collector received/acked/failed %d/%d/%d",
			rep.EnvelopesSent, rep.EnvelopesAcked, rep.EnvelopesFailed, f.received, f.acked, f.failed)
	}
	if rep.EnvelopesSent != rep.EnvelopesAcked+rep.EnvelopesFailed {
		t.Errorf("%d envelopes sent, %d answered", rep.EnvelopesSent, rep.EnvelopesAcked+rep.EnvelopesFailed)
	}
	if rep.EventsAcked != f.receivedEvents-f.failedEvents || rep.EventsAcked != f.ackedEvents {
		t.Errorf("EventsAcked %d; collector received %d events, %d of them in failed envelopes", rep.EventsAcked, f.receivedEvents, f.failedEvents)
	}
	want := Expect{
		NetworkID: networkID,
		Flows:     int64(len(f.starts)),
		Finished:  int64(len(f.destroys)),
		BytesSent: f.bytesSent,
		BytesRecv: f.bytesRecv,
	}
	if rep.Expect != want {
		t.Errorf("Expect %+v, collector acked %+v", rep.Expect, want)
	}
	if len(f.networks) != 1 || !f.networks[networkID] {
		t.Errorf("networks %v, want only %q", f.networks, networkID)
	}
	if rep.RejectedErrors != 0 {
		t.Errorf("%d rejected errors", rep.RejectedErrors)
	}
	if rep.EventsAcked > 0 && (rep.EventsPerSec <= 0 || rep.LatencyP50 <= 0 || rep.LatencyP50 > rep.LatencyP99 || rep.LatencyP99 > rep.LatencyMax) {
		t.Errorf("rate %.0f/s, latency p50 %v p99 %v max %v", rep.EventsPerSec, rep.LatencyP50, rep.LatencyP99, rep.LatencyMax)
	}
	t.Logf("%d events acked in %v (%.0f/s), envelopes %d sent %d failed, p50 %v p99 %v; flows %d finished %d",
		rep.EventsAcked, rep.Elapsed.Round(time.Millisecond), rep.EventsPerSec, rep.EnvelopesSent, rep.EnvelopesFailed,
		rep.LatencyP50, rep.LatencyP99, rep.Expect.Flows, rep.Expect.Finished)
}

func TestRunDuration(t *testing.T) {
	f := newFake()
	cfg := Config{Addr: f.serve(t), Streams: 4, Hosts: 3, Duration: time.Second, EventsPerEnvelope: 200, Window: 3, Seed: 1}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Expect.NetworkID == "" || !strings.HasPrefix(rep.Expect.NetworkID, "bench-") {
		t.Errorf("default network id %q", rep.Expect.NetworkID)
	}
	check(t, rep, f, rep.Expect.NetworkID)
	if rep.EnvelopesAcked < 10 || rep.Elapsed < time.Second {
		t.Errorf("only %d envelopes in %v", rep.EnvelopesAcked, rep.Elapsed)
	}
	// A realistic mix: most flows end, some stay open; all protocols,
	// participant types and directions appear, with some IPv6.
	if rep.Expect.Finished >= rep.Expect.Flows || rep.Expect.Finished < rep.Expect.Flows/2 {
		t.Errorf("%d of %d flows finished", rep.Expect.Finished, rep.Expect.Flows)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range []uint32{1, 6, 17} {
		if f.protocols[p] == 0 {
			t.Errorf("no protocol %d in %v", p, f.protocols)
		}
	}
	if len(f.types) != 5 || len(f.dirs) != 2 || f.v6 == 0 {
		t.Errorf("participant types %v, directions %v, %d IPv6 sources", f.types, f.dirs, f.v6)
	}
}

func TestRunEventBudget(t *testing.T) {
	f := newFake()
	cfg := Config{Addr: f.serve(t), Streams: 3, Events: 12_345, EventsPerEnvelope: 100, NetworkID: "budget", Conns: 1}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, f, "budget")
	if rep.EventsAcked != 12_345 || rep.EnvelopesAcked != 124 {
		t.Errorf("%d events in %d envelopes, want 12345 in 124", rep.EventsAcked, rep.EnvelopesAcked)
	}
}

// A collector that answers success=false to every third envelope the first
// time: those envelopes come back and nothing is lost.
func TestRunRetriesFailedEnvelopes(t *testing.T) {
	f := newFake()
	f.failEvery = 3
	cfg := Config{Addr: f.serve(t), Streams: 4, Events: 40_000, EventsPerEnvelope: 250, Window: 4, NetworkID: "retry", ActiveFraction: 0.2}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, f, "retry")
	if rep.EnvelopesFailed == 0 || rep.EventsAcked != 40_000 {
		t.Errorf("%d failed envelopes, %d events acked", rep.EnvelopesFailed, rep.EventsAcked)
	}
}

func TestRunTimedWithRetries(t *testing.T) {
	f := newFake()
	f.failEvery = 3
	cfg := Config{Addr: f.serve(t), Streams: 5, Duration: 700 * time.Millisecond, EventsPerEnvelope: 50, Window: 8, NetworkID: "timed-retry"}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, f, "timed-retry")
}

func TestRunStreamErrorNamesStream(t *testing.T) {
	f := newFake()
	f.breakAfter = 3
	cfg := Config{Addr: f.serve(t), Streams: 3, Duration: 5 * time.Second, EventsPerEnvelope: 10, Window: 1}
	start := time.Now()
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "stream ") || !strings.Contains(err.Error(), "breaks the stream") {
		t.Fatalf("error %v, want one naming the stream and the collector's status", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v to fail", time.Since(start))
	}
}

func TestRunCancelled(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, Config{Addr: f.serve(t), Streams: 2, Duration: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("error %v, want the context's", err)
	}
	if rep.EnvelopesAcked == 0 {
		t.Error("nothing acked before the cancel")
	}
}

func TestRunNoCollector(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Run(ctx, Config{Addr: "127.0.0.1:1", Streams: 2, Duration: time.Second})
	if err == nil {
		t.Fatal("no error without a collector")
	}
}

// The standalone generator: every event valid, DESTROYs repeat their START
// in a later envelope with a higher version, about ActiveFraction stay open.
func TestGenerator(t *testing.T) {
	g := NewGenerator(Config{Streams: 10, EventsPerEnvelope: 300, NetworkID: "gen", ActiveFraction: 0.25}, 7)
	f := newFake()
	seen := map[string]int{} // flow id -> envelope of its START
	var buf []*flow.FlowEvent
	const envelopes = 200
	starts, destroys := 0, 0
	for i := range envelopes {
		buf = g.Next(buf[:0])
		if len(buf) != 300 {
			t.Fatalf("envelope of %d events", len(buf))
		}
		for _, ev := range buf {
			if ev.GetHostName() != "bench-host-7" {
				t.Fatalf("host %q", ev.GetHostName())
			}
			if ev.GetType() == flow.EventType_EVENT_START {
				seen[ev.GetFlowId()] = i
				starts++
			} else {
				if j, ok := seen[ev.GetFlowId()]; !ok || j >= i {
					t.Fatalf("DESTROY of %s in envelope %d, START in %d (%v)", ev.GetFlowId(), i, j, ok)
				}
				destroys++
			}
			f.account(proto.Clone(ev).(*flow.FlowEvent)) // buf is overwritten next round
			if err := validate(ev, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range f.problems {
		t.Error(p)
	}
	// 75% of flows end; the last envelopes' flows have not had their turn.
	if share := float64(destroys) / float64(starts); share < 0.7 || share > 0.76 {
		t.Errorf("%d DESTROYs for %d STARTs (%.2f), want about 0.75", destroys, starts, share)
	}
}

func TestGeneratorReusesEvents(t *testing.T) {
	g := NewGenerator(Config{EventsPerEnvelope: 500}, 0)
	buf := g.Next(nil)
	for range 10 {
		buf = g.Next(buf[:0])
	}
	allocs := testing.AllocsPerRun(100, func() { buf = g.Next(buf[:0]) })
	// Flow ids come from a 64 KiB slab (~2,500 ids); the open-flow ring
	// grows rarely. Well under one allocation per envelope.
	if allocs > 0.5 {
		t.Errorf("%.2f allocations per envelope of 500", allocs)
	}
}

func BenchmarkGenerator(b *testing.B) {
	g := NewGenerator(Config{EventsPerEnvelope: 500, Seed: 1}, 0)
	buf := g.Next(nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		buf = g.Next(buf[:0])
	}
	events := float64(b.N) * 500
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
}

// BenchmarkGeneratorMarshal adds the protobuf encoding grpc does in Send:
// the sender's real per-event cost.
func BenchmarkGeneratorMarshal(b *testing.B) {
	g := NewGenerator(Config{EventsPerEnvelope: 500, Seed: 1}, 0)
	env := &flow.FlowEnvelope{Events: g.Next(nil)}
	var out []byte
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		env.Events = g.Next(env.Events[:0])
		var err error
		out, err = proto.MarshalOptions{}.MarshalAppend(out[:0], env)
		if err != nil {
			b.Fatal(err)
		}
	}
	events := float64(b.N) * 500
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(len(out))/500, "bytes/event")
}

// BenchmarkRunLoopback is the whole client against a collector that acks
// at once without looking: the ceiling of loadgen itself over loopback
// gRPC on this machine (collector and generator share the CPUs).
func BenchmarkRunLoopback(b *testing.B) {
	addr := (&nullCollector{}).serve(b)
	var total Report
	for b.Loop() {
		rep, err := Run(context.Background(), Config{Addr: addr, Streams: 100, Events: 300_000, NetworkID: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		total.EventsAcked += rep.EventsAcked
		total.Elapsed += rep.Elapsed
	}
	b.ReportMetric(float64(total.EventsAcked)/total.Elapsed.Seconds(), "events/s")
}

func TestWithDefaultsIsStable(t *testing.T) {
	for _, c := range []Config{{}, {ActiveFraction: -1, Events: 10}, {Streams: 3, Conns: 9, Hosts: 2}} {
		once, err := c.WithDefaults()
		if err != nil {
			t.Fatal(err)
		}
		twice, err := once.WithDefaults()
		if err != nil || twice != once {
			t.Errorf("%+v resolves to %+v, then to %+v (%v)", c, once, twice, err)
		}
	}
	if _, err := (Config{ActiveFraction: 1.5}).WithDefaults(); err == nil {
		t.Error("ActiveFraction 1.5 accepted")
	}
}

// ActiveFraction < 0 means every flow ends (after the run's tail).
func TestGeneratorNoActiveFlows(t *testing.T) {
	g := NewGenerator(Config{EventsPerEnvelope: 100, ActiveFraction: -1}, 0)
	var buf []*flow.FlowEvent
	starts, destroys := 0, 0
	for range 100 {
		buf = g.Next(buf[:0])
		for _, ev := range buf {
			if ev.GetType() == flow.EventType_EVENT_START {
				starts++
			} else {
				destroys++
			}
		}
	}
	if starts-destroys > 100 {
		t.Errorf("%d STARTs, %d DESTROYs", starts, destroys)
	}
}
