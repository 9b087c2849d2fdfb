package loadgen

import (
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/flowlog/flowlog/proto/flow"
)

// Generator makes the events of one synthetic agent. It is what Run sends,
// and can be used without gRPC to feed a store directly (to measure the
// store's own ceiling with the same rows). Not safe for concurrent use.
type Generator struct {
	epe       int
	active    uint64  // a new flow stays open when 32 random bits fall below this
	destroyed float64 // share of an envelope's slots that go to DESTROYs in steady state

	networkID, hostID, hostName string
	self4, self6                *flow.FlowParticipant // the host itself, by address family
	pool                        *pool
	r                           rng

	prefix   []byte // "<run token>-<agent>-": flow ids are prefix + counter
	slab     []byte // flow id bytes; see flowID
	spare    []flow.FlowEvent
	nextFlow int64
	seq      int64 // envelopes generated so far; an envelope's number
	open     ring  // flows that will get a DESTROY, oldest first

	// acked, when set (by Run), is the highest envelope number up to which
	// every envelope has been acked with success=true: a flow gets its
	// DESTROY only once its START is acked, so Expect stays exact even if
	// the run is cut short while a failed START envelope awaits its retry.
	// Standalone generators treat every earlier envelope as acked.
	acked *atomic.Int64
	last  delta // what the latest envelope adds to Expect
}

// delta is an envelope's contribution to Expect once acked.
type delta struct {
	starts, destroys     int
	bytesSent, bytesRecv uint64
}

// NewGenerator returns the generator of agent number agent (0-based): it
// reports as host agent % cfg.Hosts, and its flow ids are unique among
// agents of one Config. Zero fields of cfg take Run's defaults (resolve
// them once with WithDefaults so that generators share a NetworkID); it
// panics on a Config that WithDefaults rejects.
func NewGenerator(cfg Config, agent int) *Generator {
	c, err := cfg.WithDefaults()
	if err != nil {
		panic(err) // a programming error in the caller, as in slices.Grow
	}
	return newGenerator(c, agent, newPool(c.Participants, c.Seed), runToken())
}

// runToken separates flow ids of runs that reuse a NetworkID.
func runToken() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

func newGenerator(c Config, agent int, p *pool, token string) *Generator {
	host := agent % c.Hosts
	af := max(c.ActiveFraction, 0)
	a := 1 - af // share of flows that end
	g := &Generator{
		epe:       c.EventsPerEnvelope,
		active:    uint64(af * (1 << 32)),
		destroyed: a / (1 + a), // starts S, destroys D = S*a, D/(S+D) = a/(1+a)
		networkID: c.NetworkID,
		hostID:    hostUUID(c.Seed, host),
		hostName:  "bench-host-" + strconv.Itoa(host),
		pool:      p,
		r:         newRNG(uint64(c.Seed)*0x9e3779b97f4a7c15 ^ uint64(agent+1)),
	}
	g.self4 = &flow.FlowParticipant{Ip: meshIP(100, host, false), Type: flow.ParticipantType_PARTICIPANT_NODE, Id: g.hostID, Name: g.hostName}
	g.self6 = &flow.FlowParticipant{Ip: meshIP(100, host, true), Type: flow.ParticipantType_PARTICIPANT_NODE, Id: g.hostID, Name: g.hostName}
	g.prefix = append(append(append([]byte(token), '-'), strconv.Itoa(agent)...), '-')
	return g
}

// hostUUID is host's id, stable for a seed so repeated runs reuse hosts.
func hostUUID(seed int64, host int) string {
	r := newRNG(uint64(seed) ^ uint64(host)*0xbf58476d1ce4e5b9 ^ 0x4057)
	return uuidish(&r)
}

// Next appends one envelope's worth (EventsPerEnvelope) of events to dst
// and returns it. It overwrites the FlowEvents it finds in dst's spare
// capacity (dst[len(dst):cap(dst)]), so `buf = g.Next(buf[:0])` generates
// without allocating once buf is warm, and invalidates what buf held.
// Participants (Src, Dst) are shared between events: treat them as
// read-only.
func (g *Generator) Next(dst []*flow.FlowEvent) []*flow.FlowEvent {
	return g.next(dst, g.epe, time.Now().UnixMilli())
}

// next appends n events stamped around nowMS.
func (g *Generator) next(dst []*flow.FlowEvent, n int, nowMS int64) []*flow.FlowEvent {
	g.seq++
	limit := g.seq - 1
	if g.acked != nil {
		limit = g.acked.Load()
	}
	d := g.open.eligible(int(math.Ceil(float64(n)*g.destroyed)), limit)
	s := n - d
	g.last = delta{starts: s, destroys: d}
	dst = slices.Grow(dst, n)
	for i := range n {
		dst = dst[:len(dst)+1]
		e := dst[len(dst)-1]
		if e == nil {
			if len(g.spare) == 0 {
				g.spare = make([]flow.FlowEvent, n-i) // one allocation for the rest
			}
			e = &g.spare[0]
			g.spare = g.spare[1:]
			dst[len(dst)-1] = e
		}
		// Interleave DESTROYs among STARTs, as an agent's batch would.
		if d > 0 && (s == 0 || g.r.intn(d+s) < d) {
			g.destroy(e, nowMS)
			d--
		} else {
			g.start(e, nowMS)
			s--
		}
	}
	return dst
}

// Service ports, repeated by popularity.
var (
	tcpPorts = [...]uint16{443, 443, 443, 443, 80, 80, 22, 22, 5432, 3306, 6443, 8080, 9090, 3389, 445, 6379}
	udpPorts = [...]uint16{53, 53, 53, 53, 123, 51821, 5353, 1194, 161, 514, 443, 3478, 53, 53, 123, 500}
)

// Conntrack status bits (IPS_*): confirmed at START; seen-reply (and
// assured, for TCP) at DESTROY.
const (
	ipsSeenReply = 1 << 1
	ipsAssured   = 1 << 2
	ipsConfirmed = 1 << 3
)

// start fills e with a new flow's START and remembers the flow if it will end.
func (g *Generator) start(e *flow.FlowEvent, nowMS int64) {
	x, y := g.r.next(), g.r.next()
	// Bits of x: 0 direction, 1-7 protocol, 8-39 stays open?, 40-50 start lag.
	var f openFlow
	switch c := (x >> 1) & 127; {
	case c < 77: // 60%
		f.proto = 6
		f.dport = tcpPorts[y&15]
	case c < 122: // 35%
		f.proto = 17
		f.dport = udpPorts[y&15]
	default: // ICMP: no ports; mostly echo, some unreachable / time exceeded
		f.proto = 1
		switch t := (y >> 4) & 15; {
		case t < 12:
			f.icmpT = 8
		case t < 14:
			f.icmpT, f.icmpC = 3, 3
		default:
			f.icmpT = 11
		}
	}
	if f.proto != 1 {
		f.sport = uint16(32768 + (y>>16)%28232) // Linux ephemeral range
	}
	peer, v6 := g.pool.pick(g.r.next())
	self := g.self4
	if v6 {
		self = g.self6
	}
	f.dir = uint8(flow.Direction_DIR_EGRESS)
	f.src, f.dst = self, peer
	if x&1 == 1 {
		f.dir = uint8(flow.Direction_DIR_INGRESS)
		f.src, f.dst = peer, self
	}
	f.start = nowMS - int64((x>>40)&2047) // the entry was created a little before this report
	f.id = g.flowID()
	f.seq = g.seq
	g.event(e, flow.EventType_EVENT_START, &f)
	e.Status = ipsConfirmed
	e.Version = f.start // like netclient: the event's time in ms
	if (x>>8)&0xffffffff >= g.active {
		g.open.push(f)
	}
}

// destroy fills e with the DESTROY of the oldest open flow.
func (g *Generator) destroy(e *flow.FlowEvent, nowMS int64) {
	f := g.open.pop()
	x, y := g.r.next(), g.r.next()
	end := max(nowMS-int64(x&511), f.start)
	version := max(end, f.start+1) // START's version is f.start
	ps, pr := packets(x>>9), packets(y)
	var bs, br uint64
	status := uint32(ipsConfirmed | ipsSeenReply)
	switch f.proto {
	case 6:
		bs, br = ps*(52+(x>>32)%1400), pr*(52+(y>>32)%1400)
		status |= ipsAssured
	case 1:
		ps, pr = ps%8+1, pr%8+1
		if (y>>20)&7 == 0 { // unanswered ping
			pr = 0
		}
		bs, br = ps*84, pr*84
	default:
		if (y>>20)&7 == 0 { // nobody answered
			pr = 0
		}
		bs, br = ps*(28+(x>>32)%1200), pr*(28+(y>>32)%1200)
	}
	if pr == 0 {
		status &^= ipsSeenReply
	}
	g.last.bytesSent += bs
	g.last.bytesRecv += br
	g.event(e, flow.EventType_EVENT_DESTROY, &f)
	e.EndTsMs = end
	e.BytesSent, e.BytesRecv = bs, br
	e.PacketsSent, e.PacketsRecv = ps, pr
	e.Status = status
	e.Version = version
}

// event sets *e to an event of type t about f from this host, with only the
// fields START and DESTROY share (the flow's identity and start).
func (g *Generator) event(e *flow.FlowEvent, t flow.EventType, f *openFlow) {
	*e = flow.FlowEvent{
		Type:      t,
		FlowId:    f.id,
		HostId:    g.hostID,
		HostName:  g.hostName,
		NetworkId: g.networkID,
		Protocol:  uint32(f.proto),
		SrcPort:   uint32(f.sport),
		DstPort:   uint32(f.dport),
		IcmpType:  uint32(f.icmpT),
		IcmpCode:  uint32(f.icmpC),
		Direction: flow.Direction(f.dir),
		Src:       f.src,
		Dst:       f.dst,
		StartTsMs: f.start,
	}
}

// packets draws a flow's packet count: mostly short exchanges, some bulk.
func packets(x uint64) uint64 {
	switch c := x & 255; {
	case c < 180:
		return 1 + (x>>8)%20
	case c < 245:
		return 21 + (x>>8)%1000
	default:
		return 1021 + (x>>8)%200_000
	}
}

// flowID returns the next flow id. Ids are cut from a large byte slab that
// is only ever appended to (a fresh slab replaces a full one), so each id
// can alias its bytes as an immutable string: one allocation per ~2,000
// flows instead of one per flow. A slab lives while any of its ids does.
func (g *Generator) flowID() string {
	const slabSize = 64 << 10
	if cap(g.slab)-len(g.slab) < len(g.prefix)+20 {
		g.slab = make([]byte, 0, max(slabSize, 2*(len(g.prefix)+20)))
	}
	i := len(g.slab)
	g.slab = append(g.slab, g.prefix...)
	g.slab = strconv.AppendInt(g.slab, g.nextFlow, 10)
	g.nextFlow++
	id := g.slab[i:]
	return unsafe.String(&id[0], len(id))
}

// openFlow is what a DESTROY repeats from its START.
type openFlow struct {
	id         string
	src, dst   *flow.FlowParticipant
	seq, start int64 // envelope that carried the START; start_ts_ms (= START's version)
	sport      uint16
	dport      uint16
	proto      uint8
	icmpT      uint8
	icmpC      uint8
	dir        uint8
}

// ring is a FIFO of open flows; its size is a power of two.
type ring struct {
	buf     []openFlow
	head, n int
}

func (q *ring) push(f openFlow) {
	if q.n == len(q.buf) {
		nb := make([]openFlow, max(1024, 2*len(q.buf)))
		for i := range q.n {
			nb[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = f
	q.n++
}

func (q *ring) pop() openFlow {
	f := q.buf[q.head]
	q.buf[q.head] = openFlow{} // drop references to ids and participants
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	return f
}

// eligible counts, up to limit, the oldest open flows whose START went in
// an envelope numbered at most upTo.
func (q *ring) eligible(limit int, upTo int64) int {
	i := 0
	for i < limit && i < q.n && q.buf[(q.head+i)&(len(q.buf)-1)].seq <= upTo {
		i++
	}
	return i
}
