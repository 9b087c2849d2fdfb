// Package enrich turns a conntrack flow into a wire event: it decides whether
// the flow concerns this host's mesh at all, applies the drop filters, names
// both endpoints, orients direction and counters to the host, and gives the
// flow a stable identity.
//
// All address questions are longest-prefix matches in bart tables (a few
// nanoseconds each, independent of the number of entries), never a scan of
// CIDRs in map order (docs/design.md pitfall 5): the most specific entry wins,
// whatever the order in the config file.
//
// Rules, for the original tuple Src -> Dst (Src initiated the connection):
//
//   - Scope: a flow is reported only when Src or Dst is inside one of the
//     host's networks (their CIDRs, which contain the host's own addresses).
//   - network_id: the network of the endpoint that is not the host itself,
//     preferring Dst; if that endpoint is outside every network, the other
//     endpoint's. Precisely: Dst if in a network and not the host, else Src
//     if in a network and not the host, else Dst if in a network, else Src.
//     Overlapping networks: the most specific CIDR decides; the host's own
//     addresses belong to the network that lists them.
//   - Direction: Src is the host -> EGRESS (the host initiated); else Dst is
//     the host -> INGRESS; else the host forwards (egress gateway, relay):
//     EGRESS when Src is inside a mesh network (traffic leaving the mesh
//     through this host), INGRESS otherwise (traffic entering it).
//   - Counters are the host's view: on EGRESS sent = Orig (initiator ->
//     responder) and recv = Reply; on INGRESS sent = Reply and recv = Orig.
//     START events carry end_ts_ms = 0 and the counters so far: zero for a
//     flow that just began, the running totals in an active-timeout update
//     (a later START of the same flow, replacing the earlier by version).
//   - Participants: the most specific participant entry containing the
//     address; the host's own addresses are a node named after the host
//     unless a participant entry for exactly that address (/32, /128) says
//     otherwise; anything unmatched is PARTICIPANT_EXTERNAL with empty id
//     and name (including mesh addresses no entry names).
//   - ICMP and ICMPv6 events carry icmp_type/icmp_code and ports 0; other
//     protocols carry the ports and icmp 0.
//   - Drop filters (checked after scope): protocol, either port (never for
//     ICMP, whose "ports" are 0), either endpoint in a drop CIDR; presets dns
//     (TCP or UDP with either port 53) and icmp (protocols 1 and 58).
package enrich

import (
	"net/netip"
	"time"

	"github.com/gaissmai/bart"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/agent/config"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Flow is one conntrack event, as the conntrack source reports it.
type Flow struct {
	Destroy            bool
	ID                 uint32
	Proto              uint8
	Src, Dst           netip.Addr // original tuple (initiator -> responder)
	SrcPort, DstPort   uint16
	ICMPType, ICMPCode uint8
	Start, End         time.Time // End only on Destroy
	// orig = initiator -> responder; so far on a START (zero when new),
	// final on a Destroy
	OrigBytes, OrigPackets, ReplyBytes, ReplyPackets uint64
	Status                                           uint32
}

// IP protocol numbers with special treatment.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// Verdict is what Enrich decided about a flow.
type Verdict uint8

const (
	Keep         Verdict = iota // dst was filled
	OutOfScope                  // neither endpoint is in one of the host's networks
	DropProtocol                // drop.protocols or preset icmp
	DropPort                    // drop.ports or preset dns
	DropCIDR                    // drop.cidrs
	numVerdicts
)

var verdictNames = [numVerdicts]string{"keep", "out_of_scope", "drop_protocol", "drop_port", "drop_cidr"}

func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// network is the value of the networks table.
type network struct {
	id   string
	self bool // the prefix is one of the host's own addresses
}

// participant is the value of the participants table.
type participant struct {
	typ      pb.ParticipantType
	id, name string
	ip       string // for single-address entries: the address's text, so Event need not format it
}

// Table answers the enrichment questions for one config. It is immutable
// once built and safe for any number of concurrent readers; on a config
// change build a new one and swap it (e.g. atomic.Pointer[Table]).
type Table struct {
	hostID, hostName string

	networks     bart.Fast[*network]     // network CIDRs, plus the host's addresses as /32, /128 (self)
	participants bart.Fast[*participant] // participant entries, plus the host's addresses

	dropCIDRs bart.Lite
	dropProto [256]bool
	dropPorts *[65536 / 64]uint64 // bitset; nil when no port filter
	dropDNS   bool
}

// New builds the table for c. A nil config gives a table for which every
// flow is out of scope.
func New(c *config.Config) *Table {
	t := &Table{}
	if c == nil {
		return t
	}
	t.hostID, t.hostName = c.Host.ID, c.Host.Name
	for _, n := range c.Networks {
		v := &network{id: n.ID}
		for _, p := range n.CIDRs {
			t.networks.Insert(p.Masked(), v)
		}
	}
	// The host's addresses after all CIDRs: a /32 is the most specific entry
	// there is, so an own address always maps to the network listing it.
	for _, n := range c.Networks {
		v := &network{id: n.ID, self: true}
		for _, a := range n.Addresses {
			a = a.Unmap()
			t.networks.Insert(netip.PrefixFrom(a, a.BitLen()), v)
			t.participants.Insert(netip.PrefixFrom(a, a.BitLen()),
				&participant{typ: pb.ParticipantType_PARTICIPANT_NODE, id: c.Host.ID, name: c.Host.Name, ip: a.String()})
		}
	}
	// Participant entries after the host's: an entry for exactly a host
	// address replaces the host default.
	for _, p := range c.Participants {
		e := &participant{typ: pb.ParticipantType(p.Type), id: p.ID, name: p.Name}
		if p.Match.IsSingleIP() {
			e.ip = p.Match.Addr().String()
		}
		t.participants.Insert(p.Match.Masked(), e)
	}

	d := c.Drop
	for _, pr := range d.Protocols {
		t.dropProto[pr] = true
	}
	for _, preset := range d.Presets {
		switch preset {
		case config.PresetICMP:
			t.dropProto[protoICMP] = true
			t.dropProto[protoICMPv6] = true
		case config.PresetDNS:
			t.dropDNS = true
		}
	}
	for _, port := range d.Ports {
		if port == 0 {
			continue // would match every portless flow; config rejects it
		}
		if t.dropPorts == nil {
			t.dropPorts = new([65536 / 64]uint64)
		}
		t.dropPorts[port/64] |= 1 << (port % 64)
	}
	for _, p := range d.CIDRs {
		t.dropCIDRs.Insert(p.Masked())
	}
	return t
}

func (t *Table) dropPort(port uint16) bool {
	return port != 0 && t.dropPorts[port/64]&(1<<(port%64)) != 0
}

// Event fills dst for f and reports whether the flow is to be sent: false
// means out of scope or dropped (dst is then untouched). See Enrich.
func (t *Table) Event(f *Flow, version int64, dst *pb.FlowEvent) bool {
	return t.Enrich(f, version, dst) == Keep
}

// Enrich is Event with the reason for a false answer (count it in Stats).
//
// Every field of dst is written (reusing dst leaks nothing from its previous
// use); dst.Src and dst.Dst are overwritten in place when non-nil, so a
// caller that reuses its events does not allocate participants. version is
// the caller's (see Clock). f.Start must be the same for the START and
// DESTROY of one flow: it is part of the flow id.
func (t *Table) Enrich(f *Flow, version int64, dst *pb.FlowEvent) Verdict {
	src, dstIP := f.Src.Unmap(), f.Dst.Unmap()
	sn, sIn := t.networks.Lookup(src)
	dn, dIn := t.networks.Lookup(dstIP)
	if !sIn && !dIn {
		return OutOfScope
	}

	proto := f.Proto
	var sport, dport uint16
	var itype, icode uint8
	if proto == protoICMP || proto == protoICMPv6 {
		itype, icode = f.ICMPType, f.ICMPCode
	} else {
		sport, dport = f.SrcPort, f.DstPort
	}
	if t.dropProto[proto] {
		return DropProtocol
	}
	if t.dropPorts != nil && (t.dropPort(sport) || t.dropPort(dport)) {
		return DropPort
	}
	if t.dropDNS && (proto == protoTCP || proto == protoUDP) && (sport == 53 || dport == 53) {
		return DropPort
	}
	if t.dropCIDRs.Contains(src) || t.dropCIDRs.Contains(dstIP) {
		return DropCIDR
	}

	srcSelf := sIn && sn.self
	dstSelf := dIn && dn.self
	dir := pb.Direction_DIR_INGRESS
	if srcSelf || (!dstSelf && sIn) {
		dir = pb.Direction_DIR_EGRESS
	}
	var netID string
	switch {
	case dIn && !dstSelf:
		netID = dn.id
	case sIn && !srcSelf:
		netID = sn.id
	case dIn:
		netID = dn.id
	default:
		netID = sn.id
	}

	if f.Destroy {
		dst.Type = pb.EventType_EVENT_DESTROY
	} else {
		dst.Type = pb.EventType_EVENT_START
	}
	dst.FlowId = FlowID(t.hostID, f.ID, f.Start)
	dst.HostId = t.hostID
	dst.HostName = t.hostName
	dst.NetworkId = netID
	dst.Protocol = uint32(proto)
	dst.SrcPort, dst.DstPort = uint32(sport), uint32(dport)
	dst.IcmpType, dst.IcmpCode = uint32(itype), uint32(icode)
	dst.Direction = dir
	if dst.Src == nil {
		dst.Src = new(pb.FlowParticipant)
	}
	if dst.Dst == nil {
		dst.Dst = new(pb.FlowParticipant)
	}
	t.fill(dst.Src, src)
	t.fill(dst.Dst, dstIP)
	dst.StartTsMs = f.Start.UnixMilli()
	dst.EndTsMs = 0
	if f.Destroy {
		dst.EndTsMs = f.End.UnixMilli()
	}
	if dir == pb.Direction_DIR_EGRESS {
		dst.BytesSent, dst.BytesRecv = f.OrigBytes, f.ReplyBytes
		dst.PacketsSent, dst.PacketsRecv = f.OrigPackets, f.ReplyPackets
	} else {
		dst.BytesSent, dst.BytesRecv = f.ReplyBytes, f.OrigBytes
		dst.PacketsSent, dst.PacketsRecv = f.ReplyPackets, f.OrigPackets
	}
	dst.Status = f.Status
	dst.Version = version
	return Keep
}

func (t *Table) fill(p *pb.FlowParticipant, ip netip.Addr) {
	e, ok := t.participants.Lookup(ip)
	if !ok {
		p.Ip = ip.String()
		p.Type = pb.ParticipantType_PARTICIPANT_EXTERNAL
		p.Id, p.Name = "", ""
		return
	}
	if e.ip != "" {
		p.Ip = e.ip // a single-address entry: the address is this one
	} else {
		p.Ip = ip.String()
	}
	p.Type, p.Id, p.Name = e.typ, e.id, e.name
}

// Lookup names ip as Event would: the most specific participant entry, the
// host for its own addresses, external otherwise.
func (t *Table) Lookup(ip netip.Addr) flowlog.Participant {
	ip = ip.Unmap()
	if e, ok := t.participants.Lookup(ip); ok {
		return flowlog.Participant{IP: ip, Type: flowlog.ParticipantType(e.typ), ID: e.id, Name: e.name}
	}
	return flowlog.Participant{IP: ip, Type: flowlog.ParticipantExternal}
}

// Network returns the id of the network ip belongs to (most specific CIDR;
// the listing network for the host's own addresses) and whether ip is one of
// the host's own addresses.
func (t *Table) Network(ip netip.Addr) (id string, self, ok bool) {
	n, ok := t.networks.Lookup(ip.Unmap())
	if !ok {
		return "", false, false
	}
	return n.id, n.self, true
}
