package ingest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog/internal/wiretest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// FuzzWireGeneration feeds arbitrary event bytes to the generation rule:
// it never panics, an event it reads is read as the bytes say in that
// generation, and an event valid in the generation it was read in is never
// also valid in the other reading (the two can never be confused).
func FuzzWireGeneration(f *testing.F) {
	t0 := time.Now()
	for _, gen := range []string{wiretest.GenCurrent, wiretest.GenLegacy} {
		f.Add(wiretest.EncodeEvent(gen, wiretest.FullEvent("f", t0), false))
		f.Add(wiretest.EncodeEvent(gen, wiretest.FullEvent("f", t0), true))
	}
	f.Add([]byte{0x08, 0x01})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, we, err := decodeEvent(raw)
		if err != nil {
			return
		}
		var w wireEnvelope
		w.decode(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), raw))
		// An event that fits neither generation is kept as its raw bytes,
		// so what a decoder made of it does not matter (the envelope's
		// lenient decoding may keep more of it than the event's own).
		if w.err == nil && (w.events[0].gen != we.gen || we.gen != genNone && !proto.Equal(w.env.Events[0], ev)) {
			t.Fatalf("in an envelope read as %s %v, alone as %s %v", w.events[0].gen, w.env.Events[0], we.gen, ev)
		}
		var cur, old pb.FlowEvent
		curErr := proto.Unmarshal(raw, &cur)
		oldErr := proto.Unmarshal(renumberLegacy(raw), &old)
		switch we.gen {
		case genCurrent:
			if curErr != nil || !proto.Equal(ev, &cur) {
				t.Fatalf("read as v1.5+ but decoded %v, want %v (%v)", ev, &cur, curErr)
			}
		case genLegacy:
			if oldErr != nil || !proto.Equal(ev, &old) {
				t.Fatalf("read as v1.4 but decoded %v, want %v (%v)", ev, &old, oldErr)
			}
		default:
			if we.reject == nil {
				t.Fatal("read as neither without a reason")
			}
			return
		}
		_, errCur := Convert(&cur, now)
		_, errOld := Convert(&old, now)
		if curErr == nil && oldErr == nil && errCur == nil && errOld == nil {
			t.Fatalf("valid in both readings (read as %s): %x", we.gen, raw)
		}
	})
}
