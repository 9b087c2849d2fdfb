package enrich

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/agent/config"
	pb "github.com/flowlog/flowlog/proto/flow"
)

var a = netip.MustParseAddr

// Participants are listed with less specific entries both before and after
// more specific ones: the file order must not matter.
const testConfig = `
host:
  id: h1
  name: web-1
networks:
  - id: mesh1
    addresses: [10.10.0.5, "fd00::5"]
    cidrs: [10.10.0.0/16, "fd00::/64"]
  - id: mesh2
    addresses: [10.20.0.5]
    cidrs: [10.20.0.0/16, 10.10.200.0/24]   # 10.10.200.0/24 is more specific than mesh1's /16
participants:
  - {match: 10.10.8.7, type: user, id: bob, name: bob@example.com}
  - {match: 10.10.0.0/17, type: extclient, id: pool, name: client pool}
  - {match: 10.10.8.0/24, type: user, id: alice, name: alice@example.com}
  - {match: 10.10.0.7, type: node, id: n-7, name: db-1}
  - {match: 192.168.1.0/24, type: egress_route, id: office, name: office LAN}
  - {match: "fd00::7", type: node, id: n-7, name: db-1}
  - {match: "fd00::/64", type: extclient, id: v6pool}
  - {match: "fd00::7:0/112", type: user, id: v6users}
  - {match: 10.20.0.5, type: node, id: gw, name: gateway}   # overrides the host default for this address
`

func parse(t testing.TB, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTable(t testing.TB) *Table { return New(parse(t, testConfig)) }

var (
	t0 = time.Date(2026, 3, 4, 5, 6, 7, 890_123_456, time.UTC)
	t1 = t0.Add(2500 * time.Millisecond)
)

func p(ip string, typ pb.ParticipantType, id, name string) *pb.FlowParticipant {
	return &pb.FlowParticipant{Ip: ip, Type: typ, Id: id, Name: name}
}

const (
	node   = pb.ParticipantType_PARTICIPANT_NODE
	user   = pb.ParticipantType_PARTICIPANT_USER
	extc   = pb.ParticipantType_PARTICIPANT_EXTCLIENT
	egr    = pb.ParticipantType_PARTICIPANT_EGRESS_ROUTE
	ext    = pb.ParticipantType_PARTICIPANT_EXTERNAL
	egress = pb.Direction_DIR_EGRESS
	ingr   = pb.Direction_DIR_INGRESS
)

func TestLookupLongestPrefix(t *testing.T) {
	// Same entries in reverse order: same answers.
	c := parse(t, testConfig)
	rev := *c
	rev.Participants = nil
	for i := len(c.Participants) - 1; i >= 0; i-- {
		rev.Participants = append(rev.Participants, c.Participants[i])
	}
	for _, tb := range []*Table{New(c), New(&rev)} {
		for _, tc := range []struct {
			ip   string
			want flowlog.Participant
		}{
			{"10.10.8.7", flowlog.Participant{Type: flowlog.ParticipantUser, ID: "bob", Name: "bob@example.com"}},        // /32 beats /24 and /17
			{"10.10.8.8", flowlog.Participant{Type: flowlog.ParticipantUser, ID: "alice", Name: "alice@example.com"}},    // /24 beats /17
			{"10.10.9.1", flowlog.Participant{Type: flowlog.ParticipantExtClient, ID: "pool", Name: "client pool"}},      // /17
			{"10.10.0.7", flowlog.Participant{Type: flowlog.ParticipantNode, ID: "n-7", Name: "db-1"}},                   // /32 in /17
			{"10.10.0.5", flowlog.Participant{Type: flowlog.ParticipantNode, ID: "h1", Name: "web-1"}},                   // host address in /17
			{"10.20.0.5", flowlog.Participant{Type: flowlog.ParticipantNode, ID: "gw", Name: "gateway"}},                 // host address, overridden
			{"10.10.200.1", flowlog.Participant{Type: flowlog.ParticipantExternal}},                                      // in mesh, named by nobody
			{"8.8.8.8", flowlog.Participant{Type: flowlog.ParticipantExternal}},                                          // outside
			{"::ffff:10.10.8.7", flowlog.Participant{Type: flowlog.ParticipantUser, ID: "bob", Name: "bob@example.com"}}, // 4in6 is the IPv4 address
			{"fd00::7", flowlog.Participant{Type: flowlog.ParticipantNode, ID: "n-7", Name: "db-1"}},                     // /128 beats /112 and /64
			{"fd00::7:1", flowlog.Participant{Type: flowlog.ParticipantUser, ID: "v6users"}},                             // /112 beats /64
			{"fd00::99", flowlog.Participant{Type: flowlog.ParticipantExtClient, ID: "v6pool"}},                          // /64
			{"fd00::5", flowlog.Participant{Type: flowlog.ParticipantNode, ID: "h1", Name: "web-1"}},                     // host v6
			{"2001:db8::1", flowlog.Participant{Type: flowlog.ParticipantExternal}},                                      // outside
		} {
			got := tb.Lookup(a(tc.ip))
			tc.want.IP = a(tc.ip).Unmap()
			if got != tc.want {
				t.Errorf("Lookup(%s) = %+v, want %+v", tc.ip, got, tc.want)
			}
		}
	}
}

func TestNetwork(t *testing.T) {
	tb := newTable(t)
	for _, tc := range []struct {
		ip, id   string
		self, ok bool
	}{
		{"10.10.0.5", "mesh1", true, true},
		{"10.10.0.9", "mesh1", false, true},
		{"10.10.200.9", "mesh2", false, true}, // more specific network wins
		{"10.20.0.5", "mesh2", true, true},
		{"fd00::5", "mesh1", true, true},
		{"fd00::1", "mesh1", false, true},
		{"10.30.0.1", "", false, false},
	} {
		id, self, ok := tb.Network(a(tc.ip))
		if id != tc.id || self != tc.self || ok != tc.ok {
			t.Errorf("Network(%s) = %q %v %v, want %q %v %v", tc.ip, id, self, ok, tc.id, tc.self, tc.ok)
		}
	}
}

// dirty returns an event with every field set, as a reused slot would be.
func dirty() *pb.FlowEvent {
	return &pb.FlowEvent{
		Type: pb.EventType_EVENT_DESTROY, FlowId: "old", HostId: "old", HostName: "old", NetworkId: "old",
		Protocol: 99, SrcPort: 9, DstPort: 9, IcmpType: 9, IcmpCode: 9, Direction: ingr,
		Src: p("1.1.1.1", user, "old", "old"), Dst: p("1.1.1.2", user, "old", "old"),
		StartTsMs: 9, EndTsMs: 9, BytesSent: 9, BytesRecv: 9, PacketsSent: 9, PacketsRecv: 9, Status: 9, Version: 9,
	}
}

func tcp(destroy bool, src string, sport uint16, dst string, dport uint16) Flow {
	f := Flow{Destroy: destroy, ID: 4242, Proto: 6, Src: a(src), Dst: a(dst), SrcPort: sport, DstPort: dport,
		Start: t0, OrigBytes: 1000, OrigPackets: 10, ReplyBytes: 50000, ReplyPackets: 40, Status: 0x18e}
	if destroy {
		f.End = t1
	}
	return f
}

// ev is the expected event for a flow built by tcp (id 4242, t0..t1).
func ev(destroy bool, netID string, dir pb.Direction, sport, dport uint32, src, dst *pb.FlowParticipant) *pb.FlowEvent {
	e := &pb.FlowEvent{
		Type: pb.EventType_EVENT_START, FlowId: FlowID("h1", 4242, t0), HostId: "h1", HostName: "web-1", NetworkId: netID,
		Protocol: 6, SrcPort: sport, DstPort: dport, Direction: dir, Src: src, Dst: dst,
		StartTsMs: t0.UnixMilli(), Status: 0x18e, Version: 77,
	}
	if destroy {
		e.Type = pb.EventType_EVENT_DESTROY
		e.EndTsMs = t1.UnixMilli()
	}
	// A START carries the counters so far (an active-timeout update).
	if dir == egress {
		e.BytesSent, e.BytesRecv, e.PacketsSent, e.PacketsRecv = 1000, 50000, 10, 40
	} else {
		e.BytesSent, e.BytesRecv, e.PacketsSent, e.PacketsRecv = 50000, 1000, 40, 10
	}
	return e
}

func TestEvent(t *testing.T) {
	tb := newTable(t)
	hostV4 := p("10.10.0.5", node, "h1", "web-1")
	db := p("10.10.0.7", node, "n-7", "db-1")

	icmp := Flow{Proto: 1, ID: 4242, Src: a("10.10.0.5"), Dst: a("10.10.0.7"), SrcPort: 777, DstPort: 888,
		ICMPType: 8, ICMPCode: 0, Start: t0, Status: 0x18e, OrigBytes: 1000, OrigPackets: 10, ReplyBytes: 50000, ReplyPackets: 40}
	icmpWant := ev(false, "mesh1", egress, 0, 0, hostV4, db)
	icmpWant.Protocol, icmpWant.IcmpType = 1, 8

	icmp6 := Flow{Proto: 58, ID: 4242, Src: a("fd00::99"), Dst: a("fd00::5"), ICMPType: 128, ICMPCode: 3, Start: t0, Status: 0x18e,
		Destroy: true, End: t1, OrigBytes: 1000, OrigPackets: 10, ReplyBytes: 50000, ReplyPackets: 40}
	icmp6Want := ev(true, "mesh1", ingr, 0, 0, p("fd00::99", extc, "v6pool", ""), p("fd00::5", node, "h1", "web-1"))
	icmp6Want.Protocol, icmp6Want.IcmpType, icmp6Want.IcmpCode = 58, 128, 3

	for _, tc := range []struct {
		name string
		f    Flow
		want *pb.FlowEvent
	}{
		{"egress start: host initiates to a peer",
			tcp(false, "10.10.0.5", 40000, "10.10.0.7", 5432),
			ev(false, "mesh1", egress, 40000, 5432, hostV4, db)},
		{"egress destroy: sent = orig",
			tcp(true, "10.10.0.5", 40000, "10.10.0.7", 5432),
			ev(true, "mesh1", egress, 40000, 5432, hostV4, db)},
		{"ingress destroy: a user connects to the host, sent = reply",
			tcp(true, "10.10.8.9", 50000, "10.10.0.5", 22),
			ev(true, "mesh1", ingr, 50000, 22, p("10.10.8.9", user, "alice", "alice@example.com"), hostV4)},
		{"ingress start",
			tcp(false, "10.10.8.9", 50000, "10.10.0.5", 22),
			ev(false, "mesh1", ingr, 50000, 22, p("10.10.8.9", user, "alice", "alice@example.com"), hostV4)},
		{"forwarded out of the mesh (egress gateway): egress, network of src",
			tcp(true, "10.10.8.7", 50000, "93.184.216.34", 443),
			ev(true, "mesh1", egress, 50000, 443, p("10.10.8.7", user, "bob", "bob@example.com"), p("93.184.216.34", ext, "", ""))},
		{"forwarded into the mesh: ingress, network of dst",
			tcp(true, "192.168.1.10", 50000, "10.10.0.7", 5432),
			ev(true, "mesh1", ingr, 50000, 5432, p("192.168.1.10", egr, "office", "office LAN"), db)},
		{"forwarded between networks: egress, network of dst",
			tcp(true, "10.10.8.7", 50000, "10.20.3.4", 80),
			ev(true, "mesh2", egress, 50000, 80, p("10.10.8.7", user, "bob", "bob@example.com"), p("10.20.3.4", ext, "", ""))},
		{"host to the internet: network of the host's address",
			tcp(true, "10.10.0.5", 50000, "1.1.1.1", 443),
			ev(true, "mesh1", egress, 50000, 443, hostV4, p("1.1.1.1", ext, "", ""))},
		{"overlapping networks: the more specific one",
			tcp(false, "10.10.0.5", 50000, "10.10.200.9", 80),
			ev(false, "mesh2", egress, 50000, 80, hostV4, p("10.10.200.9", ext, "", ""))},
		{"host's second network, address renamed by a participant entry",
			tcp(false, "10.20.0.5", 50000, "10.20.0.9", 80),
			ev(false, "mesh2", egress, 50000, 80, p("10.20.0.5", node, "gw", "gateway"), p("10.20.0.9", ext, "", ""))},
		{"4in6 addresses are IPv4",
			tcp(false, "::ffff:10.10.0.5", 40000, "::ffff:10.10.0.7", 5432),
			ev(false, "mesh1", egress, 40000, 5432, hostV4, db)},
		{"IPv6 egress",
			tcp(true, "fd00::5", 40000, "fd00::7", 5432),
			ev(true, "mesh1", egress, 40000, 5432, p("fd00::5", node, "h1", "web-1"), p("fd00::7", node, "n-7", "db-1"))},
		{"IPv6 ingress from an unnamed outside address",
			tcp(true, "2001:db8::1", 50000, "fd00::5", 443),
			ev(true, "mesh1", ingr, 50000, 443, p("2001:db8::1", ext, "", ""), p("fd00::5", node, "h1", "web-1"))},
		{"ICMP: type and code, no ports", icmp, icmpWant},
		{"ICMPv6 destroy, ingress", icmp6, icmp6Want},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := dirty()
			srcP, dstP := dst.Src, dst.Dst
			if !tb.Event(&tc.f, 77, dst) {
				t.Fatal("Event returned false")
			}
			if !proto.Equal(dst, tc.want) {
				t.Fatalf("got\n%s\nwant\n%s", prototext.Format(dst), prototext.Format(tc.want))
			}
			if dst.Src != srcP || dst.Dst != dstP {
				t.Error("participants were reallocated instead of overwritten")
			}
			// A fresh event gets its participants allocated.
			fresh := &pb.FlowEvent{}
			if !tb.Event(&tc.f, 77, fresh) || !proto.Equal(fresh, tc.want) {
				t.Fatalf("fresh event differs:\n%s", prototext.Format(fresh))
			}
		})
	}
}

func TestOutOfScope(t *testing.T) {
	tb := newTable(t)
	for _, f := range []Flow{
		tcp(true, "192.168.0.2", 5000, "8.8.8.8", 53),
		tcp(true, "2001:db8::1", 5000, "2001:db8::2", 53),
		tcp(true, "10.30.0.1", 5000, "192.168.1.1", 80), // a participant entry alone does not put an address in scope
		{Proto: 6}, // invalid addresses
	} {
		dst := dirty()
		if v := tb.Enrich(&f, 1, dst); v != OutOfScope {
			t.Errorf("%v -> %v: %v, want out_of_scope", f.Src, f.Dst, v)
		}
		if !proto.Equal(dst, dirty()) {
			t.Errorf("dst was modified")
		}
	}
	if New(nil).Event(&Flow{Src: a("10.10.0.5"), Dst: a("10.10.0.7")}, 1, &pb.FlowEvent{}) {
		t.Error("nil config: in scope")
	}
}

func TestDrop(t *testing.T) {
	const base = "host: {id: h1, name: web-1}\nnetworks: [{id: mesh1, addresses: [10.10.0.5, \"fd00::5\"], cidrs: [10.10.0.0/16, \"fd00::/64\"]}]\n"
	flow := func(proto uint8, sport, dport uint16, src, dst string) Flow {
		return Flow{Proto: proto, SrcPort: sport, DstPort: dport, Src: a(src), Dst: a(dst), Start: t0}
	}
	const h, peer = "10.10.0.5", "10.10.0.7"
	for _, tc := range []struct {
		name string
		drop string
		f    Flow
		want Verdict
	}{
		{"no filters: dns kept", "", flow(17, 40000, 53, h, peer), Keep},
		{"no filters: icmp kept", "", flow(1, 0, 0, h, peer), Keep},
		{"protocol by name", "drop: {protocols: [udp]}", flow(17, 1, 2, h, peer), DropProtocol},
		{"protocol by number", "drop: {protocols: [47]}", flow(47, 0, 0, h, peer), DropProtocol},
		{"protocol: others kept", "drop: {protocols: [47]}", flow(6, 1, 2, h, peer), Keep},
		{"port: dst", "drop: {ports: [5353]}", flow(17, 40000, 5353, h, peer), DropPort},
		{"port: src", "drop: {ports: [5353]}", flow(17, 5353, 40000, h, peer), DropPort},
		{"port: others kept", "drop: {ports: [5353]}", flow(17, 5354, 40000, h, peer), Keep},
		{"port: never for ICMP", "drop: {ports: [5353]}", flow(1, 5353, 5353, h, peer), Keep},
		{"port: high port", "drop: {ports: [65535]}", flow(6, 1, 65535, h, peer), DropPort},
		{"cidr: src inside", "drop: {cidrs: [10.10.99.0/24]}", flow(6, 1, 2, "10.10.99.3", h), DropCIDR},
		{"cidr: dst inside", "drop: {cidrs: [10.10.99.0/24]}", flow(6, 1, 2, h, "10.10.99.3"), DropCIDR},
		{"cidr: single address", "drop: {cidrs: [1.1.1.1]}", flow(6, 1, 2, h, "1.1.1.1"), DropCIDR},
		{"cidr: outside kept", "drop: {cidrs: [10.10.99.0/24]}", flow(6, 1, 2, h, "10.10.98.3"), Keep},
		{"cidr: IPv6", "drop: {cidrs: [\"fd00::99:0/112\"]}", flow(6, 1, 2, "fd00::5", "fd00::99:1"), DropCIDR},
		{"preset dns: udp dst 53", "drop: {presets: [dns]}", flow(17, 40000, 53, h, peer), DropPort},
		{"preset dns: tcp src 53", "drop: {presets: [dns]}", flow(6, 53, 40000, peer, h), DropPort},
		{"preset dns: sctp 53 kept", "drop: {presets: [dns]}", flow(132, 53, 40000, peer, h), Keep},
		{"preset dns: icmp kept", "drop: {presets: [dns]}", flow(1, 53, 53, h, peer), Keep},
		{"preset icmp: v4", "drop: {presets: [icmp]}", flow(1, 0, 0, h, peer), DropProtocol},
		{"preset icmp: v6", "drop: {presets: [icmp]}", flow(58, 0, 0, "fd00::5", "fd00::7"), DropProtocol},
		{"preset icmp: tcp kept", "drop: {presets: [icmp]}", flow(6, 1, 2, h, peer), Keep},
		{"out of scope before drop", "drop: {ports: [53]}", flow(17, 1, 53, "8.8.8.8", "8.8.4.4"), OutOfScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := New(parse(t, base+tc.drop))
			var s Stats
			v := tb.Enrich(&tc.f, 1, &pb.FlowEvent{})
			s.Add(v)
			if v != tc.want {
				t.Fatalf("got %v, want %v", v, tc.want)
			}
			if s.Count(tc.want) != 1 || s.Snapshot()[tc.want.String()] != 1 {
				t.Fatalf("stats: %v", s.Snapshot())
			}
		})
	}
}

func TestFlowID(t *testing.T) {
	id := FlowID("h1", 7, t0)
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("flow id %q: want 32 lowercase hex digits", id)
	}
	// The definition, spelled out: sha256("h1" || 00000007 || t0 in ns, big endian)[:16].
	msg := append([]byte("h1"), 0, 0, 0, 7)
	msg = binary.BigEndian.AppendUint64(msg, uint64(t0.UnixNano()))
	sum := sha256.Sum256(msg)
	if want := hex.EncodeToString(sum[:16]); id != want {
		t.Fatalf("FlowID = %s, want %s", id, want)
	}
	if got := FlowID("h1", 7, t0); got != id {
		t.Fatalf("not stable: %s vs %s", got, id)
	}
	if got := FlowID("h1", 7, t0.In(time.FixedZone("x", 3600))); got != id {
		t.Fatalf("depends on the time zone: %s", got)
	}
	if FlowID("h1", 7, t0.Add(time.Nanosecond)) == id {
		t.Error("same id for a reused conntrack id with a different start")
	}
	if FlowID("h1", 8, t0) == id || FlowID("h2", 7, t0) == id {
		t.Error("same id for another conntrack id or host")
	}
	long := strings.Repeat("x", 300) // spills the stack buffer
	if FlowID(long, 7, t0) == FlowID(long+"y", 7, t0) {
		t.Error("long host ids collide")
	}
	if n := testing.AllocsPerRun(100, func() { FlowID("7f1c0e2a-5b6d-4c3e-9f10-1234567890ab", 7, t0) }); n > 1 {
		t.Errorf("FlowID allocates %v times, want 1", n)
	}

	// START and DESTROY of one flow share the id; a reused conntrack id does not.
	tb := newTable(t)
	var start, destroy, reused pb.FlowEvent
	f := tcp(false, "10.10.0.5", 1, "10.10.0.7", 2)
	tb.Event(&f, 1, &start)
	f = tcp(true, "10.10.0.5", 1, "10.10.0.7", 2)
	tb.Event(&f, 2, &destroy)
	f.Start = t1.Add(time.Second)
	tb.Event(&f, 3, &reused)
	if start.FlowId != destroy.FlowId || start.FlowId == reused.FlowId {
		t.Errorf("start %s destroy %s reused %s", start.FlowId, destroy.FlowId, reused.FlowId)
	}
}

func TestClock(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	c := &Clock{Now: func() time.Time { return now }}
	var got []int64
	next := func() { got = append(got, c.Next()) }
	next()                                // 1000000
	next()                                // same ms: 1000001
	next()                                // 1000002
	now = now.Add(-time.Hour)             // wall clock steps back
	next()                                // 1000003
	now = time.UnixMilli(1_000_002)       // catches up, but not past
	next()                                // 1000004
	now = time.UnixMilli(2_000_000)       // jumps ahead
	next()                                // 2000000
	now = now.Add(300 * time.Microsecond) // within the same ms
	next()                                // 2000001
	c.Observe(5_000_000)                  // persisted high-water mark
	next()                                // 5000001
	c.Observe(10)                         // lower: ignored
	next()                                // 5000002
	want := []int64{1_000_000, 1_000_001, 1_000_002, 1_000_003, 1_000_004, 2_000_000, 2_000_001, 5_000_001, 5_000_002}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if c.Last() != 5_000_002 {
		t.Fatalf("Last = %d", c.Last())
	}

	// Concurrent callers never see the same value; each sees increasing ones.
	var zero Clock // real time
	const G, N = 8, 2000
	res := make(chan []int64, G)
	for range G {
		go func() {
			vs := make([]int64, N)
			for i := range vs {
				vs[i] = zero.Next()
			}
			res <- vs
		}()
	}
	seen := map[int64]bool{}
	for range G {
		vs := <-res
		for i, v := range vs {
			if i > 0 && v <= vs[i-1] {
				t.Fatalf("not increasing: %d after %d", v, vs[i-1])
			}
			if seen[v] {
				t.Fatalf("duplicate version %d", v)
			}
			seen[v] = true
		}
	}
}

func TestEventAllocs(t *testing.T) {
	tb := newTable(t)
	f := tcp(true, "10.10.0.5", 40000, "10.10.0.7", 5432) // both endpoints single-address entries
	dst := dirty()
	if n := testing.AllocsPerRun(100, func() { tb.Event(&f, 1, dst) }); n > 1 {
		t.Errorf("Event allocates %v times, want 1 (the flow id)", n)
	}
}

// benchTable is a realistic mesh: a /16 per network, 1000 nodes as /32s,
// 200 user ranges, egress routes, and drop filters.
func benchTable(b *testing.B) (*Table, []Flow) {
	var sb strings.Builder
	sb.WriteString("host: {id: 7f1c0e2a-5b6d-4c3e-9f10-1234567890ab, name: web-1}\nnetworks:\n")
	sb.WriteString("  - {id: mesh1, addresses: [10.10.0.5, \"fd00::5\"], cidrs: [10.10.0.0/16, \"fd00::/64\"]}\n")
	sb.WriteString("  - {id: mesh2, addresses: [10.20.0.5], cidrs: [10.20.0.0/16]}\nparticipants:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, "  - {match: 10.10.%d.%d, type: node, id: n-%d, name: node-%d}\n", i/240, i%240+10, i, i)
	}
	for i := range 200 {
		fmt.Fprintf(&sb, "  - {match: 10.20.%d.0/24, type: user, id: u-%d}\n", i, i)
	}
	sb.WriteString("  - {match: 192.168.0.0/16, type: egress_route, id: office}\n")
	sb.WriteString("drop: {presets: [dns], ports: [5353], cidrs: [10.10.250.0/24]}\n")
	tb := New(parse(b, sb.String()))
	var flows []Flow
	for i := range 256 {
		f := Flow{Destroy: i%2 == 1, ID: uint32(i), Proto: 6, SrcPort: uint16(30000 + i), DstPort: 443,
			Start: t0, End: t1, OrigBytes: 100, ReplyBytes: 1000, OrigPackets: 2, ReplyPackets: 3}
		switch i % 4 {
		case 0: // host -> node
			f.Src, f.Dst = a("10.10.0.5"), a(fmt.Sprintf("10.10.%d.%d", i%4, i%240+10))
		case 1: // user -> host
			f.Src, f.Dst = a(fmt.Sprintf("10.20.%d.7", i%200)), a("10.20.0.5")
		case 2: // forwarded to the internet
			f.Src, f.Dst = a(fmt.Sprintf("10.10.1.%d", i%240+10)), a(fmt.Sprintf("93.184.%d.34", i))
		case 3: // IPv6
			f.Src, f.Dst = a("fd00::5"), a(fmt.Sprintf("fd00::%x", i))
		}
		flows = append(flows, f)
	}
	return tb, flows
}

func BenchmarkEvent(b *testing.B) {
	tb, flows := benchTable(b)
	dst := &pb.FlowEvent{Src: &pb.FlowParticipant{}, Dst: &pb.FlowParticipant{}}
	var kept int
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if tb.Event(&flows[i&255], int64(i), dst) {
			kept++
		}
		i++
	}
	if kept == 0 {
		b.Fatal("nothing kept")
	}
}

func BenchmarkFlowID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		FlowID("7f1c0e2a-5b6d-4c3e-9f10-1234567890ab", 7, t0)
	}
}
