package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"
)

// cursor is the reader's position: an open, buffered handle on one segment
// and the offset of the next record in it. Only the goroutine holding
// Spool.readMu uses it, so it needs no other lock; the segment fields it
// consults (size) are read under Spool.mu.
type cursor struct {
	seg *segment // nil: not positioned; Read seeks
	f   *os.File
	src limitedFile
	br  *bufio.Reader
	off int64 // offset of the next record in seg
	// nextSeq: Read has returned (or skipped) everything below it, and the
	// record at off, or if off is seg's end the first record after seg, has a
	// seq >= nextSeq. Read's fast path applies while it equals Spool.readSeq.
	nextSeq uint64
	sc      *scanner // for seeking after Open, Rewind or an Ack ahead of the reader
}

// limitedFile reads f from off up to end with pread(2). The reader's buffer
// sits on top of it, so the buffer never holds bytes past the last complete
// record: a record that Append is still writing stays invisible.
type limitedFile struct {
	f        *os.File
	off, end int64
}

func (l *limitedFile) Read(p []byte) (int, error) {
	if l.off >= l.end {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), l.end-l.off)]
	n, err := l.f.ReadAt(p, l.off)
	l.off += int64(n)
	if err == io.EOF {
		// Shorter than the bytes Append reported written: truncated under us.
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *cursor) init() { c.br = bufio.NewReaderSize(nil, ioBuf) }

// position moves the cursor to off in segment g, read through f (which it
// now owns; a previous different handle is closed).
func (c *cursor) position(g *segment, f *os.File, off int64) {
	if c.f != nil && c.f != f {
		c.f.Close()
	}
	c.seg, c.f, c.off = g, f, off
	c.src = limitedFile{f: f, off: off, end: off}
	c.br.Reset(&c.src)
}

func (c *cursor) close() {
	if c.f != nil {
		c.f.Close()
	}
	c.seg, c.f = nil, nil
}

// next reads and checks the record at c.off; end is the segment's committed
// size, which the record must not cross.
func (c *cursor) next(end int64) (Entry, error) {
	c.src.end = end
	if end-c.off < headerSize {
		return Entry{}, badRecord(c.off, "%d bytes left, less than a header", end-c.off)
	}
	var hb [headerSize]byte
	if _, err := io.ReadFull(c.br, hb[:]); err != nil {
		return Entry{}, err
	}
	h := parseHeader(hb[:])
	if int64(h.length) > end-c.off-headerSize {
		return Entry{}, badRecord(c.off, "length %d, only %d bytes left", h.length, end-c.off-headerSize)
	}
	if h.seq < c.nextSeq {
		return Entry{}, badRecord(c.off, "seq %d, want at least %d", h.seq, c.nextSeq)
	}
	data := make([]byte, h.length)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return Entry{}, err
	}
	if crc32.Update(seqCRC(hb[:]), castagnoli, data) != h.crc {
		return Entry{}, badRecord(c.off, "CRC mismatch (seq %d)", h.seq)
	}
	c.off += headerSize + int64(h.length)
	c.nextSeq = h.seq + 1
	return Entry{Seq: h.seq, Data: data}, nil
}

// Read returns the next entry after the read cursor and advances it. It
// blocks until an entry is appended, ctx ends (returning ctx.Err()) or the
// spool is closed (ErrClosed). Entries come in seq order; after Open and
// Rewind, starting at the oldest unacknowledged one. A record found damaged
// is skipped and counted in Stats().Corrupt rather than returned as an error;
// other errors are I/O errors from the disk.
func (s *Spool) Read(ctx context.Context) (Entry, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()

	c := &s.cur
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for !s.closed && ctx.Err() == nil && s.readSeq > s.lastSeq {
			s.cond.Wait()
		}
		if s.closed {
			return Entry{}, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return Entry{}, err
		}
		target := s.readSeq
		if c.seg == nil || c.nextSeq != target {
			// Just opened, rewound, or acked past the cursor.
			if err := s.seekLocked(target); err != nil {
				return Entry{}, err
			}
			continue
		}
		if c.off >= c.seg.size {
			g := s.segAfterLocked(c.seg)
			if g == nil {
				// The records up to lastSeq were in a damaged region that
				// was skipped: nothing to read until the next Append.
				s.skipLocked(target, s.nextSeq)
				continue
			}
			f, err := os.Open(g.path) // under mu: an Ack cannot delete it meanwhile
			if err != nil {
				c.close()
				return Entry{}, fmt.Errorf("spool: %w", err)
			}
			c.position(g, f, 0)
		}
		end, endSeq := c.seg.size, s.seqAfterLocked(c.seg)
		s.mu.Unlock()
		e, err := c.next(end)
		s.mu.Lock()
		switch {
		case err == nil:
			// A Rewind or Ack during the read moved readSeq: leave it; this
			// entry is returned as if read just before.
			if s.readSeq == target {
				s.readSeq = e.Seq + 1
			}
			return e, nil
		case errors.Is(err, errBadRecord):
			// Damaged after Open verified it: skip to the next intact
			// record of the segment, else to its end.
			s.corrupt++
			from := c.off
			s.mu.Unlock()
			off, seq, ok, rerr := resync(c.f, from+1, end, target-1)
			s.mu.Lock()
			if rerr != nil || !ok {
				off, seq = end, endSeq
			}
			s.damaged += seq - target
			c.position(c.seg, c.f, off)
			s.skipLocked(target, seq)
		default:
			c.close()
			return Entry{}, fmt.Errorf("spool: read: %w", err)
		}
	}
}

// seekLocked positions the cursor at the first record with seq >= target.
// It drops mu while reading the segment's headers.
func (s *Spool) seekLocked(target uint64) error {
	c := &s.cur
	if len(s.segs) == 0 { // cannot happen while readSeq <= lastSeq; be safe
		s.skipLocked(target, s.nextSeq)
		return nil
	}
	i := max(0, sort.Search(len(s.segs), func(i int) bool { return s.segs[i].first > target })-1)
	g := s.segs[i]
	f, err := os.Open(g.path)
	if err != nil {
		c.close()
		return fmt.Errorf("spool: %w", err)
	}
	size, endSeq := g.size, s.seqAfterLocked(g)
	if c.sc == nil {
		c.sc = newScanner()
	}
	s.mu.Unlock()
	off, err := c.sc.seek(f, size, target)
	s.mu.Lock()
	c.position(g, f, off)
	c.nextSeq = target
	if err != nil {
		if !errors.Is(err, errBadRecord) {
			c.close()
			return fmt.Errorf("spool: seek: %w", err)
		}
		s.corrupt++
		c.position(g, f, size)
		s.skipLocked(target, endSeq)
	}
	return nil
}

// skipLocked moves the read cursor to seq to (past a damaged or unreachable
// region), unless a Rewind or Ack moved it away from target meanwhile.
func (s *Spool) skipLocked(target, to uint64) {
	s.cur.nextSeq = to
	if s.readSeq == target {
		s.readSeq = to
	}
}

// segAfterLocked returns the segment following g, or nil. g may be gone from
// segs already: deleted after being acknowledged, or an empty active segment
// that rotate took over under the same name (then the new one follows it).
func (s *Spool) segAfterLocked(g *segment) *segment {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].first >= g.first })
	if i < len(s.segs) && s.segs[i] == g {
		i++
	}
	if i < len(s.segs) {
		return s.segs[i]
	}
	return nil
}

// seqAfterLocked is a lower bound for the seq of the first record after the
// current end of g: the next segment's first, or for the active segment the
// next seq Append will use.
func (s *Spool) seqAfterLocked(g *segment) uint64 {
	if next := s.segAfterLocked(g); next != nil {
		return next.first
	}
	return s.nextSeq
}

// Rewind moves the read cursor back to the oldest unacknowledged entry, so the
// next Read returns it again (after a disconnect or a failed answer). A Read
// blocked at the end wakes up if that makes entries available.
func (s *Spool) Rewind() {
	s.mu.Lock()
	s.readSeq = s.acked + 1
	s.cond.Broadcast()
	s.mu.Unlock()
}
