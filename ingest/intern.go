package ingest

import "github.com/flowlog/flowlog"

// interner makes the repeated strings of one stream's events share one copy:
// an agent's network, host and participants recur in nearly every event,
// and the decoder allocates each anew. Events wait for their commit for up
// to a second, so without this the live heap holds hundreds of thousands of
// copies of a few hundred strings for the garbage collector to mark (the
// bench: the decoded strings were a fifth of the collector's live heap).
// Only the stream's receiving goroutine uses it; it forgets everything when
// full, so a stream of ever-new names costs a bounded map.
type interner struct {
	m map[string]string
}

const internMax = 4096

func (in *interner) str(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in.m[s]; ok {
		return v
	}
	if in.m == nil || len(in.m) >= internMax {
		in.m = make(map[string]string, 64)
	}
	in.m[s] = s
	return s
}

// event interns e's repeated strings (not flow_id: unique per flow).
func (in *interner) event(e *flowlog.Event) {
	e.NetworkID, e.HostID, e.HostName = in.str(e.NetworkID), in.str(e.HostID), in.str(e.HostName)
	for _, p := range []*flowlog.Participant{&e.Src, &e.Dst} {
		p.ID, p.Name = in.str(p.ID), in.str(p.Name)
	}
}
