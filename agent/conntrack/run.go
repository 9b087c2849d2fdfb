package conntrack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Run reads events and sends New and Destroy flows on out until ctx ends
// (then it returns nil). A slow reader of out makes the kernel drop events
// once ReadBuffer is full; Run then resynchronises from a dump. Other
// socket errors end Run.
func (s *Source) Run(ctx context.Context, out chan<- Flow) error {
	if s.events == nil {
		return errors.New("conntrack: Run after Close")
	}
	s.setDeadline(time.Time{}, true)
	// Receive only wakes up for a deadline: a past one ends Run.
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stopped = true
		if s.events != nil {
			_ = s.events.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()

	emit := func(f Flow) error {
		select {
		case out <- f:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := s.run(ctx, emit)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Why a resync runs; only the log line differs.
const (
	resyncNone = iota
	resyncStart
	resyncOverrun
	resyncPeriodic
)

func (s *Source) run(ctx context.Context, emit func(Flow) error) error {
	why := resyncNone
	if s.o.InitialSync {
		why = resyncStart
	}
	var next time.Time // of the periodic resync; zero: none
	for {
		if why != resyncNone {
			again, err := s.resync(ctx, why, emit)
			if err != nil {
				return err
			}
			why = resyncNone
			if again {
				why = resyncOverrun
			}
			if p := s.resyncPeriod(); p > 0 {
				next = time.Now().Add(p)
			}
			continue
		}
		if p := s.resyncPeriod(); p > 0 && next.IsZero() {
			next = time.Now().Add(p)
		}
		s.setDeadline(next, false)
		msgs, err := s.events.Receive()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, unix.ENOBUFS):
				s.overrun()
				why = resyncOverrun
			case errors.Is(err, os.ErrDeadlineExceeded):
				if !next.IsZero() && !time.Now().Before(next) {
					why = resyncPeriodic
				}
			default:
				return fmt.Errorf("conntrack: receive: %w", err)
			}
			continue
		}
		err = s.handle(msgs, emit)
		s.tr.sync()
		if err != nil {
			return err
		}
	}
}

func (s *Source) overrun() {
	n := s.stats.overruns.Add(1)
	s.log.Warn("conntrack: event socket overrun, events lost; resynchronising from a table dump",
		"overruns", n, "read_buffer", s.o.ReadBuffer)
}

// handle decodes and applies events. A message that does not decode is
// skipped, not fatal: one odd attribute must not stop the agent.
func (s *Source) handle(msgs []netlink.Message, emit func(Flow) error) error {
	defer func() { s.stats.open.Store(uint64(len(s.tr.open))) }()
	for _, m := range msgs {
		var ev ct.Event
		if err := ev.Unmarshal(m); err != nil {
			if s.stats.undecodable.Add(1) == 1 {
				s.log.Warn("conntrack: skipping undecodable message (further ones counted only)", "err", err)
			}
			continue
		}
		if ev.Flow == nil {
			continue
		}
		switch ev.Type {
		case ct.EventNew:
			s.stats.events.Add(1)
			s.stats.news.Add(1)
			f := fromKernel(New, ev.Flow)
			if f.Start.IsZero() {
				f.Start = s.lookupStart(ev.Flow)
			}
			if f.Start.IsZero() {
				s.stats.fallbacks.Add(1)
			}
			if err := s.tr.onNew(f, emit); err != nil {
				return err
			}
		case ct.EventDestroy:
			s.stats.events.Add(1)
			s.stats.destroys.Add(1)
			if err := s.tr.onDestroy(fromKernel(Destroy, ev.Flow), emit); err != nil {
				return err
			}
		}
	}
	return nil
}

// lookupStart asks the kernel for the entry's start timestamp; zero if
// disabled, gone already, or not timestamped.
func (s *Source) lookupStart(f *ct.Flow) time.Time {
	if !s.o.LookupStart {
		return time.Time{}
	}
	q, err := s.query.Get(ct.Flow{TupleOrig: f.TupleOrig, Zone: f.Zone})
	if err != nil || q.ID != f.ID || !known(q.Timestamp.Start) {
		return time.Time{}
	}
	return q.Timestamp.Start
}

func (s *Source) lost(f Flow) {
	s.stats.resyncDestroys.Add(1)
	s.log.Debug("conntrack: flow ended unobserved; closing it with its last known counters", "id", f.ID, "proto", f.Proto,
		"src", f.Src, "dst", f.Dst, "sport", f.SrcPort, "dport", f.DstPort, "start", f.Start)
}
