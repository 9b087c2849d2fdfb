package ingest

import (
	"sync/atomic"

	pb "github.com/flowlog/flowlog/proto/flow"
)

// interner makes the repeated strings of one stream's events share one copy:
// an agent's network, host and participants recur in nearly every event.
// Events wait for their commit for up to a second, so without this the live
// heap holds hundreds of thousands of copies of a few hundred strings for
// the garbage collector to mark (the bench: the decoded strings were a fifth
// of the collector's live heap), each one allocated. Only the goroutine
// decoding the stream's envelope uses it (decodeFast; a stream's envelopes
// are decoded one after the other); it forgets everything when
// full, so a stream of ever-new names costs a bounded map. A nil interner
// interns nothing. A stream holds it in an internSlot only while its
// events wait for their commit.
type interner struct {
	m map[string]string
	// last holds the previous event's host_id, host_name and network_id:
	// an agent sends the same ones in every event, and comparing with the
	// last is cheaper than hashing into m (interning was a tenth of the
	// decode's time under the bench).
	last [lastFields]string
	// parts maps a participant's encoded bytes to what they read as: the
	// same endpoints recur, and one lookup replaces three, plus the
	// UTF-8 checks and the parse.
	parts map[string]participantFields
}

// The fields whose previous value an interner keeps (interner.field).
const (
	lastHostID = iota
	lastHostName
	lastNetworkID
	lastFields
)

// participantFields is a FlowParticipant as read (interner.parts).
type participantFields struct {
	ip, id, name string
	typ          pb.ParticipantType
}

const internMax = 4096

// field returns b, the value of field f, as a string: the previous event's
// if it is the same, else bytes'.
func (in *interner) field(f int, b []byte) string {
	if in == nil {
		return string(b)
	}
	if in.last[f] == string(b) { // no allocation to compare
		return in.last[f]
	}
	s := in.bytes(b)
	in.last[f] = s
	return s
}

// participant returns what raw, a participant's bytes, read as before.
func (in *interner) participant(raw []byte) (participantFields, bool) {
	if in == nil {
		return participantFields{}, false
	}
	p, ok := in.parts[string(raw)]
	return p, ok
}

// rememberParticipant records what raw read as.
func (in *interner) rememberParticipant(raw []byte, p participantFields) {
	if in == nil {
		return
	}
	if in.parts == nil || len(in.parts) >= internMax {
		in.parts = make(map[string]participantFields, 64)
	}
	in.parts[string(raw)] = p
}

// bytes returns b as a string, the stream's earlier copy if it has one.
func (in *interner) bytes(b []byte) string {
	if in == nil || len(b) == 0 {
		return string(b)
	}
	if v, ok := in.m[string(b)]; ok { // no allocation to look up
		return v
	}
	if in.m == nil || len(in.m) >= internMax {
		in.m = make(map[string]string, 64)
	}
	s := string(b)
	in.m[s] = s
	return s
}

// internSlot holds a stream's interner while the stream is busy. Between
// two flushes an agent's map of strings (12 kB after one 100-event envelope)
// would only cost memory: 120 MB for 10,000 agents idle between flushes.
// get is the decoding goroutine's, forget the ack sender's once every
// envelope has been answered for a while (internIdle); a decode running
// meanwhile keeps using the map it got, the next one starts a new map.
type internSlot struct{ p atomic.Pointer[interner] }

// get returns the stream's interner, a new one if it has none (nil slot:
// nil, interning nothing).
func (s *internSlot) get() *interner {
	if s == nil {
		return nil
	}
	in := s.p.Load()
	if in == nil {
		in = new(interner)
		s.p.Store(in)
	}
	return in
}

func (s *internSlot) forget() { s.p.Store(nil) }
