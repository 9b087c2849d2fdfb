// Package wiretest hand-encodes FlowEvents of both Netmaker wire
// generations, written from the two numberings as facts (not derived from
// ingest's decoder tables), for the tests of the decoder (ingest) and of
// the whole collector with stock agents' traffic (e2e). Test code only.
package wiretest

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
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

// Numbering is each field's name, v1.5+ number, <= v1.4 number (0: absent)
// and kind.
var Numbering = []struct {
	Name     string
	Cur, Old protowire.Number
	Kind     byte // 'v' varint, 's' string, 'p' participant
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
	for _, fd := range Numbering {
		num := fd.Cur
		if gen == GenLegacy {
			num = fd.Old
		}
		v, ok := f[fd.Name]
		if num == 0 || !ok {
			continue
		}
		switch fd.Kind {
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

// Envelope hand-encodes a FlowEnvelope of already encoded events (field 1,
// in both generations).
func Envelope(events ...[]byte) []byte {
	var b []byte
	for _, e := range events {
		b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), e)
	}
	return b
}

// RawMsg is a message sent as the bytes it is (RawCodec).
type RawMsg []byte

// RawCodec sends RawMsg bytes as they are and anything else as protobuf:
// a stream opened with grpc.ForceCodecV2(RawCodec{}) sends hand-encoded
// envelopes and reads the collector's FlowResponses as usual.
type RawCodec struct{}

var _ encoding.CodecV2 = RawCodec{}

func (RawCodec) Name() string { return "proto" }

func (RawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(RawMsg); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, errors.New("not a proto message")
	}
	b, err := proto.Marshal(m)
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (RawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// StartsAndOneInvalid are n valid START events of host "h" in network
// "metrics" and one invalid one (protocol 300): what the metrics tests count.
func StartsAndOneInvalid(prefix string, n int) []*pb.FlowEvent {
	now := time.Now().UnixMilli()
	evs := make([]*pb.FlowEvent, 0, n+1)
	for i := range n {
		evs = append(evs, &pb.FlowEvent{
			Type: pb.EventType_EVENT_START, FlowId: fmt.Sprintf("%s-%d", prefix, i), HostId: "h", NetworkId: "metrics",
			Protocol: 6, SrcPort: 40000, DstPort: 443,
			Src:       &pb.FlowParticipant{Ip: "10.7.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE},
			Dst:       &pb.FlowParticipant{Ip: "10.7.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE},
			StartTsMs: now, Version: now,
		})
	}
	bad := &pb.FlowEvent{Type: pb.EventType_EVENT_START, FlowId: prefix + "-bad", HostId: "h", NetworkId: "metrics", Protocol: 300}
	return append(evs, bad)
}
