package loadgen

import (
	"encoding/hex"
	"net/netip"
	"strconv"

	"github.com/flowlog/flowlog/proto/flow"
)

// pool is a network's participants, built once and shared read-only by
// every generator of a run (protobuf messages may be marshalled
// concurrently). Events point at these structs instead of copying strings.
type pool struct {
	v4, v6 []*flow.FlowParticipant
}

// Shares of participant types, in twentieths, by index modulo 20: 40% nodes,
// 10% users, 15% external clients, 15% egress routes, 20% external.
func typeOf(i int) flow.ParticipantType {
	switch k := i % 20; {
	case k < 8:
		return flow.ParticipantType_PARTICIPANT_NODE
	case k < 10:
		return flow.ParticipantType_PARTICIPANT_USER
	case k < 13:
		return flow.ParticipantType_PARTICIPANT_EXTCLIENT
	case k < 16:
		return flow.ParticipantType_PARTICIPANT_EGRESS_ROUTE
	default:
		return flow.ParticipantType_PARTICIPANT_EXTERNAL
	}
}

// newPool builds n participants deterministically from seed. Addresses sit
// in per-type ranges (mesh 10.101-103.0.0/16, egress LANs 192.168.0.0/16,
// public-looking externals); about one node in ten and one external in five
// is IPv6, as in dual-stack meshes.
func newPool(n int, seed int64) *pool {
	r := newRNG(uint64(seed) ^ 0x5ee0_9001)
	p := &pool{}
	for i := range n {
		t := typeOf(i)
		fp := &flow.FlowParticipant{Type: t}
		v6 := false
		switch t {
		case flow.ParticipantType_PARTICIPANT_NODE:
			v6 = i%10 == 3
			fp.Ip = meshIP(101, i, v6)
			fp.Id = uuidish(&r)
			fp.Name = "node-" + strconv.Itoa(i)
		case flow.ParticipantType_PARTICIPANT_USER:
			fp.Ip = meshIP(102, i, false)
			fp.Id = "user" + strconv.Itoa(i)
			fp.Name = "user" + strconv.Itoa(i) + "@example.com"
		case flow.ParticipantType_PARTICIPANT_EXTCLIENT:
			fp.Ip = meshIP(103, i, false)
			fp.Id = "extclient-" + strconv.Itoa(i)
			fp.Name = "laptop-" + strconv.Itoa(i)
		case flow.ParticipantType_PARTICIPANT_EGRESS_ROUTE:
			// Many LAN hosts behind a handful of egress routes.
			fp.Ip = netip.AddrFrom4([4]byte{192, 168, byte(i / 250 % 256), byte(i%250 + 1)}).String()
			fp.Id = "egress-" + strconv.Itoa(i%8)
			fp.Name = "office-lan-" + strconv.Itoa(i%8)
		default: // external: no Netmaker entity, so no id or name
			v6 = i%5 == 1
			if v6 {
				var a [16]byte
				a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
				x := r.next()
				for j := 8; j < 16; j++ {
					a[j] = byte(x >> (8 * (j - 8)))
				}
				fp.Ip = netip.AddrFrom16(a).String()
			} else {
				x := r.next()
				first := byte(11 + x%180) // 11..190: past 10/8, public-looking
				if first == 127 {
					first = 128
				}
				fp.Ip = netip.AddrFrom4([4]byte{first, byte(x >> 8), byte(x >> 16), byte(x>>24)%254 + 1}).String()
			}
		}
		if v6 {
			p.v6 = append(p.v6, fp)
		} else {
			p.v4 = append(p.v4, fp)
		}
	}
	if len(p.v4) == 0 { // n == 0 cannot happen after defaults; keep pick safe anyway
		p.v4 = append(p.v4, &flow.FlowParticipant{Ip: "10.101.0.1", Type: flow.ParticipantType_PARTICIPANT_NODE, Id: "node-0", Name: "node-0"})
	}
	return p
}

// meshIP is address i of mesh range 10.<net>.0.0/16 (or fd00:<net>::/64).
func meshIP(net byte, i int, v6 bool) string {
	if v6 {
		var a [16]byte
		a[0], a[1], a[3] = 0xfd, 0x00, net
		a[14], a[15] = byte((i+1)>>8), byte(i+1)
		return netip.AddrFrom16(a).String()
	}
	return netip.AddrFrom4([4]byte{10, net, byte(i / 250), byte(i%250 + 1)}).String()
}

// uuidish formats 128 random bits as a version-4 UUID, like Netmaker's ids.
func uuidish(r *rng) string {
	var b [16]byte
	x, y := r.next(), r.next()
	for i := range 8 {
		b[i], b[8+i] = byte(x>>(8*i)), byte(y>>(8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// pick draws a peer: half the draws from the first tenth of the pool (hot
// services and chatty clients, so "top talkers" queries have a top), the
// rest uniformly; one in ten draws is IPv6 when the pool has any.
func (p *pool) pick(x uint64) (peer *flow.FlowParticipant, v6 bool) {
	list := p.v4
	if x&0xf < 2 && len(p.v6) > 0 { // 2/16 ≈ 12%
		list, v6 = p.v6, true
	}
	n := uint64(len(list))
	if x&0x10 == 0 {
		n = max(n/10, 1)
	}
	return list[((x>>32)*n)>>32], v6
}

// rng is splitmix64: tiny, fast, deterministic per seed, and good enough
// for picking ports and participants. Not safe for concurrent use.
type rng struct{ s uint64 }

func newRNG(seed uint64) rng { return rng{s: seed} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a value in [0, n) for n < 2^32 (multiply-shift, no division).
func (r *rng) intn(n int) int {
	return int(((r.next() >> 32) * uint64(n)) >> 32)
}
