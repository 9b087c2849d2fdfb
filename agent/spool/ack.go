package spool

import (
	"errors"
	"fmt"
	"slices"
)

// Ack marks every entry with seq <= seq as delivered. The mark is persisted
// before anything is deleted, then sealed segments whose records are all
// acknowledged are deleted (the active one waits until it is sealed). A seq
// at or below the current mark is a no-op; one never appended is an error.
// If Ack is ahead of the read cursor, the cursor moves past it.
func (s *Spool) Ack(seq uint64) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if seq <= s.acked {
		s.mu.Unlock()
		return nil
	}
	if seq >= s.nextSeq {
		last := s.nextSeq - 1
		s.mu.Unlock()
		return fmt.Errorf("spool: ack of seq %d, but the last appended is %d", seq, last)
	}
	s.mu.Unlock()

	// Mark first: the on-disk mark never lags behind deleted segments, so a
	// crash between the two at worst leaves acknowledged files for Open to
	// delete. A failed write leaves the in-memory state unchanged too.
	if err := s.mark.write(seq); err != nil {
		return fmt.Errorf("spool: ack mark: %w", err)
	}

	s.mu.Lock()
	s.ackedN += s.pendingLocked(s.acked) - s.pendingLocked(seq)
	s.acked = seq
	if s.readSeq <= seq {
		s.readSeq = seq + 1
	}
	k := 0
	for k < len(s.segs)-1 && s.segs[k].last <= seq {
		s.bytes -= s.segs[k].size
		k++
	}
	dead := slices.Clone(s.segs[:k])
	s.segs = slices.Delete(s.segs, 0, k)
	s.dirty = true
	s.mu.Unlock()

	// Unlinking outside mu: a large file can take a while to free. A reader
	// that still has one of them open keeps reading it (Unix semantics).
	var errs []error
	for _, g := range dead {
		errs = append(errs, removeFile(g.path))
	}
	return errors.Join(errs...)
}
