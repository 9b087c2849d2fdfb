package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
)

const (
	ackName    = "ack"
	ackTmpName = "ack.tmp"
	ackRecSize = 12 // uint64 seq + CRC-32C of it
	// ackCompactAt bounds the ack file: past this many bytes the next mark
	// rewrites it with a single record. Appending 12 bytes is one write(2)
	// per Ack; the rename dance costs more, so it is done rarely.
	ackCompactAt = 4096
)

// ackMark persists the highest acknowledged seq. Appending a checksummed
// record per Ack (instead of rewriting a file each time) keeps Ack to one
// write(2); a crash can tear at most the last record, which reading ignores.
// It is used under Spool.ackMu only.
type ackMark struct {
	dir    string
	f      *os.File // the ack file, opened for appending
	size   int64
	sync   bool // fsync the rewritten file before renaming it into place
	broken bool // a write failed part-way: rewrite before appending again
}

func encodeAck(b []byte, seq uint64) {
	binary.LittleEndian.PutUint64(b[0:8], seq)
	binary.LittleEndian.PutUint32(b[8:12], crc32.Checksum(b[0:8], castagnoli))
}

// readAckMark returns the highest valid seq in the ack file of dir, 0 if there
// is none. Invalid or torn records are skipped, not fatal: losing the mark
// only means entries are sent again.
func readAckMark(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, ackName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var mark uint64
	for ; len(b) >= ackRecSize; b = b[ackRecSize:] {
		seq := binary.LittleEndian.Uint64(b[0:8])
		if binary.LittleEndian.Uint32(b[8:12]) == crc32.Checksum(b[0:8], castagnoli) {
			mark = max(mark, seq)
		}
	}
	return mark, nil
}

// openAckMark rewrites the ack file of dir to hold just seq and keeps it open
// for appending.
func openAckMark(dir string, seq uint64, sync bool) (*ackMark, error) {
	m := &ackMark{dir: dir, sync: sync}
	if err := m.rewrite(seq); err != nil {
		return nil, err
	}
	return m, nil
}

// write records seq as the ack mark.
func (m *ackMark) write(seq uint64) error {
	if m.broken || m.size+ackRecSize > ackCompactAt {
		return m.rewrite(seq)
	}
	var b [ackRecSize]byte
	encodeAck(b[:], seq)
	if _, err := m.f.Write(b[:]); err != nil {
		m.broken = true // a partial record would misalign the ones after it
		return err
	}
	m.size += ackRecSize
	return nil
}

// rewrite replaces the ack file atomically (temporary file, rename) with one
// holding only seq. The new file's handle stays open: after the rename it is
// the ack file, so appending continues without reopening.
func (m *ackMark) rewrite(seq uint64) error {
	tmp := filepath.Join(m.dir, ackTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	var b [ackRecSize]byte
	encodeAck(b[:], seq)
	_, err = f.Write(b[:])
	if err == nil && m.sync {
		err = f.Sync() // the rename must not become durable before the data
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(m.dir, ackName))
	}
	if err != nil {
		f.Close()
		return err
	}
	if m.f != nil {
		m.f.Close()
	}
	m.f, m.size, m.broken = f, ackRecSize, false
	return nil
}

func (m *ackMark) close() error { return m.f.Close() }
