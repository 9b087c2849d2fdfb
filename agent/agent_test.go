package agent

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/agent/config"
	"github.com/flowlog/flowlog/agent/conntrack"
	"github.com/flowlog/flowlog/agent/enrich"
	"github.com/flowlog/flowlog/agent/export"
	"github.com/flowlog/flowlog/agent/spool"
	pb "github.com/flowlog/flowlog/proto/flow"
	"google.golang.org/protobuf/proto"
)

const benchConfig = `host: {id: host-1, name: web-1}
networks:
  - id: mesh1
    addresses: [10.10.0.1]
    cidrs: [10.10.0.0/16]
participants:
  - {match: 10.10.1.0/24, type: user, id: alice, name: alice}
  - {match: 10.10.2.0/24, type: extclient, id: phone, name: phone}
`

// synthetic returns n conntrack flows: a START and a DESTROY for n/2
// connections from the host to peers across the mesh.
func synthetic(n int) []conntrack.Flow {
	start := time.Now()
	out := make([]conntrack.Flow, 0, n)
	for i := 0; len(out) < n; i++ {
		f := conntrack.Flow{Kind: conntrack.New, ID: uint32(i), Proto: 6,
			Src: netip.MustParseAddr("10.10.0.1"), Dst: netip.AddrFrom4([4]byte{10, 10, byte(i >> 8 % 4), byte(i)}),
			SrcPort: uint16(30000 + i%30000), DstPort: 443, Start: start.Add(time.Duration(i))}
		out = append(out, f)
		f.Kind, f.End, f.OrigBytes, f.ReplyBytes, f.OrigPackets, f.ReplyPackets = conntrack.Destroy, f.Start.Add(time.Second), 1000, 5000, 10, 12
		out = append(out, f)
	}
	return out
}

func newPipeline(tb testing.TB) (*Pipeline, *spool.Spool) {
	cfg, err := config.Parse("bench.yaml", []byte(benchConfig))
	if err != nil {
		tb.Fatal(err)
	}
	sp, err := spool.Open(tb.TempDir(), spool.Options{MaxBytes: 1 << 30})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sp.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return NewPipeline(cfg, export.NewBatcher(sp, 500, log), nil), sp
}

// Every kept flow becomes one event in a spooled envelope, with versions
// strictly increasing in the order the flows were handled.
func TestPipelineSpoolsEveryEventInOrder(t *testing.T) {
	p, sp := newPipeline(t)
	flows := synthetic(1200)
	ch := make(chan conntrack.Flow, len(flows))
	for _, f := range flows {
		ch <- f
	}
	close(ch)
	if err := p.Run(context.Background(), ch, time.Hour); err != nil {
		t.Fatal(err)
	}
	var got int
	var last int64
	for sp.Stats().Entries > 0 {
		ent, err := sp.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var env pb.FlowEnvelope
		if err := proto.Unmarshal(ent.Data, &env); err != nil {
			t.Fatal(err)
		}
		for _, ev := range env.Events {
			if ev.Version <= last {
				t.Fatalf("version %d after %d", ev.Version, last)
			}
			last = ev.Version
			got++
		}
		sp.Ack(ent.Seq)
	}
	if got != len(flows) {
		t.Fatalf("%d events spooled, want %d", got, len(flows))
	}
}

// BenchmarkPipeline measures what one agent goroutine turns into spooled
// envelopes: enrichment, version, batching, protobuf encoding and the spool
// write (page cache, no fsync), from a synthetic conntrack source.
func BenchmarkPipeline(b *testing.B) {
	p, sp := newPipeline(b)
	flows := synthetic(100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := flows[i%len(flows)]
		if err := p.Handle(&f); err != nil {
			b.Fatal(err)
		}
		if i%50_000 == 49_999 { // keep the spool from filling: ack what was written
			b.StopTimer()
			st := sp.Stats()
			sp.Ack(st.NextSeq - 1)
			b.StartTimer()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// A core-share per 1,000 events/s: ns per event x 1,000 / 1e9 s.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)*1000/1e9*100, "%core/1k-events/s")
	b.ReportMetric(float64(rssKB()), "RSS-KB")
}

func rssKB() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// A DESTROY in an envelope the full spool dropped goes back to the source
// (Undelivered), to be closed again by its next resync; one that was
// spooled does not.
func TestDroppedDestroysGoBack(t *testing.T) {
	cfg, err := config.Parse("bench.yaml", []byte(benchConfig))
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), spool.Options{MaxBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	b := export.NewBatcher(sp, 3, slog.New(slog.DiscardHandler))
	p := NewPipeline(cfg, b, nil)
	var back []conntrack.Flow
	p.Undelivered = func(fs []conntrack.Flow) { back = append(back, fs...) }
	flows := synthetic(400)
	for i := range flows {
		if err := p.Handle(&flows[i]); err != nil {
			t.Fatal(err)
		}
	}
	p.flush()
	if b.Dropped.Load() == 0 {
		t.Fatal("the spool never filled up")
	}
	spooled := map[string]bool{}
	for sp.Stats().Entries > 0 {
		ent, err := sp.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var env pb.FlowEnvelope
		if err := proto.Unmarshal(ent.Data, &env); err != nil {
			t.Fatal(err)
		}
		for _, ev := range env.Events {
			if ev.Type == pb.EventType_EVENT_DESTROY {
				spooled[ev.FlowId] = true
			}
		}
		sp.Ack(ent.Seq)
	}
	returned := map[string]bool{}
	for _, f := range back {
		id := enrich.FlowID("host-1", f.ID, f.Start)
		if f.Kind != conntrack.Destroy || spooled[id] || returned[id] {
			t.Fatalf("handed back %+v: spooled %v, twice %v", f, spooled[id], returned[id])
		}
		returned[id] = true
	}
	if len(spooled)+len(returned) != len(flows)/2 {
		t.Fatalf("%d DESTROYs spooled + %d handed back, want %d", len(spooled), len(returned), len(flows)/2)
	}
	t.Logf("%d DESTROYs spooled, %d dropped and handed back", len(spooled), len(returned))
}
