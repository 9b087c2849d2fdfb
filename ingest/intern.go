package ingest

// interner makes the repeated strings of one stream's events share one copy:
// an agent's network, host and participants recur in nearly every event.
// Events wait for their commit for up to a second, so without this the live
// heap holds hundreds of thousands of copies of a few hundred strings for
// the garbage collector to mark (the bench: the decoded strings were a fifth
// of the collector's live heap), each one allocated. Only the stream's
// receiving goroutine uses it (decodeFast); it forgets everything when
// full, so a stream of ever-new names costs a bounded map. A nil interner
// interns nothing.
type interner struct {
	m map[string]string
}

const internMax = 4096

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
