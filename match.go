package flowlog

import (
	"net/netip"
	"slices"
)

// Match reports whether the event e passes the filter, with the semantics the
// store's SQL gives the same filter over stored flows (store/query.go), so
// that a live tail and a query of the same filter agree:
//
//   - NetworkID, HostID, SrcEntityID, DstEntityID: equal when set.
//   - Networks: NetworkID among them, unless nil (an empty list matches
//     nothing).
//   - From, To: Start in [From, To), compared in milliseconds as stored.
//   - SrcTypes, DstTypes, Protocols: in the list when the list is not empty.
//   - Node: HostID equals it, or the source or the destination is a node
//     whose entity id equals it.
//   - Username: the source or the destination is a user whose entity id or
//     name is Username.
//   - State: active matches START events, finished DESTROY events, stale none.
//   - IP: either endpoint's address is inside the prefix, compared as the
//     store compares its IPv6 columns: IPv4 is its IPv4-mapped IPv6 form, so
//     10.0.0.5 and ::ffff:10.0.0.5 are both inside 10.0.0.0/8 and inside
//     ::ffff:10.0.0.0/104, and ::/0 holds every address.
//   - SrcIP, DstIP: the source's (destination's) address is inside, as IP.
//   - Port: either port equals it.
//   - Direction: equal when set.
//   - Participant: either endpoint's entity id or name equals it.
//   - ASNs, Countries: either endpoint's AS number (country) is in the list
//     when the list is not empty.
//
// Events carry no merged state: a START that was followed by its DESTROY
// still matches "active", as the flow did when the START was committed.
func (f Filter) Match(e *Event) bool {
	if f.NetworkID != "" && e.NetworkID != f.NetworkID {
		return false
	}
	if f.Networks != nil && !slices.Contains(f.Networks, e.NetworkID) {
		return false
	}
	if f.HostID != "" && e.HostID != f.HostID {
		return false
	}
	if f.Node != "" && e.HostID != f.Node && !isNode(&e.Src, f.Node) && !isNode(&e.Dst, f.Node) {
		return false
	}
	if f.SrcEntityID != "" && e.Src.ID != f.SrcEntityID {
		return false
	}
	if f.DstEntityID != "" && e.Dst.ID != f.DstEntityID {
		return false
	}
	// The store keeps start_ts with millisecond precision and compares it
	// with the bounds cut to milliseconds.
	if !f.From.IsZero() && e.Start.UnixMilli() < f.From.UnixMilli() {
		return false
	}
	if !f.To.IsZero() && e.Start.UnixMilli() >= f.To.UnixMilli() {
		return false
	}
	if len(f.SrcTypes) > 0 && !slices.Contains(f.SrcTypes, e.Src.Type) {
		return false
	}
	if len(f.DstTypes) > 0 && !slices.Contains(f.DstTypes, e.Dst.Type) {
		return false
	}
	if len(f.Protocols) > 0 && !slices.Contains(f.Protocols, e.Protocol) {
		return false
	}
	if f.Username != "" && !isUser(&e.Src, f.Username) && !isUser(&e.Dst, f.Username) {
		return false
	}
	switch f.State {
	case StateActive:
		if e.Type != EventStart {
			return false
		}
	case StateFinished:
		if e.Type != EventDestroy {
			return false
		}
	case StateStale:
		return false // an event arriving is the opposite of stale
	}
	if f.IP.IsValid() {
		p := prefix16(f.IP)
		if !p.Contains(addr16(e.Src.IP)) && !p.Contains(addr16(e.Dst.IP)) {
			return false
		}
	}
	if f.SrcIP.IsValid() && !prefix16(f.SrcIP).Contains(addr16(e.Src.IP)) {
		return false
	}
	if f.DstIP.IsValid() && !prefix16(f.DstIP).Contains(addr16(e.Dst.IP)) {
		return false
	}
	if f.Port != 0 && e.SrcPort != f.Port && e.DstPort != f.Port {
		return false
	}
	if f.Direction != DirUnspecified && e.Direction != f.Direction {
		return false
	}
	if f.Participant != "" && !isNamed(&e.Src, f.Participant) && !isNamed(&e.Dst, f.Participant) {
		return false
	}
	if len(f.ASNs) > 0 && !slices.Contains(f.ASNs, e.Src.ASN) && !slices.Contains(f.ASNs, e.Dst.ASN) {
		return false
	}
	if len(f.Countries) > 0 && !slices.Contains(f.Countries, e.Src.Country) && !slices.Contains(f.Countries, e.Dst.Country) {
		return false
	}
	return true
}

func isUser(p *Participant, name string) bool {
	return p.Type == ParticipantUser && isNamed(p, name)
}

func isNamed(p *Participant, s string) bool {
	return p.ID == s || p.Name == s
}

// addr16 is an address as the store keeps it: 16 bytes, IPv4 mapped
// (::ffff:a.b.c.d), the zero Addr as ::.
func addr16(a netip.Addr) netip.Addr {
	return netip.AddrFrom16(a.As16())
}

// prefix16 is a prefix in the same space: a.b.c.d/n is ::ffff:a.b.c.d/(96+n).
func prefix16(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() {
		return netip.PrefixFrom(addr16(p.Addr()), p.Bits()+96)
	}
	return p
}

func isNode(p *Participant, id string) bool {
	return p.Type == ParticipantNode && p.ID == id
}
