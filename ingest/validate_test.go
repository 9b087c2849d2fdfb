package ingest

import (
	"strings"
	"testing"
	"time"

	pb "github.com/flowlog/flowlog/proto/flow"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func goodEvent() *pb.FlowEvent {
	return &pb.FlowEvent{
		Type: pb.EventType_EVENT_DESTROY, FlowId: "f", HostId: "h", HostName: "host", NetworkId: "n",
		Protocol: 6, SrcPort: 1234, DstPort: 443, Direction: pb.Direction_DIR_EGRESS,
		Src:       &pb.FlowParticipant{Ip: "10.0.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n1", Name: "a"},
		Dst:       &pb.FlowParticipant{Ip: "2001:db8::1", Type: pb.ParticipantType_PARTICIPANT_EXTERNAL},
		StartTsMs: now.Add(-time.Minute).UnixMilli(), EndTsMs: now.UnixMilli(), BytesSent: 1000, PacketsSent: 10, Version: 5,
	}
}

func TestConvertAcceptsAValidEvent(t *testing.T) {
	e, err := Convert(goodEvent(), now)
	if err != nil {
		t.Fatal(err)
	}
	if e.Src.IP.String() != "10.0.0.1" || e.Dst.IP.String() != "2001:db8::1" || !e.End.Equal(now) || e.Version != 5 || e.DstPort != 443 {
		t.Fatalf("converted wrongly: %+v", e)
	}
}

func TestConvertRejectsWithAReason(t *testing.T) {
	long := strings.Repeat("x", 257)
	cases := []struct {
		name   string
		mutate func(*pb.FlowEvent)
		reason string
	}{
		{"no flow id", func(e *pb.FlowEvent) { e.FlowId = "" }, "missing flow_id"},
		{"no host id", func(e *pb.FlowEvent) { e.HostId = "" }, "missing host_id"},
		{"no network id", func(e *pb.FlowEvent) { e.NetworkId = "" }, "missing network_id"},
		{"unspecified type", func(e *pb.FlowEvent) { e.Type = 0 }, "event type is unspecified"},
		{"unknown type", func(e *pb.FlowEvent) { e.Type = 9 }, "unknown event type 9"},
		{"protocol", func(e *pb.FlowEvent) { e.Protocol = 256 }, "protocol 256 > 255"},
		{"src port", func(e *pb.FlowEvent) { e.SrcPort = 70000 }, "src_port 70000 > 65535"},
		{"dst port", func(e *pb.FlowEvent) { e.DstPort = 65536 }, "dst_port 65536 > 65535"},
		{"icmp type", func(e *pb.FlowEvent) { e.IcmpType = 300 }, "icmp_type 300 > 255"},
		{"icmp code", func(e *pb.FlowEvent) { e.IcmpCode = 256 }, "icmp_code 256 > 255"},
		{"direction", func(e *pb.FlowEvent) { e.Direction = 7 }, "unknown direction 7"},
		{"zero version", func(e *pb.FlowEvent) { e.Version = 0 }, "version 0 must be in 1..253402300799999"},
		{"negative version", func(e *pb.FlowEvent) { e.Version = -3 }, "version -3 must be in 1.."},
		// A microsecond clock: year 58,000 as milliseconds.
		{"version past year 9999", func(e *pb.FlowEvent) { e.Version = now.UnixMicro() }, "(milliseconds up to 9999-12-31)"},
		{"year-1 start on a START", func(e *pb.FlowEvent) { e.Type, e.EndTsMs, e.StartTsMs = pb.EventType_EVENT_START, 0, -62135596800000 },
			"start_ts_ms -62135596800000 is before 2000-01-01"},
		{"bytes near 2^64", func(e *pb.FlowEvent) { e.BytesRecv, e.PacketsRecv = 1<<64-1, 1<<50 }, "bytes_recv 18446744073709551615 or packets_recv"},
		{"packets near 2^64", func(e *pb.FlowEvent) { e.BytesSent, e.PacketsSent = 1<<62, 1<<64-5 }, "exceeds 4611686018427387904"},
		{"bytes without packets", func(e *pb.FlowEvent) { e.PacketsSent = 0 }, "bytes_sent 1000 with packets_sent 0"},
		{"bytes a packet beyond GSO", func(e *pb.FlowEvent) { e.BytesSent, e.PacketsSent = 524281*3, 3 },
			"more than 524280 bytes a packet"},
		{"packets smaller than an IP header", func(e *pb.FlowEvent) { e.BytesRecv, e.PacketsRecv = 19, 1 },
			"less than 20 bytes a packet"},
		{"faster than any link", func(e *pb.FlowEvent) { e.BytesSent, e.PacketsSent = 13_000_000_000_000, 13_000_000_000_000/1000 },
			"in 1m1s is faster than 1.6 Tbit/s"},
		{"end before start", func(e *pb.FlowEvent) { e.EndTsMs = e.StartTsMs - 1 }, "DESTROY ends before it starts"},
		{"bad src ip", func(e *pb.FlowEvent) { e.Src.Ip = "10.0.0.300" }, `src.ip "10.0.0.300" is not an IP address`},
		{"empty dst ip", func(e *pb.FlowEvent) { e.Dst.Ip = "" }, `dst.ip "" is not an IP address`},
		{"missing src", func(e *pb.FlowEvent) { e.Src = nil }, "missing src"},
		{"unknown participant", func(e *pb.FlowEvent) { e.Dst.Type = 42 }, "dst.type 42 is unknown"},
		{"ancient start", func(e *pb.FlowEvent) { e.StartTsMs = 5 }, "start_ts_ms 5 is before 2000-01-01"},
		{"future end", func(e *pb.FlowEvent) { e.EndTsMs = now.Add(48 * time.Hour).UnixMilli() }, "in the future"},
		{"zero end on destroy", func(e *pb.FlowEvent) { e.EndTsMs = 0 }, "end_ts_ms 0 is before 2000-01-01"},
		{"long flow id", func(e *pb.FlowEvent) { e.FlowId = long }, "flow_id is 257 bytes, longer than 256"},
		{"long host name", func(e *pb.FlowEvent) { e.HostName = long }, "host_name is 257 bytes"},
		{"long participant name", func(e *pb.FlowEvent) { e.Src.Name = long }, "src.name is 257 bytes"},
	}
	for _, tc := range cases {
		ev := goodEvent()
		tc.mutate(ev)
		_, err := Convert(ev, now)
		if err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: want reason %q, got %v", tc.name, tc.reason, err)
		}
	}
}

// What links can produce passes: a minute at 100 Gbit/s of 64 KiB GSO
// packets each way, a 524280-byte BIG TCP packet, 20-byte packets.
func TestConvertAcceptsCountersLinksProduce(t *testing.T) {
	for _, c := range [][4]uint64{
		{750_000_000_000, 750_000_000_000 / 65536, 750_000_000_000, 750_000_000_000 / 65536},
		{524280, 1, 20, 1},
		{0, 0, 40, 2},
	} {
		ev := goodEvent()
		ev.BytesSent, ev.PacketsSent, ev.BytesRecv, ev.PacketsRecv = c[0], c[1], c[2], c[3]
		if _, err := Convert(ev, now); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
}

// A stock agent's DESTROY of a connection opened before conntrack
// timestamps were on carries year 1 as start and end: accepted, its start
// left to the store (the START's), its end the receive time, marked
// approximate.
func TestConvertAcceptsADestroyWithoutKernelTimestamps(t *testing.T) {
	ev := goodEvent()
	ev.StartTsMs, ev.EndTsMs, ev.HostName = -62135596800000, -62135596800000, ""
	e, err := Convert(ev, now)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Start.IsZero() || !e.End.Equal(now) || !e.EndApprox {
		t.Fatalf("start %s end %s approx %v", e.Start, e.End, e.EndApprox)
	}
}

func TestStartMayHaveNoEnd(t *testing.T) {
	ev := goodEvent()
	ev.Type, ev.EndTsMs = pb.EventType_EVENT_START, 0
	e, err := Convert(ev, now)
	if err != nil || !e.End.IsZero() {
		t.Fatalf("START without end: %+v, %v", e, err)
	}
}
