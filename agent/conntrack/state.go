package conntrack

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
)

// The announced set on disk: what the tracker knows about every open flow
// (identity, start, last counters), so that the next agent run keeps each
// flow's start, hence its flow_id, and closes the flows that ended while it
// was down. Without it a flow the kernel has no start timestamp for gets a
// new start, a new flow_id, on every restart, and a flow that closed during
// the restart stays open at the collector forever.
//
// The file is a journal of fixed-size records after a header: a put
// (the flow's whole state) or a delete (its key). Every change appends one
// record, buffered and written out after each batch of kernel events, so a
// kill -9 loses at most the batch being handled; when the journal holds
// more than twice the live set it is compacted: the live set is written to
// a temporary file and renamed over the journal. Nothing is fsynced: a
// process crash (kill -9) loses nothing written, and a power loss, which
// may lose recent records or leave garbage, is what the checksums are for;
// an fsync of a large set would stall event reading for its duration.
// Each record has its own CRC: a damaged record is skipped, a torn tail
// ignored, a file with a foreign header ignored whole, each with a WARN and
// counted, never fatal: at worst some flows are announced again or left to
// the collector's stale horizon.
const stateMagic = "flowlog-flows 1\n"

const (
	opPut = 'P'
	opDel = 'D'
	// op, key (45), start, flags, status, 4 counters, lastReport, crc32
	recSize = 1 + 45 + 8 + 1 + 4 + 4*8 + 8 + 4
)

// DefaultMaxStateFlows bounds the announced set on disk: 103 bytes a flow,
// so 27 MB live and at most about twice that before a compaction. It is
// the kernel's usual nf_conntrack_max on hosts with 4 GB of memory or more;
// flows beyond it are still tracked, just not remembered across a restart.
const DefaultMaxStateFlows = 1 << 18

// stateLog appends the tracker's changes to the state file.
type stateLog struct {
	path    string
	f       *os.File
	w       *bufio.Writer
	records int // records in the file
	max     int
	log     *slog.Logger
	err     error // first write error; persistence stops after it
	rec     [recSize]byte
}

// StateLoad says what loading the state file found.
type StateLoad struct {
	Flows   int      // open flows restored
	Corrupt int      // damaged records, torn tails and foreign files ignored
	Errors  []string // what was ignored and where
}

// loadState reads the announced set from path (absent: empty). Damage is
// reported in StateLoad, not as an error: only failing to read the file at
// all is one.
func loadState(path string) (map[flowKey]openFlow, StateLoad, error) {
	open := make(map[flowKey]openFlow)
	var res StateLoad
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return open, res, nil
	}
	if err != nil {
		return nil, res, fmt.Errorf("conntrack: state file: %w", err)
	}
	bad := func(format string, args ...any) {
		res.Corrupt++
		res.Errors = append(res.Errors, fmt.Sprintf("%s: ", path)+fmt.Sprintf(format, args...))
	}
	if len(b) < len(stateMagic) || string(b[:len(stateMagic)]) != stateMagic {
		bad("not a flowlog flow set (header %q, want %q); ignoring the whole file", head(b), stateMagic)
		return open, res, nil
	}
	off := len(stateMagic)
	for ; off+recSize <= len(b); off += recSize {
		r := b[off : off+recSize]
		if crc32.ChecksumIEEE(r[:recSize-4]) != binary.LittleEndian.Uint32(r[recSize-4:]) {
			bad("record at offset %d: checksum mismatch; skipped", off)
			continue
		}
		k, o := decodeRecord(r)
		switch r[0] {
		case opPut:
			o.saved = true
			open[k] = o
		case opDel:
			delete(open, k)
		default:
			bad("record at offset %d: unknown operation %q; skipped", off, r[0])
		}
	}
	if off < len(b) {
		bad("torn record at offset %d (%d of %d bytes; the agent stopped while writing it); ignored", off, len(b)-off, recSize)
	}
	res.Flows = len(open)
	return open, res, nil
}

func head(b []byte) []byte {
	if len(b) > len(stateMagic) {
		return b[:len(stateMagic)]
	}
	return b
}

// openStateLog rewrites path with the given live set and opens it for
// appending.
func openStateLog(path string, max int, open map[flowKey]openFlow, log *slog.Logger) (*stateLog, error) {
	if max <= 0 {
		max = DefaultMaxStateFlows
	}
	s := &stateLog{path: path, max: max, log: log}
	if err := s.compact(open); err != nil {
		return nil, err
	}
	return s, nil
}

func encodeRecord(r *[recSize]byte, op byte, k flowKey, o openFlow) {
	r[0] = op
	b := r[1:1]
	b = binary.LittleEndian.AppendUint32(b, k.id)
	b = binary.LittleEndian.AppendUint16(b, k.zone)
	b = append(b, k.proto, k.icmpType, k.icmpCode)
	b = append(b, k.src[:]...)
	b = append(b, k.dst[:]...)
	b = binary.LittleEndian.AppendUint16(b, k.sport)
	b = binary.LittleEndian.AppendUint16(b, k.dport)
	b = binary.LittleEndian.AppendUint64(b, uint64(o.start))
	var flags byte
	if o.kernelStart {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint32(b, o.status)
	for _, c := range o.counters {
		b = binary.LittleEndian.AppendUint64(b, c)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(o.lastReport))
	if len(b) != recSize-1-4 { // appended in place: the fields must fill the record exactly
		panic("conntrack: state record layout does not match recSize")
	}
	binary.LittleEndian.PutUint32(r[recSize-4:], crc32.ChecksumIEEE(r[:recSize-4]))
}

func decodeRecord(r []byte) (k flowKey, o openFlow) {
	le := binary.LittleEndian
	b := r[1:]
	k.id, k.zone = le.Uint32(b), le.Uint16(b[4:])
	k.proto, k.icmpType, k.icmpCode = b[6], b[7], b[8]
	copy(k.src[:], b[9:25])
	copy(k.dst[:], b[25:41])
	k.sport, k.dport = le.Uint16(b[41:]), le.Uint16(b[43:])
	b = b[45:]
	o.start = int64(le.Uint64(b))
	o.kernelStart = b[8]&1 != 0
	o.status = le.Uint32(b[9:])
	for i := range o.counters {
		o.counters[i] = le.Uint64(b[13+8*i:])
	}
	o.lastReport = int64(le.Uint64(b[45:]))
	return k, o
}

// put records a flow's state; it reports whether the flow is now saved (a
// new flow is not once the file holds max flows).
func (s *stateLog) put(k flowKey, o openFlow, live int) bool {
	if s.err != nil || (!o.saved && live >= s.max) {
		return false
	}
	s.append(opPut, k, o)
	return true
}

// del records that a saved flow is gone.
func (s *stateLog) del(k flowKey) {
	if s.err == nil {
		s.append(opDel, k, openFlow{})
	}
}

func (s *stateLog) append(op byte, k flowKey, o openFlow) {
	encodeRecord(&s.rec, op, k, o)
	if _, err := s.w.Write(s.rec[:]); err != nil {
		s.fail(err)
	}
	s.records++
}

// sync writes the buffered records out (to the page cache: enough for a
// kill -9), compacting when the journal has grown past twice the live set.
func (s *stateLog) sync(open map[flowKey]openFlow, saved int) {
	if s.err != nil {
		return
	}
	if s.records > 2*saved+4096 {
		if err := s.compact(open); err != nil {
			s.fail(err)
		}
		return
	}
	if err := s.w.Flush(); err != nil {
		s.fail(err)
	}
}

// compact replaces the file with the saved flows of open, atomically.
func (s *stateLog) compact(open map[flowKey]openFlow) error {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("conntrack: state file: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	_, _ = w.WriteString(stateMagic)
	n := 0
	for k, o := range open {
		if o.saved {
			encodeRecord(&s.rec, opPut, k, o)
			_, _ = w.Write(s.rec[:])
			n++
		}
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err == nil {
		s.f, err = os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("conntrack: state file: %w", err)
	}
	s.w = bufio.NewWriterSize(s.f, 64<<10)
	s.records = n
	return nil
}

// fail stops persistence after a write error: the agent goes on reporting
// flows, only a restart may then announce some again.
func (s *stateLog) fail(err error) {
	s.err = err
	s.log.Error("conntrack: cannot write the announced-flow set; flows open across the next restart may be announced again",
		"file", s.path, "err", err)
}

func (s *stateLog) close() error {
	if s.f == nil {
		return nil
	}
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return fmt.Errorf("conntrack: state file: %w", err)
	}
	return nil
}
