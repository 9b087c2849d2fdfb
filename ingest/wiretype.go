package ingest

import (
	"encoding/base64"
	"fmt"
	"strings"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/flowlog/flowlog/proto/flow"
)

// Two wire generations of FlowEvent share the package, service and method,
// so both arrive on the same stream path (README "Wire generations"):
//
//	field number:  1    2       3          4         5          6 .. 20               21
//	v1.5+ (spec):  type flow_id host_id    host_name network_id protocol .. status    version
//	<= v1.4.x:     type flow_id network_id host_id   protocol   src_port .. version   -
//
// i.e. the older numbering lacks host_name, and every field after flow_id
// sits one number lower (network_id before host_id). FlowParticipant is the
// same in both (ip=1, type=2, id=3), the older one without name=4.
//
// Each event is judged by its own wire shape, never by its stream or its
// neighbours: an event *fits* a generation when every field it carries has
// the wire type that generation declares for that number (the older one
// declares nothing above 20: its agents are released and frozen; the current
// one lets unknown numbers pass, as a newer agent's additions).
//
// Why this is right for every event. The generations disagree on the wire
// type of numbers 5, 11 and 13 (length-delimited in one, varint in the
// other), and 21 exists only in v1.5+. An event that fits exactly one
// generation is read as that one. An event that fits both carries none of
// 5, 11, 13, 21; read as v1.5+ it has no dst (13), read as <= v1.4 no src
// (11), both required: invalid either way, so reading it as v1.5+ rejects
// it, as the other reading would. Conversely every valid v1.5+ event carries
// dst as a message at 13, which does not fit <= v1.4 (its start_ts_ms, a
// varint), and every valid <= v1.4 event carries src as a message at 11,
// which does not fit v1.5+ (its direction, a varint). Both are messages, and
// a set message is always encoded, even empty: proto3's omission of zero
// values never removes them, so a valid event is never read in the other
// generation (omissions only remove fields, which can only make an event fit
// more generations, never fewer). An event that fits neither is rejected,
// naming the mismatches. TestGenerationRuleOnZeroAndOmittedFields and
// FuzzWireGeneration check all of this.

// generation is the wire numbering an event was read in.
type generation uint8

const (
	genNone    generation = iota // fits neither: rejected
	genCurrent                   // v1.5+, proto/flow/flow.proto
	genLegacy                    // <= v1.4.x
)

// Label values of flowlog_events_wire_generation_total (metrics.WireGenerations).
func (g generation) String() string {
	switch g {
	case genCurrent:
		return "v1.5+"
	case genLegacy:
		return "v1.4"
	default:
		return "neither"
	}
}

// legacyNumber maps a <= v1.4 FlowEvent field number to the v1.5+ number of
// the same field (0: not a field of the older generation).
var legacyNumber = [...]protowire.Number{0, 1, 2, 5, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}

// eventFields is the v1.5+ FlowEvent descriptor; the older generation's
// fields are its fields under legacyNumber.
var eventFields = (&pb.FlowEvent{}).ProtoReflect().Descriptor().Fields()

// fieldOf is the descriptor of field num in generation g, nil if g has none.
func fieldOf(g generation, num protowire.Number) protoreflect.FieldDescriptor {
	if g == genLegacy {
		if int(num) >= len(legacyNumber) || legacyNumber[num] == 0 {
			return nil
		}
		num = legacyNumber[num]
	}
	return eventFields.ByNumber(num)
}

// declared[g][num] is the wire type generation g declares for FlowEvent
// field num, plus one (0: none declared): fieldOf as a table, for the walk
// every event takes.
var declared = func() (t [3][32]int8) {
	for _, g := range []generation{genCurrent, genLegacy} {
		for num := range protowire.Number(len(t[g])) {
			if fd := fieldOf(g, num); fd != nil {
				t[g][num] = int8(wantWireType(fd)) + 1
			}
		}
	}
	return t
}()

// fitsField says whether a field of number num and wire type typ fits
// generation g: mismatches without the words.
func fitsField(g generation, num protowire.Number, typ protowire.Type) bool {
	if num >= protowire.Number(len(declared[g])) || declared[g][num] == 0 {
		return g == genCurrent // a newer agent's addition; never a frozen v1.4 agent's
	}
	return protowire.Type(declared[g][num]-1) == typ
}

// fits says whether raw fits generation g, or why it is no protobuf.
func fits(raw []byte, g generation) (bool, error) {
	ok := true
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeField(raw)
		if n < 0 {
			return false, protowire.ParseError(n)
		}
		raw = raw[n:]
		ok = ok && fitsField(g, num, typ)
	}
	return ok, nil
}

// mismatches lists the fields of raw (one event's bytes, already known to
// parse) that do not fit generation g; empty: it fits.
func mismatches(raw []byte, g generation) []string {
	var out []string
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeField(raw)
		raw = raw[n:]
		fd := fieldOf(g, num)
		switch {
		case fd == nil && g == genLegacy:
			out = append(out, fmt.Sprintf("field %d is not in the numbering", num))
		case fd == nil: // a newer agent's addition
		case typ != wantWireType(fd):
			out = append(out, fmt.Sprintf("field %d (%s) has wire type %s, want %s", num, fd.Name(), wireTypeName(typ), wireTypeName(wantWireType(fd))))
		}
	}
	return out
}

// wireEvent is one event as received: the generation it was read in, and,
// if it fits neither, why, with its bytes (kept with the rejection).
type wireEvent struct {
	gen    generation
	reject error  // nil unless gen is genNone
	raw    []byte // set with reject
}

// decodeEvent reads one event's bytes in the generation they fit into the
// v1.5+ message. An event that fits neither comes back decoded in the closer
// one (for its host_id, best effort) with the reason it is rejected. The
// error is for bytes that are no protobuf at all.
func decodeEvent(raw []byte) (*pb.FlowEvent, wireEvent, error) {
	current, err := fits(raw, genCurrent)
	if err != nil {
		return nil, wireEvent{}, err
	}
	ev := new(pb.FlowEvent)
	if current { // and perhaps legacy too: see above
		return ev, wireEvent{gen: genCurrent}, proto.Unmarshal(raw, ev)
	}
	if legacy, _ := fits(raw, genLegacy); legacy {
		return ev, wireEvent{gen: genLegacy}, proto.Unmarshal(renumberLegacy(raw), ev)
	}
	cur, old := mismatches(raw, genCurrent), mismatches(raw, genLegacy)
	// Named by the generation it is closer to: a v1.5+ agent's one bad
	// field reads as that, not as a dozen v1.4 mismatches.
	near, nearName, far, farName, closer := cur, genCurrent, old, genLegacy, raw
	if len(old) < len(cur) {
		near, nearName, far, farName, closer = old, genLegacy, cur, genCurrent, renumberLegacy(raw)
	}
	_ = proto.Unmarshal(closer, ev) // best effort, for its host_id: it is rejected anyway
	return ev, wireEvent{
		gen: genNone,
		reject: invalid(ReasonBadType, "fits neither wire generation: as %s %s (as %s %d fields mismatch)",
			nearName, strings.Join(near[:min(len(near), 3)], ", "), farName, len(far)),
		raw: append([]byte(nil), raw...),
	}, nil
}

// renumberLegacy rewrites a <= v1.4 event's field numbers to v1.5+ ones.
// Values are copied as they are: the two generations differ only in numbers.
func renumberLegacy(raw []byte) []byte {
	out := make([]byte, 0, len(raw)+4)
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		m := protowire.ConsumeFieldValue(num, typ, raw[n:])
		if int(num) < len(legacyNumber) && legacyNumber[num] != 0 {
			num = legacyNumber[num]
		}
		out = protowire.AppendTag(out, num, typ)
		out = append(out, raw[n:n+m]...)
		raw = raw[n+m:]
	}
	return out
}

// wireEnvelope is a FlowEnvelope as received: every event decoded in its own
// generation into the v1.5+ message. The server receives this type instead
// of pb.FlowEnvelope so that the decision is made on the bytes the agent
// sent (wireCodec).
type wireEnvelope struct {
	env       *pb.FlowEnvelope // events in the v1.5+ shape, one per event sent
	events    []wireEvent      // per event: its generation
	err       error            // not an envelope at all: ends the stream
	intern    *internSlot      // the stream's repeated strings (set before decoding; nil: none)
	wireBytes int              // the message's size as received (rate limits count it)
	// received is the message as received, until decodeReceived: the
	// codec only keeps it, and the envelope is decoded when a
	// preparation slot is its (Server.ticket), so that a decoded
	// envelope, several times its wire size, exists only while it is
	// being prepared, not while it waits for the CPU.
	// It is kept in the transport's own buffers (a frame's size each):
	// one contiguous buffer of the pool would be its next size up, 1 MiB
	// for an envelope of 40 kB.
	received mem.BufferSlice
	// scratch, if set, holds the decoded events (the fast path's arrays):
	// the preparation's (Server.decodeAndPrepare), reused once it is done.
	scratch *scratch
}

// decodeReceived decodes the message the codec kept, and lets it go.
func (w *wireEnvelope) decodeReceived() {
	if w.received == nil {
		return
	}
	buf := w.received.MaterializeToBuffer(mem.DefaultBufferPool())
	w.received.Free()
	w.received = nil
	w.decode(buf.ReadOnlyData())
	buf.Free()
}

// decode fills w from one message's bytes; b is not retained. Plain
// envelopes take the fast path (fastdecode.go); every other one is read by
// decodeSlow.
func (w *wireEnvelope) decode(b []byte) {
	w.wireBytes = len(b)
	if !w.decodeFast(b, w.intern.get()) {
		w.decodeSlow(b)
	}
}

// decodeSlow reads any envelope. The whole envelope is decoded in the v1.5+
// numbering first, as it always was: an event that fits it has none of its
// known fields among the unknown ones (a field whose wire type disagrees
// lands there, raw), so it costs nothing more. Only the others are read
// again from their own bytes.
func (w *wireEnvelope) decodeSlow(b []byte) {
	w.env = &pb.FlowEnvelope{}
	var badUTF8 map[int]error // events rejected alone for invalid UTF-8 (utf8.go)
	if err := proto.Unmarshal(b, w.env); err != nil {
		if badUTF8, _ = decodeEnvelopeLeniently(b, w.env); len(badUTF8) == 0 {
			w.err = fmt.Errorf("not decodable as protobuf (%v)", err)
			return
		}
	}
	if err := knownInUnknown(w.env.ProtoReflect()); err != nil {
		w.err = err
		return
	}
	w.events = make([]wireEvent, len(w.env.Events))
	var raws [][]byte
	for i, ev := range w.env.Events {
		if r := badUTF8[i]; r != nil {
			w.events[i] = wireEvent{gen: genNone, reject: r}
			continue
		}
		if knownInUnknown(ev.ProtoReflect()) == nil {
			w.events[i].gen = genCurrent
			continue
		}
		if raws == nil {
			raws = envelopeEvents(b)
		}
		var err error
		if w.env.Events[i], w.events[i], err = decodeEvent(raws[i]); err != nil {
			w.err = fmt.Errorf("not decodable as protobuf (event %d: %v)", i, err)
			return
		}
	}
}

// envelopeEvents are the bytes of each event of an envelope (slices of b),
// which proto.Unmarshal has already found well-formed.
func envelopeEvents(b []byte) [][]byte {
	var raws [][]byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeField(b)
		field := b[:n]
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			_, _, tn := protowire.ConsumeTag(field)
			raw, _ := protowire.ConsumeBytes(field[tn:])
			raws = append(raws, raw)
		}
	}
	return raws
}

// undecodedJSON keeps an event that fits no generation as the bytes it was,
// for `protoc --decode_raw`.
func undecodedJSON(raw []byte) string {
	return `{"undecoded_base64":"` + base64.StdEncoding.EncodeToString(raw) + `"}`
}

// wireCodec is grpc's proto codec, except that a wireEnvelope keeps the
// message's bytes, decoded later by wireEnvelope.decodeReceived, and bytes
// that are no envelope do not end the stream with Internal ("failed to
// unmarshal", as if the collector were at fault): the server ends it with
// InvalidArgument, naming what is wrong.
type wireCodec struct{ encoding.CodecV2 }

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	w, ok := v.(*wireEnvelope)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	data.Ref() // grpc frees data once this returns
	w.received = data
	return nil
}

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
