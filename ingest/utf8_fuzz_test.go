package ingest

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/flowlog/flowlog/proto/flow"
)

// FuzzDecodeEnvelopeLeniently: any bytes, no panic; what the strict decoder
// takes, the lenient one takes the same way with no event marked bad; what
// it marks bad is exactly the events the strict decoder refuses.
func FuzzDecodeEnvelopeLeniently(f *testing.F) {
	good, _ := proto.Marshal(&pb.FlowEnvelope{Events: []*pb.FlowEvent{{FlowId: "a", HostId: "h", Src: &pb.FlowParticipant{Name: "n"}}}})
	f.Add(good)
	bad := []byte(string(good))
	for i := range bad {
		if bad[i] == 'n' {
			bad[i] = 0xff
		}
	}
	f.Add(bad)
	f.Add(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		var strict, lenient pb.FlowEnvelope
		serr := proto.Unmarshal(b, &strict)
		badEvents, lerr := decodeEnvelopeLeniently(b, &lenient)
		if serr == nil {
			// The same events (the envelope's unknown fields may differ in
			// their varints' encoding: only their field numbers matter).
			same := lerr == nil && len(strict.Events) == len(lenient.Events)
			for i := 0; same && i < len(strict.Events); i++ {
				same = proto.Equal(strict.Events[i], lenient.Events[i])
			}
			if !same || len(badEvents) != 0 {
				t.Fatalf("strict decoding took it; lenient: %v, bad %v, same events %v", lerr, badEvents, same)
			}
			return
		}
		if lerr == nil && len(badEvents) == 0 {
			t.Fatalf("strict decoding failed (%v) but lenient marked no event bad", serr)
		}
	})
}
