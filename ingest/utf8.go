package ingest

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/flowlog/flowlog/proto/flow"
)

// Invalid UTF-8 in a string field fails protobuf's decoding of the whole
// message, so one bad host_name would end the stream and lose every valid
// event of its envelope, where any other invalid value rejects only its own
// event. decodeEnvelopeLeniently decodes such an envelope event by event:
// an event with invalid UTF-8 is decoded with the bad bytes replaced by
// U+FFFD (so its rejection still names its host and flow) and rejected
// with its index and the field; the other events go on.

// decodeEnvelopeLeniently decodes b into env, event by event. bad maps the
// index of each event with invalid UTF-8 to the reason it is rejected. An
// error is returned when the envelope is undecodable for another reason.
func decodeEnvelopeLeniently(b []byte, env *pb.FlowEnvelope) (bad map[int]error, err error) {
	env.Reset()
	evDesc := (&pb.FlowEvent{}).ProtoReflect().Descriptor()
	for len(b) > 0 {
		field := b
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		if !num.IsValid() {
			return nil, fmt.Errorf("invalid field number %d", num)
		}
		b = b[n:]
		if num != 1 || typ != protowire.BytesType { // kept as the strict decoder would: an unknown field
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			r := env.ProtoReflect()
			r.SetUnknown(append(r.GetUnknown(), field[:n+m]...))
			b = b[m:]
			continue
		}
		raw, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		ev := &pb.FlowEvent{}
		if err := proto.Unmarshal(raw, ev); err != nil {
			fixed, fields := repairUTF8(raw, evDesc, "")
			if len(fields) == 0 {
				return nil, err // undecodable for another reason
			}
			ev.Reset()
			if err := proto.Unmarshal(fixed, ev); err != nil {
				return nil, err
			}
			if bad == nil {
				bad = map[int]error{}
			}
			bad[len(env.Events)] = invalid(ReasonBadType, "invalid UTF-8 in %s (shown with U+FFFD)", strings.Join(fields, ", "))
		}
		env.Events = append(env.Events, ev)
	}
	return bad, nil
}

// repairUTF8 returns the message b of descriptor md with every string
// field's invalid UTF-8 replaced by U+FFFD, and the names of those fields
// (prefix.name). Fields it cannot parse are copied as they are.
func repairUTF8(b []byte, md protoreflect.MessageDescriptor, prefix string) (out []byte, fields []string) {
	out = make([]byte, 0, len(b))
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return append(out, b...), fields
		}
		tag := b[:n]
		rest := b[n:]
		fd := md.Fields().ByNumber(num)
		if typ == protowire.BytesType && fd != nil && (fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.MessageKind) {
			v, m := protowire.ConsumeBytes(rest)
			if m < 0 {
				return append(out, b...), fields
			}
			switch {
			case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
				fields = append(fields, fmt.Sprintf("%s%s (field %d)", prefix, fd.Name(), num))
				v = []byte(strings.ToValidUTF8(string(v), "\uFFFD"))
			case fd.Kind() == protoreflect.MessageKind:
				var inner []string
				v, inner = repairUTF8(v, fd.Message(), prefix+string(fd.Name())+".")
				fields = append(fields, inner...)
			}
			out = protowire.AppendBytes(append(out, tag...), v)
			b = rest[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, rest)
		if m < 0 {
			return append(out, b...), fields
		}
		out = append(out, b[:n+m]...)
		b = rest[m:]
	}
	return out, fields
}
