package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Entry is one record returned by Read.
type Entry struct {
	Seq  uint64
	Data []byte // freshly allocated; the caller may keep it
}

// Stats is a snapshot of a Spool's counters.
type Stats struct {
	Entries  uint64 // records appended and not yet acknowledged
	Bytes    int64  // bytes of segment files not yet deleted (what MaxBytes limits)
	Segments int    // segment files
	Appended uint64 // records appended since Open
	Acked    uint64 // records acknowledged since Open
	Full     uint64 // Appends refused with ErrFull since Open
	Corrupt  uint64 // damaged regions Read skipped since Open (see doc: Non-guarantees)
	// Damaged counts unacknowledged records lost to damage on disk: skipped
	// by Open (Recovery.SkippedUnacked) and by Read since.
	Damaged  uint64
	SyncErrs uint64 // failed periodic fsyncs since Open

	NextSeq  uint64 // seq the next Append will get
	AckedSeq uint64 // highest acknowledged seq
	ReadSeq  uint64 // Read returns the first record with seq >= ReadSeq next
}

// Recovery describes what Open found; callers log it (Clean says whether
// anything was cut or dropped).
type Recovery struct {
	AckedSeq  uint64 // the ack mark read from disk
	Entries   uint64 // unacknowledged records recovered
	Segments  int    // segment files kept
	Removed   int    // segment files deleted: empty, or fully acknowledged
	TornBytes int64  // cut from the end of the last segment: an Append interrupted by a crash
	TornAt    string // segment and reason of the torn record, if any
	// Corrupt lists earlier segments whose remaining records were dropped
	// because a record in them was bad (not a crash: damage on disk), each as
	// "file: reason: N bytes dropped".
	Corrupt      []string
	CorruptBytes int64
	// Skipped lists damaged records that were skipped, each exactly, with
	// the intact records after them kept: "file: reason: seqs A-B (N bytes)
	// skipped, K unacknowledged".
	Skipped        []string
	SkippedRecords uint64 // records skipped as damaged
	SkippedUnacked uint64 // of which not yet acknowledged: lost
}

// Clean reports whether Open dropped nothing.
func (r Recovery) Clean() bool {
	return r.TornBytes == 0 && len(r.Corrupt) == 0 && len(r.Skipped) == 0
}

func (r Recovery) String() string {
	s := fmt.Sprintf("%d segments, %d unacked entries after seq %d, %d segments removed",
		r.Segments, r.Entries, r.AckedSeq, r.Removed)
	if r.TornBytes > 0 {
		s += fmt.Sprintf("; torn record cut (%d bytes, %s)", r.TornBytes, r.TornAt)
	}
	for _, c := range r.Corrupt {
		s += "; corrupt: " + c
	}
	for _, c := range r.Skipped {
		s += "; damaged: " + c
	}
	return s
}

// Spool is an on-disk queue of entries; see the package documentation.
type Spool struct {
	dir  string
	opt  Options
	lock *os.File
	rec  Recovery

	// Lock order: appendMu, ackMu, readMu (only Close takes more than one),
	// then mu. File I/O is done holding the outer ones, not mu, so the
	// appender, the reader and the acker only contend for index updates.
	appendMu sync.Mutex // one Append at a time; guards wf's writes and wbuf
	ackMu    sync.Mutex // one Ack at a time: ack-mark writes stay ordered; guards mark
	readMu   sync.Mutex // one Read at a time; guards cur

	mu         sync.Mutex
	cond       *sync.Cond // broadcast when Read may proceed: append, Rewind, Close, ctx end
	closed     bool
	segs       []*segment // oldest first; the last one is active (Append writes to it)
	wf         *os.File   // write handle of the active segment; nil before the first
	needRotate bool       // start a new segment before the next Append
	nextSeq    uint64     // seq of the next Append
	lastSeq    uint64     // seq of the newest record on disk, 0 if none
	acked      uint64     // ack mark
	readSeq    uint64     // Read returns the first record with seq >= readSeq; always > acked
	bytes      int64      // sum of segs' sizes
	dirty      bool       // changed since the last periodic fsync

	// Counters for Stats.
	appended, ackedN, full, corrupt, syncErrs, damaged uint64

	mark *ackMark
	cur  cursor
	wbuf []byte

	stopSync chan struct{}
	syncDone chan struct{}
}

// Open opens the spool in dir, creating the directory if needed, and recovers
// what an earlier run left there: it verifies every record, cuts a torn record
// off the end of the last segment, drops the rest of an earlier segment after
// a bad record, deletes fully acknowledged segments, and positions Read at the
// oldest unacknowledged entry. What it found is in Recovered.
func Open(dir string, o Options) (*Spool, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, opt: o, lock: lock}
	s.cond = sync.NewCond(&s.mu)
	s.cur.init()
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	if o.SyncEvery > 0 {
		s.stopSync, s.syncDone = make(chan struct{}), make(chan struct{})
		go s.syncLoop(o.SyncEvery)
	}
	return s, nil
}

// recover rebuilds the index from the files in s.dir (see Open).
func (s *Spool) recover() error {
	mark, err := readAckMark(s.dir)
	if err != nil {
		return err
	}
	if err := removeFile(filepath.Join(s.dir, ackTmpName)); err != nil {
		return err
	}
	names, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	r := &s.rec
	r.AckedSeq = mark
	next := mark + 1 // never reissue an acknowledged seq
	var prevLast uint64
	sc := newScanner()
	for i := 0; i < len(names); i++ {
		name := names[i]
		first, _ := parseSegName(name)
		path := filepath.Join(s.dir, name)
		lastFile := i == len(names)-1
		good, last, size, bad, split, err := s.recoverSegment(sc, path, first, prevLast)
		if err != nil {
			return err
		}
		if split != 0 {
			// Intact records follow the damaged ones: they were moved to a
			// segment of their own, read next; only the damage is skipped.
			n, unacked := split-(last+1), split-max(last+1, min(split, mark+1))
			r.Skipped = append(r.Skipped, fmt.Sprintf("%s: %v: seqs %d-%d skipped, %d unacknowledged", name, bad, last+1, split-1, unacked))
			r.SkippedRecords += n
			r.SkippedUnacked += unacked
			s.damaged += unacked
			if i+1 == len(names) || names[i+1] != segName(split) { // not left by a split a crash interrupted
				names = slices.Insert(names, i+1, segName(split))
			}
			lastFile, bad = false, nil
		}
		if bad != nil && lastFile {
			r.TornBytes, r.TornAt = size-good, fmt.Sprintf("%s: %v", name, bad)
		} else if bad != nil {
			r.Corrupt = append(r.Corrupt, fmt.Sprintf("%s: %v: %d bytes dropped", name, bad, size-good))
			r.CorruptBytes += size - good
		}
		// An empty segment still proves its name's seq was about to be used.
		next = max(next, first, last+1)
		if good == 0 || (last <= mark && !lastFile) {
			if err := removeFile(path); err != nil {
				return err
			}
			r.Removed++
			continue
		}
		s.segs = append(s.segs, &segment{path: path, first: first, last: last, size: good})
		s.bytes += good
		s.lastSeq, prevLast = last, last
	}
	s.nextSeq, s.acked, s.readSeq = next, mark, mark+1
	if n := len(s.segs); n > 0 {
		act := s.segs[n-1]
		// Keep appending to the last segment unless that would break the
		// contiguity of seqs inside it (the ack mark ran ahead of it).
		if act.last+1 == next {
			if s.wf, err = os.OpenFile(act.path, os.O_WRONLY, 0); err != nil {
				return err
			}
		} else {
			s.needRotate = true
		}
	}
	if s.mark, err = openAckMark(s.dir, mark, s.opt.SyncEvery > 0); err != nil {
		return err
	}
	r.Segments, r.Entries = len(s.segs), s.pendingLocked(mark)
	if s.opt.SyncEvery > 0 && r.Removed > 0 {
		return syncDir(s.dir) // make the deletions durable before anything builds on them
	}
	return nil
}

// recoverSegment verifies one segment file and truncates it after its last
// good record. A segment whose name overlaps the previous one's records is
// dropped whole (good 0): it cannot be ordered.
//
// When intact records follow a bad one, they are copied to a new segment
// named by the first of them (split, its seq; 0: none), made durable before
// this one is truncated, so a crash in between only repeats the split.
func (s *Spool) recoverSegment(sc *scanner, path string, first, prevLast uint64) (good int64, last uint64, size int64, bad error, split uint64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, 0, nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, nil, 0, err
	}
	size = st.Size()
	if first == 0 || first <= prevLast {
		good, bad = 0, fmt.Errorf("%w: first seq %d overlaps the previous segment (last %d)", errBadRecord, first, prevLast)
	} else if good, last, bad, err = sc.verify(f, first, size); err != nil {
		return 0, 0, 0, nil, 0, err
	}
	if bad != nil && good < size && first > prevLast {
		off, seq, ok, err := resync(f, good+1, size, last)
		if err != nil {
			return 0, 0, 0, nil, 0, err
		}
		if ok {
			if err := s.copyTail(f, off, size, seq); err != nil {
				return 0, 0, 0, nil, 0, err
			}
			split = seq
		}
	}
	if good < size && good > 0 {
		if err := f.Truncate(good); err != nil {
			return 0, 0, 0, nil, 0, err
		}
		if s.opt.SyncEvery > 0 {
			if err := f.Sync(); err != nil {
				return 0, 0, 0, nil, 0, err
			}
		}
	}
	return good, last, size, bad, split, nil
}

// copyTail writes f[off:size] to a new segment file starting at seq first,
// durably (write, fsync, directory fsync) whatever SyncEvery: the source is
// truncated next.
func (s *Spool) copyTail(f *os.File, off, size int64, first uint64) error {
	path := segPath(s.dir, first)
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, off, size-off)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// Recovered describes what Open found and repaired.
func (s *Spool) Recovered() Recovery { return s.rec }

// Stats returns current counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Entries:  s.pendingLocked(s.acked),
		Bytes:    s.bytes,
		Segments: len(s.segs),
		Appended: s.appended,
		Acked:    s.ackedN,
		Full:     s.full,
		Corrupt:  s.corrupt,
		Damaged:  s.damaged,
		SyncErrs: s.syncErrs,
		NextSeq:  s.nextSeq,
		AckedSeq: s.acked,
		ReadSeq:  s.readSeq,
	}
}

// pendingLocked counts records with seq > acked.
func (s *Spool) pendingLocked(acked uint64) uint64 {
	var n uint64
	for _, g := range s.segs {
		n += g.pendingAfter(acked)
	}
	return n
}

// Close waits for in-flight calls, wakes a blocked Read (which returns
// ErrClosed), fsyncs if SyncEvery is set, and closes the files. Everything
// appended stays on disk for the next Open. Close is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	if s.stopSync != nil {
		close(s.stopSync)
		<-s.syncDone
	}
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.readMu.Lock()
	defer s.readMu.Unlock()
	var errs []error
	if s.opt.SyncEvery > 0 {
		errs = append(errs, s.syncFiles(s.wf, s.mark.f))
	}
	return errors.Join(append(errs, s.closeFiles())...)
}

// closeFiles closes every handle the spool holds (also on a failed Open).
func (s *Spool) closeFiles() error {
	var errs []error
	if s.wf != nil {
		errs = append(errs, s.wf.Close())
	}
	if s.mark != nil {
		errs = append(errs, s.mark.close())
	}
	s.cur.close()
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}
