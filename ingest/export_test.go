package ingest

import pb "github.com/flowlog/flowlog/proto/flow"

// DecodeWireEvent is decodeEvent for the external tests: the event read from
// one event's bytes, the generation it was read in ("v1.5+", "v1.4",
// "neither"), and why it fits neither (or why the bytes are no protobuf).
func DecodeWireEvent(raw []byte) (*pb.FlowEvent, string, error) {
	ev, we, err := decodeEvent(raw)
	if err != nil {
		return nil, "", err
	}
	return ev, we.gen.String(), we.reject
}

// PreparationsWaiting is how many envelopes wait for a preparation slot.
func (s *Server) PreparationsWaiting() int64 { return s.prep.waiting.Load() }
