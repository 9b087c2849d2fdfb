package ingest

import (
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog/internal/wiretest"
)

// slowDecode is the regular path alone.
func slowDecode(b []byte) wireEnvelope {
	var w wireEnvelope
	w.decodeSlow(b)
	return w
}

// Plain envelopes of either generation, and of both mixed, take the fast
// path and read exactly as the regular path reads them; shared strings are
// one copy.
func TestFastDecodeReadsPlainEnvelopesOfBothGenerations(t *testing.T) {
	t0 := time.Now()
	var evs [][]byte
	for i, gen := range []string{wiretest.GenCurrent, wiretest.GenLegacy, wiretest.GenCurrent, wiretest.GenLegacy} {
		evs = append(evs, wiretest.EncodeEvent(gen, wiretest.FullEvent(string(rune('a'+i)), t0), i >= 2))
	}
	b := wiretest.Envelope(evs...)
	var fast wireEnvelope
	in := new(interner)
	if !fast.decodeFast(b, in) {
		t.Fatal("plain events of both generations did not take the fast path")
	}
	slow := slowDecode(b)
	if len(fast.events) != 4 || !proto.Equal(fast.env, slow.env) {
		t.Fatalf("fast read\n %v\nregular read\n %v", fast.env, slow.env)
	}
	for i := range fast.events {
		if fast.events[i].gen != slow.events[i].gen {
			t.Errorf("event %d read as %s, regular path %s", i, fast.events[i].gen, slow.events[i].gen)
		}
	}
	a, c := fast.env.Events[0].GetHostId(), fast.env.Events[2].GetHostId()
	if a != c || len(a) == 0 || unsafe.StringData(a) != unsafe.StringData(c) {
		t.Errorf("host_id of two events of one stream is not one copy")
	}
}

// FuzzFastDecode: whatever the fast path reads, the regular path reads the
// same, event by event and generation by generation.
func FuzzFastDecode(f *testing.F) {
	t0 := time.Now()
	for _, gen := range []string{wiretest.GenCurrent, wiretest.GenLegacy} {
		for _, zeros := range []bool{false, true} {
			f.Add(wiretest.Envelope(wiretest.EncodeEvent(gen, wiretest.FullEvent("f", t0), zeros)))
		}
	}
	f.Add(benchEnvelope())
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast wireEnvelope
		in := new(interner)
		if !fast.decodeFast(b, in) {
			return
		}
		// Read again with what the first reading left in the interner
		// (the previous event's fields, the participants' bytes): the same.
		var again wireEnvelope
		if !again.decodeFast(b, in) || !proto.Equal(fast.env, again.env) {
			t.Fatalf("a second reading with the stream's interner differs:\n %v\n %v", fast.env, again.env)
		}
		slow := slowDecode(b)
		if slow.err != nil {
			t.Fatalf("fast path read what the regular path refuses (%v)", slow.err)
		}
		if len(fast.events) != len(slow.events) || !proto.Equal(fast.env, slow.env) {
			t.Fatalf("fast read\n %v\nregular read\n %v", fast.env, slow.env)
		}
		for i := range fast.events {
			if fast.events[i].gen != slow.events[i].gen || slow.events[i].reject != nil {
				t.Fatalf("event %d: fast %s, regular %s (%v)", i, fast.events[i].gen, slow.events[i].gen, slow.events[i].reject)
			}
		}
	})
}
