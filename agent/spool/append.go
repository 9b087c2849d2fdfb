package spool

import (
	"fmt"
	"math"
	"os"
)

// singleWriteMax: records up to this size are assembled in one buffer and
// written with one pwrite(2); larger ones go out as header then data (two
// syscalls) instead of being copied, so the appender's buffer stays bounded.
const singleWriteMax = 256 << 10

// Append writes data as a new record and returns its seq, strictly greater
// than every seq issued before (also before a restart). The record has been
// written with write(2) when Append returns (see Options.SyncEvery for
// fsync). data is not retained. ErrFull: the record would take the spool past
// MaxBytes; ErrTooLarge: it can never fit in a segment. Neither writes
// anything.
func (s *Spool) Append(data []byte) (uint64, error) {
	rec := headerSize + int64(len(data))
	if rec > s.opt.SegmentBytes || len(data) > math.MaxUint32 { // the length field is 32 bits
		return 0, ErrTooLarge
	}
	s.appendMu.Lock()
	defer s.appendMu.Unlock()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	act := s.activeLocked()
	rotate := act == nil || s.needRotate || act.size+rec > s.opt.SegmentBytes
	used := s.bytes
	if rotate && act != nil && act.last <= s.acked {
		used -= act.size // sealing a fully acknowledged segment deletes it
	}
	if used+rec > s.opt.MaxBytes {
		s.full++
		s.mu.Unlock()
		return 0, ErrFull
	}
	seq := s.nextSeq
	s.mu.Unlock()

	if rotate {
		var err error
		if act, err = s.rotate(seq); err != nil {
			return 0, err
		}
	}
	// act.size and s.wf change only here and in rotate, under appendMu, so
	// reading them without mu is safe; mu is for publishing the new record.
	off := act.size
	if err := s.writeRecord(s.wf, off, seq, data); err != nil {
		// Cut the partial record so the file stays a run of complete ones.
		// If even that fails, seal this segment at off: Open will drop the
		// garbage after it.
		if terr := s.wf.Truncate(off); terr != nil {
			s.mu.Lock()
			s.needRotate = true
			s.mu.Unlock()
		}
		return 0, fmt.Errorf("spool: append: %w", err)
	}
	s.mu.Lock()
	act.size += rec
	act.last = seq
	s.bytes += rec
	s.lastSeq, s.nextSeq = seq, seq+1
	s.appended++
	s.dirty = true
	s.cond.Broadcast()
	s.mu.Unlock()
	return seq, nil
}

// activeLocked is the segment Append writes to: the newest. Ack never deletes
// it, so it is always the last in segs.
func (s *Spool) activeLocked() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

func (s *Spool) writeRecord(f *os.File, off int64, seq uint64, data []byte) error {
	n := headerSize + len(data)
	if n <= singleWriteMax {
		if cap(s.wbuf) < n {
			s.wbuf = make([]byte, max(n, 4<<10))
		}
		b := s.wbuf[:n]
		putHeader(b, seq, data)
		copy(b[headerSize:], data)
		_, err := f.WriteAt(b, off)
		return err
	}
	var h [headerSize]byte
	putHeader(h[:], seq, data)
	if _, err := f.WriteAt(h[:], off); err != nil {
		return err
	}
	_, err := f.WriteAt(data, off+headerSize)
	return err
}

// rotate seals the active segment and starts a new one whose first record
// will be seq. The sealed segment is deleted at once if it is fully
// acknowledged (Ack leaves the active segment alone, so this is where a
// caught-up spool gives its space back).
func (s *Spool) rotate(seq uint64) (*segment, error) {
	path := segPath(s.dir, seq)
	// O_TRUNC, not O_EXCL: the only file that can already have this name is
	// the active segment while still empty (a failed write left needRotate
	// set); it is taken over.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: new segment: %w", err)
	}
	s.mu.Lock()
	old, oldF, broken := s.activeLocked(), s.wf, s.needRotate
	s.mu.Unlock()
	var syncErr bool
	if oldF != nil {
		if broken && old.first != seq {
			oldF.Truncate(old.size) // best effort; Open drops a tail anyway
		}
		if s.opt.SyncEvery > 0 {
			// The periodic sync only covers the active segment.
			syncErr = oldF.Sync() != nil
		}
		oldF.Close()
	}
	g := &segment{path: path, first: seq, last: seq - 1}
	var dead *segment
	s.mu.Lock()
	if old != nil && (old.first == seq || old.last <= s.acked) {
		s.segs = s.segs[:len(s.segs)-1]
		s.bytes -= old.size
		if old.first != seq {
			dead = old
		}
	}
	s.segs = append(s.segs, g)
	s.wf, s.needRotate, s.dirty = f, false, true
	if syncErr {
		s.syncErrs++
	}
	s.mu.Unlock()
	if dead != nil {
		// Failing leaves a fully acknowledged file that the next Open deletes.
		removeFile(dead.path)
	}
	return g, nil
}
