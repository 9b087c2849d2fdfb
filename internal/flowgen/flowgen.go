// Package flowgen generates the reproducible synthetic flows the query
// measurements run on (the store's query-cost tests and `flowlog bench
// --queries`, BENCHMARKS.md "Query costs at 10M flows"): one generator, so
// both measure the same data set.
package flowgen

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/flowlog/flowlog"
)

// BatchRows is the size of the batches Load inserts.
const BatchRows = 100_000

// Span is how far before End the flows start.
const Span = 30 * 24 * time.Hour

// Gen generates flows with realistic cardinalities: 50 hosts in 3
// networks, 2,000 participants (50 nodes, 800 users, 600 external clients,
// 50 egress routes, 500 external addresses), peers Zipf-distributed, starts
// spread evenly over the 30 days before End; most flows last seconds, the
// ones started in the last 10 minutes are half still active, and 0.1%
// never end. The same N, End and Prefix give the same flows.
type Gen struct {
	N      int
	End    time.Time
	Prefix string // of every flow id

	rng   *rand.Rand
	zipf  *rand.Zipf
	perm  []int
	parts []flowlog.Participant
	seq   uint64
}

// New returns the generator of n flows ending at end.
func New(n int, end time.Time) *Gen {
	g := &Gen{N: n, End: end, rng: rand.New(rand.NewPCG(1, 2)), Prefix: "synth"}
	g.zipf = rand.NewZipf(g.rng, 1.1, 4, 1999)
	g.perm = g.rng.Perm(2000)
	for i := 0; i < 2000; i++ {
		var p flowlog.Participant
		switch {
		case i < 50:
			p = flowlog.Participant{Type: flowlog.ParticipantNode, ID: fmt.Sprintf("node-%02d", i), Name: fmt.Sprintf("host-%02d", i),
				IP: netip.AddrFrom4([4]byte{10, byte(i % 3), 0, byte(i + 1)})}
		case i < 850:
			p = flowlog.Participant{Type: flowlog.ParticipantUser, ID: fmt.Sprintf("user-%d", i-50), Name: fmt.Sprintf("user%d@example.com", i-50),
				IP: netip.AddrFrom4([4]byte{10, byte(i % 3), 8 + byte((i-50)/250), byte((i - 50) % 250)})}
		case i < 1450:
			p = flowlog.Participant{Type: flowlog.ParticipantExtClient, ID: fmt.Sprintf("ext-%d", i-850), Name: fmt.Sprintf("phone-%d", i-850)}
			var a [16]byte
			a[0], a[1] = 0xfd, 0x00
			binary.BigEndian.PutUint32(a[12:], uint32(i))
			p.IP = netip.AddrFrom16(a)
		case i < 1500:
			p = flowlog.Participant{Type: flowlog.ParticipantEgressRoute, ID: fmt.Sprintf("egress-%d", i-1450), Name: fmt.Sprintf("office-%d", i-1450),
				IP: netip.AddrFrom4([4]byte{192, 168, byte(i - 1450), 10})}
		default:
			p = flowlog.Participant{Type: flowlog.ParticipantExternal, IP: netip.AddrFrom4([4]byte{198, 51, byte(i / 256), byte(i)})}
		}
		g.parts = append(g.parts, p)
	}
	return g
}

var dports = []uint16{443, 443, 443, 443, 80, 22, 5432, 6443, 8080, 3000}

// Flow returns the events of the next flow, starting at start, and whether
// it ends (else only its START is stored).
func (g *Gen) Flow(start time.Time) (st, de flowlog.Event, ends bool) {
	r := g.rng
	g.seq++
	var id [16]byte
	binary.BigEndian.PutUint64(id[:8], splitmix(g.seq))
	binary.BigEndian.PutUint64(id[8:], splitmix(g.seq^0x5eed))
	h := r.IntN(50)
	peer := g.parts[g.perm[g.zipf.Uint64()]]
	if peer.Type == flowlog.ParticipantNode && peer.ID == g.parts[h].ID {
		peer = g.parts[50+r.IntN(800)]
	}
	st = flowlog.Event{
		Type: flowlog.EventStart, FlowID: g.Prefix + hex.EncodeToString(id[:]), HostID: fmt.Sprintf("host-%02d", h), HostName: g.parts[h].Name,
		NetworkID: fmt.Sprint("net", h%3), Protocol: 6, SrcPort: uint16(32768 + r.IntN(28000)), DstPort: dports[r.IntN(len(dports))],
		Direction: flowlog.DirEgress, Src: g.parts[h], Dst: peer, Start: start, Version: 1,
	}
	switch x := r.IntN(100); {
	case x < 25:
		st.Protocol, st.DstPort = 17, []uint16{53, 51820, 123}[r.IntN(3)]
	case x < 30:
		st.Protocol, st.SrcPort, st.DstPort, st.ICMPType = 1, 0, 0, 8
	}
	if r.IntN(100) < 40 {
		st.Direction, st.Src, st.Dst = flowlog.DirIngress, peer, g.parts[h]
	}
	de = st
	de.Type, de.Version = flowlog.EventDestroy, 2
	de.End = start.Add(time.Duration(r.ExpFloat64() * 30 * float64(time.Second)))
	de.BytesSent = uint64(r.ExpFloat64() * 20000)
	de.BytesRecv = uint64(r.ExpFloat64() * 50000)
	de.PacketsSent, de.PacketsRecv = de.BytesSent/800+1, de.BytesRecv/1000+1
	ends = r.IntN(1000) != 0 && (g.End.Sub(start) > 10*time.Minute || r.IntN(2) == 0)
	return st, de, ends
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// BatchAt is one batch of START and DESTROY events of 1,000 flows starting
// just before at.
func (g *Gen) BatchAt(at time.Time) []flowlog.Event {
	var evs []flowlog.Event
	for i := 0; i < 1000; i++ {
		st, de, _ := g.Flow(at.Add(-time.Duration(i) * time.Second))
		evs = append(evs, st, de)
	}
	return evs
}

// Load inserts the N flows in time order with insert: batch k holds the
// STARTs of one stretch of flows and the DESTROYs of the previous stretch
// (so a flow's two rows are in different inserts), BatchRows rows a batch,
// by two inserters. It returns the number of rows.
func (g *Gen) Load(ctx context.Context, insert func(context.Context, *flowlog.Batch) error) (int, error) {
	first := g.End.Add(-Span)
	per := BatchRows / 2
	batches := make(chan []flowlog.Event, 2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := insert(ctx, &flowlog.Batch{Events: b}); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	rows := 0
	var pending []flowlog.Event
	step := float64(Span) / float64(g.N)
	for i := 0; i < g.N; i += per {
		b := pending
		pending = make([]flowlog.Event, 0, per)
		for j := i; j < i+per && j < g.N; j++ {
			start := first.Add(time.Duration(math.Floor(float64(j)*step + g.rng.Float64()*step)))
			st, de, ends := g.Flow(start.Truncate(time.Millisecond))
			b = append(b, st)
			if ends {
				pending = append(pending, de)
			}
		}
		rows += len(b)
		batches <- b
	}
	rows += len(pending)
	batches <- pending
	close(batches)
	wg.Wait()
	return rows, firstErr
}
