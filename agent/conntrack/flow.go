package conntrack

import (
	"net/netip"
	"time"

	ct "github.com/ti-mo/conntrack"
)

// Kind of a conntrack event.
type Kind uint8

const (
	New     Kind = 1
	Destroy Kind = 2
	// Update reports an open flow's counters so far (active timeout): it
	// repeats its New's Start, as a Destroy does.
	Update Kind = 3
)

func (k Kind) String() string {
	switch k {
	case New:
		return "new"
	case Destroy:
		return "destroy"
	case Update:
		return "update"
	}
	return "unknown"
}

// Flow is one conntrack event, in the original direction of the connection.
//
// A flow's identity downstream is (host, ID, Start): the source guarantees
// that a Destroy carries exactly the Start (to the nanosecond) of the New it
// emitted for the same flow, even when the kernel's NEW event had no
// timestamp and Start was taken from the local clock.
type Flow struct {
	Kind               Kind
	ID                 uint32 // conntrack id (reused by the kernel over time)
	Proto              uint8
	Src, Dst           netip.Addr // original tuple (initiator -> responder), Unmap()ed
	SrcPort, DstPort   uint16     // TCP, UDP, SCTP, DCCP, UDP-Lite
	ICMPType, ICMPCode uint8      // ICMP and ICMPv6
	Start              time.Time  // kernel start timestamp if known, else when first seen
	End                time.Time  // Destroy only: kernel stop timestamp if known, else now
	// Accounting: so far on Update and on a New announced from a dump, final
	// on Destroy; zero on a New read from an event, and when
	// nf_conntrack_acct was off when the kernel created the entry.
	OrigBytes, OrigPackets, ReplyBytes, ReplyPackets uint64
	Status                                           uint32 // conntrack status bits (IPS_*)
	Zone                                             uint16
}

// IP protocol numbers that carry ports or ICMP type/code in the tuple.
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136
)

// fromKernel converts a decoded kernel flow (an event or a dump entry, with
// its counters). Start and End are the kernel's timestamps, zero when
// absent; the source fills them in.
func fromKernel(k Kind, f *ct.Flow) Flow {
	t := f.TupleOrig
	out := Flow{
		Kind:   k,
		ID:     f.ID,
		Proto:  t.Proto.Protocol,
		Src:    t.IP.SourceAddress.Unmap(),
		Dst:    t.IP.DestinationAddress.Unmap(),
		Status: uint32(f.Status),
		Zone:   f.Zone,
	}
	switch out.Proto {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLite:
		out.SrcPort, out.DstPort = t.Proto.SourcePort, t.Proto.DestinationPort
	case protoICMP, protoICMPv6:
		out.ICMPType, out.ICMPCode = t.Proto.ICMPType, t.Proto.ICMPCode
	}
	if known(f.Timestamp.Start) {
		out.Start = f.Timestamp.Start
	}
	if k == Destroy {
		if known(f.Timestamp.Stop) {
			out.End = f.Timestamp.Stop
		}
	}
	out.OrigBytes, out.OrigPackets = f.CountersOrig.Bytes, f.CountersOrig.Packets
	out.ReplyBytes, out.ReplyPackets = f.CountersReply.Bytes, f.CountersReply.Packets
	return out
}

// known reports whether a kernel timestamp was present: ti-mo/conntrack
// turns an absent one into the zero Time and a zero one into the epoch.
func known(t time.Time) bool { return !t.IsZero() && t.UnixNano() > 0 }
