package ingest

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/flowlog/flowlog/proto/flow"
)

// A field sent with the wrong wire type (flow_id as a varint, say) is not an
// error to the protobuf decoder: it keeps the bytes as an unknown field and
// leaves the field empty, so the event would be judged on a value the agent
// never sent ("missing flow_id"), and an envelope whose events field is not a
// message would pass as empty. Unknown field numbers are fine (a newer
// agent's additions); a known number among the unknown fields is always a
// wire type the .proto does not allow (repeated scalars are accepted packed
// and unpacked, so they never land there).

// knownInUnknown reports a field number of m's descriptor found among m's
// unknown fields.
func knownInUnknown(m protoreflect.Message) error {
	b := m.GetUnknown()
	if len(b) == 0 {
		return nil
	}
	fields := m.Descriptor().Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("undecodable unknown field: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if fd := fields.ByNumber(num); fd != nil {
			return fmt.Errorf("field %d (%s) has wire type %s, want %s", num, fd.Name(), wireTypeName(typ), wireTypeName(wantWireType(fd)))
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("undecodable unknown field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// checkEventWireTypes is the reason an event is rejected for a field sent
// with the wrong wire type (its value is lost, so nothing about the event
// can be trusted); nil if every known field decoded as declared.
// It costs three slice lengths per event when nothing is unknown.
func checkEventWireTypes(ev *pb.FlowEvent) error {
	if err := knownInUnknown(ev.ProtoReflect()); err != nil {
		return invalid(ReasonBadType, "%v", err)
	}
	for _, p := range []struct {
		side string
		p    *pb.FlowParticipant
	}{{"src", ev.GetSrc()}, {"dst", ev.GetDst()}} {
		if p.p == nil {
			continue
		}
		if err := knownInUnknown(p.p.ProtoReflect()); err != nil {
			return invalid(ReasonBadType, "%s: %v", p.side, err)
		}
	}
	return nil
}

// checkEnvelopeWireTypes is the error for an envelope whose own fields
// (events) came with the wrong wire type: its events cannot be recovered,
// so it can be neither stored nor kept as rejected. Events' own wire types
// are judged per event (checkEventWireTypes).
func checkEnvelopeWireTypes(env *pb.FlowEnvelope) error {
	return knownInUnknown(env.ProtoReflect())
}

func wantWireType(fd protoreflect.FieldDescriptor) protowire.Type {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	default:
		return protowire.VarintType
	}
}

func wireTypeName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "start-group"
	case protowire.EndGroupType:
		return "end-group"
	default:
		return fmt.Sprintf("wire type %d", t)
	}
}
