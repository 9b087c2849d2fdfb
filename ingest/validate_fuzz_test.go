package ingest

import (
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// FuzzConvert feeds arbitrary wire bytes through decoding and validation:
// Convert must never panic, and whatever it accepts must satisfy the
// invariants the store relies on.
func FuzzConvert(f *testing.F) {
	noTS := goodEvent()
	noTS.StartTsMs, noTS.EndTsMs = noKernelTimestampMS, noKernelTimestampMS
	huge := goodEvent()
	huge.BytesSent, huge.PacketsSent = 1<<64-1, 1<<63
	for _, ev := range []*pb.FlowEvent{goodEvent(), {}, {Type: 7, Protocol: 300}, noTS, huge} {
		b, _ := proto.Marshal(ev)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev pb.FlowEvent
		if proto.Unmarshal(b, &ev) != nil {
			return
		}
		e, err := Convert(&ev, now)
		if err != nil {
			if err.Error() == "" || !utf8.ValidString(err.Error()) {
				t.Fatalf("unreadable reason %q", err)
			}
			return
		}
		if e.FlowID == "" || e.HostID == "" || e.NetworkID == "" || e.Version <= 0 {
			t.Fatalf("accepted an event without identity: %+v", e)
		}
		if len(e.FlowID) > maxIDLen || len(e.Src.Name) > maxIDLen || len(e.Dst.ID) > maxIDLen {
			t.Fatalf("accepted an over-long string")
		}
		if !e.Src.IP.IsValid() || !e.Dst.IP.IsValid() {
			t.Fatalf("accepted an invalid IP: %+v", e)
		}
		// A start is in range, or absent on a DESTROY without kernel
		// timestamps (the store gives it its START's).
		if e.Start.IsZero() && e.Type != 2 || !e.Start.IsZero() && (e.Start.Before(time.UnixMilli(minTimestampMS)) || e.Start.After(now.Add(maxFutureSkew))) {
			t.Fatalf("accepted start %s", e.Start)
		}
		if e.Type == 2 && !e.Start.IsZero() && e.End.Before(e.Start) {
			t.Fatalf("accepted a DESTROY ending before its start")
		}
		if e.Version > flowlog.MaxVersion {
			t.Fatalf("accepted version %d, past year 9999", e.Version)
		}
		// Counters a row can sum without wrapping, and that a link could
		// carry: bytes only with packets.
		if e.BytesSent > maxCounter || e.BytesRecv > maxCounter || e.PacketsSent > maxCounter || e.PacketsRecv > maxCounter ||
			e.BytesSent > 0 && e.PacketsSent == 0 || e.BytesRecv > 0 && e.PacketsRecv == 0 {
			t.Fatalf("accepted counters %d/%d bytes, %d/%d packets", e.BytesSent, e.BytesRecv, e.PacketsSent, e.PacketsRecv)
		}
	})
}
