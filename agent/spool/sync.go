package spool

import (
	"errors"
	"os"
	"time"
)

// syncLoop fsyncs at the SyncEvery interval while there is something new, so
// that at most one interval of appends and acks is exposed to a power
// failure, without an fsync on the Append path.
func (s *Spool) syncLoop(every time.Duration) {
	defer close(s.syncDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopSync:
			return
		case <-t.C:
		}
		s.mu.Lock()
		dirty, wf := s.dirty, s.wf
		s.dirty = false
		s.mu.Unlock()
		if !dirty {
			continue
		}
		s.ackMu.Lock()
		af := s.mark.f
		s.ackMu.Unlock()
		if err := s.syncFiles(wf, af); err != nil {
			s.mu.Lock()
			s.syncErrs++
			s.dirty = true // try again next tick
			s.mu.Unlock()
		}
	}
}

// syncFiles fsyncs the active segment, the ack file and the directory (for
// created, renamed and deleted files). A handle closed meanwhile was rotated
// away or rewritten, and was synced as part of that.
func (s *Spool) syncFiles(wf, af *os.File) error {
	var errs []error
	for _, f := range []*os.File{wf, af} {
		if f == nil {
			continue
		}
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, syncDir(s.dir))
	return errors.Join(errs...)
}
