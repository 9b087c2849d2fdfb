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

	"github.com/flowlog/flowlog/internal/wiretest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

func TestHandEncodedVectorsOfBothGenerations(t *testing.T) {
	now := time.Now()
	start := wiretest.FullEvent("s", now)
	start["type"], start["end_ts_ms"] = uint64(1), int64(0)
	for _, f := range []wiretest.Fields{wiretest.FullEvent("d", now), start} {
		for _, gen := range []string{wiretest.GenCurrent, wiretest.GenLegacy} {
			for _, zeros := range []bool{false, true} {
				ev, we, err := decodeEvent(wiretest.EncodeEvent(gen, f, zeros))
				if err != nil || we.reject != nil || we.gen.String() != gen {
					t.Fatalf("%s (explicit zeros %v): read as %s, %v %v", gen, zeros, we.gen, err, we.reject)
				}
				if want := wiretest.WantEvent(gen, f); !proto.Equal(ev, want) {
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
// legacy wiretest.Numbering's network_id at 3 and host_id at 4.
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
		f := wiretest.FullEvent("z", now)
		if rng.IntN(2) == 0 {
			f["type"], f["end_ts_ms"] = uint64(1), int64(0)
		}
		for _, fd := range wiretest.Numbering {
			switch rng.IntN(8) {
			case 0: // zero value
				switch fd.Kind {
				case 'v':
					f[fd.Name] = uint64(0)
				case 's':
					f[fd.Name] = ""
				case 'p':
					f[fd.Name] = wiretest.Part{IP: f[fd.Name].(wiretest.Part).IP}
				}
			case 1: // absent
				delete(f, fd.Name)
			}
		}
		gen := []string{wiretest.GenCurrent, wiretest.GenLegacy}[i%2]
		raw := wiretest.EncodeEvent(gen, f, rng.IntN(2) == 0)
		ownReading := raw
		if gen == wiretest.GenLegacy {
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
	if valid[wiretest.GenCurrent] < 100 || valid[wiretest.GenLegacy] < 100 {
		t.Fatalf("too few valid events drawn to mean anything: %v", valid)
	}
}

// An event that fits neither is rejected, naming the closer generation's
// mismatches; bytes that are no protobuf are an error of the envelope.
func TestEventFittingNeitherGeneration(t *testing.T) {
	now := time.Now()
	cur := wiretest.EncodeEvent(wiretest.GenCurrent, wiretest.FullEvent("x", now), false)
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
