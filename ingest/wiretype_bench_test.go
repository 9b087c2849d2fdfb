package ingest

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog/internal/wiretest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// The decoding cost of an envelope of 500 v1.5+ events with the generation
// rule (the fast path, fastdecode.go), the regular path alone, and a plain
// Unmarshal; compare user time and allocations, this machine's wall clock
// is shared.
func benchEnvelope() []byte {
	var b []byte
	for i := range 500 {
		ev := wiretest.EncodeEvent(wiretest.GenCurrent, wiretest.FullEvent("bench-"+string(rune('a'+i%26)), time.Now()), false)
		b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), ev)
	}
	return b
}

func BenchmarkDecodeEnvelopeByGeneration(b *testing.B) {
	raw := benchEnvelope()
	b.SetBytes(int64(len(raw)))
	in := new(internSlot) // as a stream with envelopes in flight has
	for b.Loop() {
		w := wireEnvelope{intern: in}
		w.decode(raw)
	}
}

// The regular path alone (what an envelope that is not plain costs).
func BenchmarkDecodeEnvelopeSlowPath(b *testing.B) {
	raw := benchEnvelope()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var w wireEnvelope
		w.decodeSlow(raw)
	}
}

func BenchmarkDecodeEnvelopeProtoOnly(b *testing.B) {
	raw := benchEnvelope()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var env pb.FlowEnvelope
		if err := proto.Unmarshal(raw, &env); err != nil {
			b.Fatal(err)
		}
	}
}
