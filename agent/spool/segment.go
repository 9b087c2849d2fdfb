package spool

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	segSuffix  = ".seg"
	segNameLen = 20 + len(segSuffix)
	// ioBuf is the buffer size for reading segments: large enough that one
	// read(2) moves a useful amount, small enough not to matter per spool.
	ioBuf = 64 << 10
)

// segment is the in-memory index entry of one segment file. Append owns the
// fields of the active (last) segment and changes them under Spool.mu; other
// goroutines read them under Spool.mu.
type segment struct {
	path  string
	first uint64 // seq in the file name: its first record's, or the next one to be written while empty
	last  uint64 // seq of its last record; first-1 while empty
	size  int64  // bytes of complete records; the file is longer only while an Append is writing
}

// pendingAfter is how many of the segment's records have a seq above acked.
// Seqs within a segment are contiguous, so this is arithmetic.
func (g *segment) pendingAfter(acked uint64) uint64 {
	if g.last < g.first || g.last <= acked {
		return 0
	}
	return g.last - max(g.first, acked+1) + 1
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// parseSegName returns the first seq of a segment file name, or false for any
// other file (the ack mark, the lock, a stray temporary file).
func parseSegName(name string) (uint64, bool) {
	if len(name) != segNameLen || !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	n, err := strconv.ParseUint(name[:20], 10, 64)
	return n, err == nil
}

// listSegments returns the segment file names in dir, oldest first. The
// zero-padded names sort like the seqs they hold.
func listSegments(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if _, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// errBadRecord marks a record that is not what was written: torn by a crash,
// or damaged on disk. The wrapping error says where and why.
var errBadRecord = errors.New("bad record")

func badRecord(off int64, format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errBadRecord, off, fmt.Sprintf(format, args...))
}

// scanner walks the records of one segment file from offset 0 up to size,
// through a buffer, never holding more than one buffer of data in memory.
type scanner struct {
	br      *bufio.Reader
	scratch []byte // for CRCs in verify; seek does not need it
}

func newScanner() *scanner {
	return &scanner{br: bufio.NewReaderSize(nil, ioBuf)}
}

// verify checks every record of f[0:size]: seqs contiguous from first, length
// within the file, CRC. It returns the offset just after the last good record
// and that record's seq (first-1 if none). bad is non-nil (wrapping
// errBadRecord) if it stopped before size; ioErr if the file could not be read
// at all, in which case nothing should be concluded about the data.
func (sc *scanner) verify(f *os.File, first uint64, size int64) (good int64, last uint64, bad, ioErr error) {
	if sc.scratch == nil {
		sc.scratch = make([]byte, ioBuf)
	}
	sc.br.Reset(io.NewSectionReader(f, 0, size))
	var hb [headerSize]byte
	off, expect := int64(0), first
	for off < size {
		if size-off < headerSize {
			return off, expect - 1, badRecord(off, "%d bytes left, less than a header", size-off), nil
		}
		if _, err := io.ReadFull(sc.br, hb[:]); err != nil {
			return off, expect - 1, nil, err
		}
		h := parseHeader(hb[:])
		if h.seq != expect {
			return off, expect - 1, badRecord(off, "seq %d, want %d", h.seq, expect), nil
		}
		if int64(h.length) > size-off-headerSize {
			return off, expect - 1, badRecord(off, "length %d, only %d bytes left", h.length, size-off-headerSize), nil
		}
		crc := seqCRC(hb[:])
		for n := int64(h.length); n > 0; {
			k := min(n, int64(len(sc.scratch)))
			if _, err := io.ReadFull(sc.br, sc.scratch[:k]); err != nil {
				return off, expect - 1, nil, err
			}
			crc = crc32.Update(crc, castagnoli, sc.scratch[:k])
			n -= k
		}
		if crc != h.crc {
			return off, expect - 1, badRecord(off, "CRC mismatch (seq %d, %d bytes)", h.seq, h.length), nil
		}
		off += headerSize + int64(h.length)
		expect++
	}
	return off, expect - 1, nil, nil
}

// seek finds the offset of the first record with seq >= target in f[0:size],
// reading headers only (data is skipped through the buffer). It returns size
// if there is none. Seqs and lengths are sanity-checked (they were verified by
// Open or written by this process); CRCs are left to the read that follows.
func (sc *scanner) seek(f *os.File, size int64, target uint64) (int64, error) {
	sc.br.Reset(io.NewSectionReader(f, 0, size))
	var hb [headerSize]byte
	var prev uint64
	for off := int64(0); off < size; {
		if size-off < headerSize {
			return size, badRecord(off, "%d bytes left, less than a header", size-off)
		}
		if _, err := io.ReadFull(sc.br, hb[:]); err != nil {
			return 0, err
		}
		h := parseHeader(hb[:])
		if off > 0 && h.seq != prev+1 {
			return size, badRecord(off, "seq %d after %d", h.seq, prev)
		}
		if int64(h.length) > size-off-headerSize {
			return size, badRecord(off, "length %d, only %d bytes left", h.length, size-off-headerSize)
		}
		if h.seq >= target {
			return off, nil
		}
		if _, err := sc.br.Discard(int(h.length)); err != nil {
			return 0, err
		}
		prev = h.seq
		off += headerSize + int64(h.length)
	}
	return size, nil
}

// removeFile deletes a segment or temporary file; one that is already gone is
// not an error (a previous run may have been interrupted after deleting it).
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// syncDir fsyncs a directory so that file creations, renames and deletions in
// it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func segPath(dir string, first uint64) string { return filepath.Join(dir, segName(first)) }

// resync finds, in f[from:size], the first complete record with a seq above
// after and a valid CRC: where intact records resume after a damaged one
// (a flipped byte in its header or data). The CRC covers the seq, so bytes
// inside damaged data do not pass for a record by chance. It reads the
// rest of the segment into memory (at most SegmentBytes), which only
// happens on damage.
func resync(f *os.File, from, size int64, after uint64) (off int64, seq uint64, ok bool, err error) {
	if size-from < headerSize {
		return 0, 0, false, nil
	}
	b := make([]byte, size-from)
	if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, false, err
	}
	for p := 0; p+headerSize <= len(b); p++ {
		h := parseHeader(b[p:])
		// A record's seq is above after and, seqs being contiguous, each
		// record skipped took at least a header's bytes (from-1 is where
		// the first damaged record began).
		if h.seq <= after || h.seq-after > uint64((p+1)/headerSize)+1 || int64(h.length) > int64(len(b)-p-headerSize) {
			continue
		}
		if crc32.Update(seqCRC(b[p:]), castagnoli, b[p+headerSize:p+headerSize+int(h.length)]) == h.crc {
			return from + int64(p), h.seq, true, nil
		}
	}
	return 0, 0, false, nil
}
