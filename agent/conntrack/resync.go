package conntrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// resync reads what the socket holds, dumps the table and reconciles the
// open set with it. It reports whether the socket overran meanwhile, which
// calls for another resync.
func (s *Source) resync(ctx context.Context, why int, emit func(Flow) error) (again bool, err error) {
	s.stats.resyncs.Add(1)
	t0 := time.Now()
	// Events queued before the dump are older than it: apply them first so
	// fewer of them look missed.
	if again, err = s.drain(ctx, emit); err != nil {
		return false, err
	}
	kflows, err := s.query.Dump(nil)
	if err != nil {
		return false, fmt.Errorf("conntrack: dump: %w", err)
	}
	dump := make([]Flow, len(kflows))
	for i := range kflows {
		dump[i] = fromKernel(New, &kflows[i])
	}
	s.takeUndelivered()
	n, err := s.tr.resync(dump, func() error {
		a, err := s.drain(ctx, emit)
		again = again || a
		return err
	}, func(f Flow) error {
		switch f.Kind {
		case New:
			s.stats.resyncStarts.Add(1)
		case Update:
			s.stats.updates.Add(1)
		}
		return emit(f)
	})
	s.stats.open.Store(uint64(len(s.tr.open)))
	s.tr.sync()
	if err != nil {
		return false, err
	}
	lvl := slog.LevelInfo
	switch {
	case n.destroys > 0:
		lvl = slog.LevelWarn
	case why == resyncPeriodic && n.starts == 0:
		lvl = slog.LevelDebug
	}
	s.log.Log(ctx, lvl, "conntrack: resynchronised from table dump",
		"reason", [...]string{"", "start", "overrun", "periodic"}[why], "entries", len(dump),
		"missed_starts", n.starts, "ended_unobserved", n.destroys, "updates", n.updates,
		"open", len(s.tr.open), "took", time.Since(t0).Round(time.Millisecond))
	return again, nil
}

// Bounds of a drain: it stops once the socket has been quiet for
// drainQuiet, or after drainMax on a host whose events never pause.
const (
	drainQuiet = 20 * time.Millisecond
	drainMax   = time.Second
)

// drain handles the events already queued in the socket without blocking
// for long. It reports whether the socket overran meanwhile.
func (s *Source) drain(ctx context.Context, emit func(Flow) error) (overran bool, err error) {
	defer s.setDeadline(time.Time{}, false)
	end := time.Now().Add(drainMax)
	for time.Now().Before(end) {
		s.setDeadline(time.Now().Add(drainQuiet), false)
		msgs, err := s.events.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return overran, ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return overran, nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				s.overrun()
				overran = true
				continue
			}
			return overran, fmt.Errorf("conntrack: receive: %w", err)
		}
		if err := s.handle(msgs, emit); err != nil {
			return overran, err
		}
	}
	return overran, nil
}

// setDeadline changes the read deadline unless ctx has ended meanwhile
// (its watcher's past deadline must stick); reset starts a new Run.
func (s *Source) setDeadline(t time.Time, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reset {
		s.stopped = false
		s.deadline = time.Unix(1, 0) // force the call below
	}
	if !s.stopped && !t.Equal(s.deadline) {
		_ = s.events.SetReadDeadline(t)
		s.deadline = t
	}
}
