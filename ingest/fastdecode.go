package ingest

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/flowlog/flowlog/proto/flow"
)

// The fast path of envelope decoding. protobuf-go's Unmarshal allocates
// every event, both participants and each string apart (about 17
// allocations and 1 KB an event, measured under the bench), and the strings
// live until the group commit: the garbage collector's largest work. An
// envelope of plain events (every event exactly one generation's fields
// with their declared wire types, valid UTF-8, each participant once) is
// read here instead, into one array of events and one of participants, with
// the stream's repeated strings (network, host, participants) shared
// through its interner: about one allocation an event, its flow_id.
//
// It decides nothing on its own: anything else (unknown fields, a wire
// type of neither generation, invalid UTF-8, a participant sent twice, which
// protobuf merges) makes it give up, and the envelope is decoded as before
// (wireEnvelope.decode). FuzzFastDecode checks that whatever it reads, the
// regular path reads the same, generation by generation.

// decodeFast fills w from b if every event is plain; false: it did not,
// and w is untouched.
func (w *wireEnvelope) decodeFast(b []byte, in *interner) bool {
	n := 0
	for rest := b; len(rest) > 0; n++ {
		num, typ, tn := protowire.ConsumeTag(rest)
		if tn < 0 || num != 1 || typ != protowire.BytesType {
			return false
		}
		_, vn := protowire.ConsumeBytes(rest[tn:])
		if vn < 0 {
			return false
		}
		rest = rest[tn+vn:]
	}
	env := &pb.FlowEnvelope{}
	var events []wireEvent
	if n > 0 {
		var evs []pb.FlowEvent
		var ps []pb.FlowParticipant
		evs, ps, env.Events, events = w.scratch.decoding(n)
		for i := range n {
			_, _, tn := protowire.ConsumeTag(b)
			raw, vn := protowire.ConsumeBytes(b[tn:])
			b = b[tn+vn:]
			ev := &evs[i]
			switch {
			case readEvent(raw, genCurrent, ev, ps[2*i:2*i+2], in):
				events[i].gen = genCurrent
			case readEvent(raw, genLegacy, reset(ev, ps[2*i:2*i+2]), ps[2*i:2*i+2], in):
				events[i].gen = genLegacy
			default:
				return false
			}
			env.Events[i] = ev
		}
	}
	w.env, w.events = env, events
	return true
}

// reset clears an event and its participants a failed reading left half
// filled (the generated Reset: every field, whatever the .proto adds).
func reset(ev *pb.FlowEvent, ps []pb.FlowParticipant) *pb.FlowEvent {
	for i := range ps {
		ps[i].Reset()
	}
	ev.Reset()
	return ev
}

// readEvent reads raw as an event of generation g if every field is one of
// g's with its declared wire type; ps is room for its two participants.
func readEvent(raw []byte, g generation, ev *pb.FlowEvent, ps []pb.FlowParticipant, in *interner) bool {
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 || num >= protowire.Number(len(declared[g])) || declared[g][num] == 0 || protowire.Type(declared[g][num]-1) != typ {
			return false
		}
		raw = raw[n:]
		if g == genLegacy {
			num = legacyNumber[num]
		}
		if typ == protowire.VarintType {
			v, vn := protowire.ConsumeVarint(raw)
			if vn < 0 {
				return false
			}
			raw = raw[vn:]
			setVarint(ev, num, v)
			continue
		}
		v, vn := protowire.ConsumeBytes(raw)
		if vn < 0 {
			return false
		}
		raw = raw[vn:]
		switch num {
		case 12, 13: // src, dst
			p := &ps[num-12]
			if num == 12 && ev.Src != nil || num == 13 && ev.Dst != nil || !readParticipant(v, p, in) {
				return false // a second occurrence merges in protobuf: the regular path's
			}
			if num == 12 {
				ev.Src = p
			} else {
				ev.Dst = p
			}
			continue
		}
		if !utf8.Valid(v) {
			return false
		}
		switch num {
		case 2:
			ev.FlowId = string(v) // unique per flow: not worth interning
		case 3:
			ev.HostId = in.field(lastHostID, v)
		case 4:
			ev.HostName = in.field(lastHostName, v)
		case 5:
			ev.NetworkId = in.field(lastNetworkID, v)
		default:
			return false
		}
	}
	return true
}

// setVarint sets the varint field num (v1.5+ numbering) as protobuf-go
// does: 32-bit fields take the low 32 bits.
func setVarint(ev *pb.FlowEvent, num protowire.Number, v uint64) {
	switch num {
	case 1:
		ev.Type = pb.EventType(int32(v))
	case 6:
		ev.Protocol = uint32(v)
	case 7:
		ev.SrcPort = uint32(v)
	case 8:
		ev.DstPort = uint32(v)
	case 9:
		ev.IcmpType = uint32(v)
	case 10:
		ev.IcmpCode = uint32(v)
	case 11:
		ev.Direction = pb.Direction(int32(v))
	case 14:
		ev.StartTsMs = int64(v)
	case 15:
		ev.EndTsMs = int64(v)
	case 16:
		ev.BytesSent = v
	case 17:
		ev.BytesRecv = v
	case 18:
		ev.PacketsSent = v
	case 19:
		ev.PacketsRecv = v
	case 20:
		ev.Status = uint32(v)
	case 21:
		ev.Version = int64(v)
	}
}

// readParticipant reads a FlowParticipant (the same in both generations)
// with exactly its declared fields.
func readParticipant(raw []byte, p *pb.FlowParticipant, in *interner) bool {
	if c, ok := in.participant(raw); ok { // the same bytes read the same
		p.Ip, p.Type, p.Id, p.Name = c.ip, c.typ, c.id, c.name
		return true
	}
	whole := raw
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return false
		}
		raw = raw[n:]
		switch {
		case num == 2 && typ == protowire.VarintType:
			v, vn := protowire.ConsumeVarint(raw)
			if vn < 0 {
				return false
			}
			raw = raw[vn:]
			p.Type = pb.ParticipantType(int32(v))
		case (num == 1 || num == 3 || num == 4) && typ == protowire.BytesType:
			v, vn := protowire.ConsumeBytes(raw)
			if vn < 0 || !utf8.Valid(v) {
				return false
			}
			raw = raw[vn:]
			s := in.bytes(v)
			switch num {
			case 1:
				p.Ip = s
			case 3:
				p.Id = s
			default:
				p.Name = s
			}
		default:
			return false
		}
	}
	in.rememberParticipant(whole, participantFields{ip: p.Ip, id: p.Id, name: p.Name, typ: p.Type})
	return true
}
