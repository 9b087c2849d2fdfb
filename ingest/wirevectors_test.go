package ingest

// Hand-encoded FlowEvents of both wire generations, written from the two
// numberings as facts (not derived from wiretype.go's tables), and the rule
// that tells them apart checked on them, zero-valued and omitted fields
// included. The encoder is exported to the engine test (generations_test.go).

import (
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/flowlog/flowlog/proto/flow"
)

// Fields are an event's values by .proto field name: uint64 or int64 for
// numbers and enums, string, or Part for src and dst.
type Fields map[string]any

// Part is a FlowParticipant's values.
type Part struct {
	IP   string
	Type uint64
	ID   string
	Name string
}

// Gen names of the two numberings (the generation label values).
const (
	GenCurrent = "v1.5+"
	GenLegacy  = "v1.4"
)

// numbering: field name, v1.5+ number, <= v1.4 number (0: absent), kind.
var numbering = []struct {
	name     string
	cur, old protowire.Number
	kind     byte // 'v' varint, 's' string, 'p' participant
}{
	{"type", 1, 1, 'v'}, {"flow_id", 2, 2, 's'}, {"host_id", 3, 4, 's'}, {"host_name", 4, 0, 's'},
	{"network_id", 5, 3, 's'}, {"protocol", 6, 5, 'v'}, {"src_port", 7, 6, 'v'}, {"dst_port", 8, 7, 'v'},
	{"icmp_type", 9, 8, 'v'}, {"icmp_code", 10, 9, 'v'}, {"direction", 11, 10, 'v'}, {"src", 12, 11, 'p'},
	{"dst", 13, 12, 'p'}, {"start_ts_ms", 14, 13, 'v'}, {"end_ts_ms", 15, 14, 'v'}, {"bytes_sent", 16, 15, 'v'},
	{"bytes_recv", 17, 16, 'v'}, {"packets_sent", 18, 17, 'v'}, {"packets_recv", 19, 18, 'v'},
	{"status", 20, 19, 'v'}, {"version", 21, 20, 'v'},
}

func varintOf(v any) uint64 {
	switch x := v.(type) {
	case int64:
		return uint64(x)
	case uint64:
		return x
	case int:
		return uint64(x)
	}
	panic("not a number")
}

// EncodeEvent hand-encodes f in generation gen, in field-number order. Zero
// values are omitted, as proto3 encoders do, unless explicitZeros (also
// legal on the wire). Fields the generation lacks are left out.
func EncodeEvent(gen string, f Fields, explicitZeros bool) []byte {
	var b []byte
	for _, fd := range numbering {
		num := fd.cur
		if gen == GenLegacy {
			num = fd.old
		}
		v, ok := f[fd.name]
		if num == 0 || !ok {
			continue
		}
		switch fd.kind {
		case 'v':
			if x := varintOf(v); x != 0 || explicitZeros {
				b = protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), x)
			}
		case 's':
			if s := v.(string); s != "" || explicitZeros {
				b = protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
			}
		case 'p': // a set message is always encoded, even empty
			b = protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), encodePart(gen, v.(Part), explicitZeros))
		}
	}
	return b
}

func encodePart(gen string, p Part, explicitZeros bool) []byte {
	var b []byte
	str := func(num protowire.Number, s string) {
		if s != "" || explicitZeros {
			b = protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
		}
	}
	str(1, p.IP)
	if p.Type != 0 || explicitZeros {
		b = protowire.AppendVarint(protowire.AppendTag(b, 2, protowire.VarintType), p.Type)
	}
	str(3, p.ID)
	if gen == GenCurrent {
		str(4, p.Name)
	}
	return b
}

// WantEvent is the v1.5+ message f must decode to when sent in gen (the
// older generation has no host_name and no participant names).
func WantEvent(gen string, f Fields) *pb.FlowEvent {
	ev := &pb.FlowEvent{}
	str := func(k string) string { s, _ := f[k].(string); return s }
	num := func(k string) uint64 {
		if v, ok := f[k]; ok {
			return varintOf(v)
		}
		return 0
	}
	part := func(k string) *pb.FlowParticipant {
		p, ok := f[k].(Part)
		if !ok {
			return nil
		}
		fp := &pb.FlowParticipant{Ip: p.IP, Type: pb.ParticipantType(p.Type), Id: p.ID, Name: p.Name}
		if gen == GenLegacy {
			fp.Name = ""
		}
		return fp
	}
	ev.Type = pb.EventType(num("type"))
	ev.FlowId, ev.HostId, ev.NetworkId = str("flow_id"), str("host_id"), str("network_id")
	if gen == GenCurrent {
		ev.HostName = str("host_name")
	}
	ev.Protocol, ev.SrcPort, ev.DstPort = uint32(num("protocol")), uint32(num("src_port")), uint32(num("dst_port"))
	ev.IcmpType, ev.IcmpCode, ev.Direction = uint32(num("icmp_type")), uint32(num("icmp_code")), pb.Direction(num("direction"))
	ev.Src, ev.Dst = part("src"), part("dst")
	ev.StartTsMs, ev.EndTsMs = int64(num("start_ts_ms")), int64(num("end_ts_ms"))
	ev.BytesSent, ev.BytesRecv = num("bytes_sent"), num("bytes_recv")
	ev.PacketsSent, ev.PacketsRecv = num("packets_sent"), num("packets_recv")
	ev.Status, ev.Version = uint32(num("status")), int64(num("version"))
	return ev
}

// FullEvent has every field set to a value no other field has, so a field
// read under the wrong number shows.
func FullEvent(flowID string, now time.Time) Fields {
	ms := now.UnixMilli()
	return Fields{
		"type": uint64(2), "flow_id": flowID, "host_id": "host-B", "host_name": "name-C", "network_id": "net-A",
		"protocol": uint64(6), "src_port": uint64(40001), "dst_port": uint64(443), "icmp_type": uint64(3),
		"icmp_code": uint64(4), "direction": uint64(2),
		"src":         Part{IP: "10.1.0.1", Type: 1, ID: "src-id", Name: "src-name"},
		"dst":         Part{IP: "fd00::2", Type: 2, ID: "dst-id", Name: "dst-name"},
		"start_ts_ms": ms - 5000, "end_ts_ms": ms - 1000, "bytes_sent": uint64(1111), "bytes_recv": uint64(2222),
		"packets_sent": uint64(33), "packets_recv": uint64(44), "status": uint64(0x19e), "version": ms + 7,
	}
}

func TestHandEncodedVectorsOfBothGenerations(t *testing.T) {
	now := time.Now()
	start := FullEvent("s", now)
	start["type"], start["end_ts_ms"] = uint64(1), int64(0)
	for _, f := range []Fields{FullEvent("d", now), start} {
		for _, gen := range []string{GenCurrent, GenLegacy} {
			for _, zeros := range []bool{false, true} {
				ev, we, err := decodeEvent(EncodeEvent(gen, f, zeros))
				if err != nil || we.reject != nil || we.gen.String() != gen {
					t.Fatalf("%s (explicit zeros %v): read as %s, %v %v", gen, zeros, we.gen, err, we.reject)
				}
				if want := WantEvent(gen, f); !proto.Equal(ev, want) {
					t.Fatalf("%s: decoded\n%v\nwant\n%v", gen, ev, want)
				}
				if _, err := Convert(ev, now); err != nil {
					t.Fatalf("%s: %v", gen, err)
				}
			}
		}
	}
}

// A literal vector, bytes as an old agent puts them on the wire: the
// legacy numbering's network_id at 3 and host_id at 4.
func TestLiteralLegacyVector(t *testing.T) {
	raw := []byte{
		0x08, 0x01, // 1 type = START
		0x12, 0x01, 'f', // 2 flow_id
		0x1a, 0x01, 'n', // 3 network_id
		0x22, 0x01, 'h', // 4 host_id
		0x28, 0x11, // 5 protocol = 17
		0x5a, 0x0a, 0x0a, 0x08, '1', '0', '.', '0', '.', '0', '.', '1', // 11 src {ip}
		0x62, 0x0a, 0x0a, 0x08, '1', '0', '.', '0', '.', '0', '.', '2', // 12 dst {ip}
		0x68, 0x80, 0x98, 0xa3, 0xe7, 0xac, 0x33, // 13 start_ts_ms = 1764374400000 (2025-11-29)
		0xa0, 0x01, 0x05, // 20 version = 5
	}
	ev, we, err := decodeEvent(raw)
	if err != nil || we.gen != genLegacy {
		t.Fatalf("read as %s: %v", we.gen, err)
	}
	e, err := Convert(ev, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if e.NetworkID != "n" || e.HostID != "h" || e.Protocol != 17 || e.Src.IP.String() != "10.0.0.1" ||
		e.Dst.IP.String() != "10.0.0.2" || e.Start.UnixMilli() != 1764374400000 || e.Version != 5 {
		t.Fatalf("decoded %+v", e)
	}
}

// The rule on every shape zero values and omissions can give: events of
// both generations with random fields zeroed (omitted, or sent as explicit
// zeros) and random fields dropped. A valid event (one its own generation's
// reading accepts) is always read in its own generation; an event read in
// neither is valid in neither; an event that fits both is invalid in both.
func TestGenerationRuleOnZeroAndOmittedFields(t *testing.T) {
	now := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	valid := map[string]int{}
	for i := range 20000 {
		f := FullEvent("z", now)
		if rng.IntN(2) == 0 {
			f["type"], f["end_ts_ms"] = uint64(1), int64(0)
		}
		for _, fd := range numbering {
			switch rng.IntN(8) {
			case 0: // zero value
				switch fd.kind {
				case 'v':
					f[fd.name] = uint64(0)
				case 's':
					f[fd.name] = ""
				case 'p':
					f[fd.name] = Part{IP: f[fd.name].(Part).IP}
				}
			case 1: // absent
				delete(f, fd.name)
			}
		}
		gen := []string{GenCurrent, GenLegacy}[i%2]
		raw := EncodeEvent(gen, f, rng.IntN(2) == 0)
		ownReading := raw
		if gen == GenLegacy {
			ownReading = renumberLegacy(raw)
		}
		var own pb.FlowEvent
		if err := proto.Unmarshal(ownReading, &own); err != nil {
			t.Fatal(err)
		}
		_, ownErr := Convert(&own, now)
		ev, we, err := decodeEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		// The envelope path (one Unmarshal, then only the misfits again)
		// reads it the same way.
		var w wireEnvelope
		w.decode(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), raw))
		if w.err != nil || w.events[0].gen != we.gen || !proto.Equal(w.env.Events[0], ev) {
			t.Fatalf("in an envelope: %v %s %v; alone: %s %v", w.err, w.events[0].gen, w.env.Events[0], we.gen, ev)
		}
		fitsCur, fitsOld := len(mismatches(raw, genCurrent)) == 0, len(mismatches(raw, genLegacy)) == 0
		switch {
		case ownErr == nil && we.gen.String() != gen:
			t.Fatalf("valid %s event read as %s: %v", gen, we.gen, f)
		case ownErr == nil && !proto.Equal(ev, &own):
			t.Fatalf("valid %s event decoded as %v, want %v", gen, ev, &own)
		case fitsCur && fitsOld:
			var old pb.FlowEvent
			if err := proto.Unmarshal(renumberLegacy(raw), &old); err != nil {
				t.Fatal(err)
			}
			_, errCur := Convert(ev, now)
			_, errOld := Convert(&old, now)
			if errCur == nil || errOld == nil {
				t.Fatalf("fits both and valid as one (%v / %v): %v", errCur, errOld, f)
			}
		case we.gen == genNone && we.reject == nil:
			t.Fatalf("read as neither without a reason: %v", f)
		}
		if ownErr == nil {
			valid[gen]++
		}
	}
	if valid[GenCurrent] < 100 || valid[GenLegacy] < 100 {
		t.Fatalf("too few valid events drawn to mean anything: %v", valid)
	}
}

// An event that fits neither is rejected, naming the closer generation's
// mismatches; bytes that are no protobuf are an error of the envelope.
func TestEventFittingNeitherGeneration(t *testing.T) {
	now := time.Now()
	cur := EncodeEvent(GenCurrent, FullEvent("x", now), false)
	// v1.5+ bytes plus field 13 as a varint (a v1.4 start_ts_ms): 13 is dst
	// (a message) in v1.5+, and 5 is network_id (a string) there.
	mixed := protowire.AppendVarint(protowire.AppendTag(cur, 13, protowire.VarintType), 5)
	_, we, err := decodeEvent(mixed)
	if err != nil || we.gen != genNone || we.reject == nil || ReasonClass(we.reject) != ReasonBadType {
		t.Fatalf("got %s %v %v", we.gen, we.reject, err)
	}
	want := "fits neither wire generation: as v1.5+ field 13 (dst) has wire type varint, want length-delimited (as v1.4 "
	if got := we.reject.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Fatalf("reason %q, want it to start with %q", got, want)
	}
	if _, _, err := decodeEvent([]byte{0xff}); err == nil {
		t.Fatal("garbage bytes decoded")
	}
}
