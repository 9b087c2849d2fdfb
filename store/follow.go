package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/flowlog/flowlog"
)

// Follow: the live tail of a shared store. A collector publishes its own
// commits to its tail (ingest's OnCommit); with several collectors on one
// server, a client of one would miss the others'. Follow instead reads
// what anyone committed, by insertion time (flows.inserted_at, set by the
// server), and publishes it; a collector on a server engine wires Follow,
// not OnCommit, into its tail.
//
// Rows become visible some time after their inserted_at (a large insert
// commits after its rows were stamped; a replica receives parts a little
// later; servers' clocks differ), so each poll reads back FollowOverlap
// before the newest stamp seen, and publishes only rows it has not
// published already (by flow, version and event type; so a retried
// envelope's twin rows are published once too). A row that becomes
// visible later than that is not in the tail (it is in the store).
//
// Cost: while anyone listens, each poll reads the rows inserted within
// Overlap + Every, about 6 s of inserts with the defaults (6,000 rows at
// 1,000 events/s; the inserted_at minmax index skips every older granule).
// Nothing is read while nobody listens.

// FollowOptions tune Follow; zero values take the defaults.
type FollowOptions struct {
	Every   time.Duration // between polls; default DefaultFollowEvery
	Overlap time.Duration // read back this far; default DefaultFollowOverlap
	// Active reports whether anyone listens (e.g. the hub has subscribers):
	// while it is false, nothing is read. Nil: always.
	Active func() bool
	Logger *slog.Logger // failed polls; default slog.Default()
}

const (
	DefaultFollowEvery   = time.Second
	DefaultFollowOverlap = 5 * time.Second
)

// follower is Follow's state between polls.
type follower struct {
	s       *Store
	overlap time.Duration
	cursor  int64            // newest inserted_at seen, ms; 0: not started
	seen    map[string]int64 // published rows within the overlap -> inserted_at ms
}

// Follow publishes the events anyone inserts, in insertion order, until ctx
// ends. A failed poll is logged and retried at the next tick.
func (s *Store) Follow(ctx context.Context, o FollowOptions, publish func([]flowlog.Event)) {
	if o.Every <= 0 {
		o.Every = DefaultFollowEvery
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := s.newFollower(o.Overlap)
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if o.Active != nil && !o.Active() {
			f.cursor = 0 // nobody listens: start afresh when someone does
			continue
		}
		evs, err := f.poll(ctx)
		if err != nil {
			if ctx.Err() == nil {
				o.Logger.Warn("live tail: reading the store's new rows failed; retrying", "err", err)
			}
			continue
		}
		publish(evs)
	}
}

func (s *Store) newFollower(overlap time.Duration) *follower {
	if overlap <= 0 {
		overlap = DefaultFollowOverlap
	}
	return &follower{s: s, overlap: overlap, seen: map[string]int64{}}
}

// poll returns the rows not yet published, in insertion order. The first
// poll starts Overlap back from the server's clock.
func (f *follower) poll(ctx context.Context) (evs []flowlog.Event, err error) {
	if f.cursor == 0 {
		var now []struct {
			MS int64 `json:"ms"`
		}
		if err := f.s.queryRows(ctx, "SELECT toUnixTimestamp64Milli(now64(3)) AS ms", &now); err != nil {
			return nil, err
		}
		f.cursor = now[0].MS
		clear(f.seen)
	}
	from := f.cursor - f.overlap.Milliseconds()
	var rows []struct {
		flowRow
		InsMS int64 `json:"ins_ms"`
	}
	q := fmt.Sprintf(`SELECT %s, toUnixTimestamp64Milli(inserted_at) AS ins_ms FROM %s.flows
		WHERE inserted_at >= fromUnixTimestamp64Milli(toInt64(%d), 'UTC') ORDER BY inserted_at`,
		selectFlow, f.s.db, from)
	if err := f.s.queryRows(ctx, q, &rows); err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		k := r.EventType + "\x00" + r.NetworkID + "\x00" + r.HostID + "\x00" + r.FlowID + "\x00" + fmt.Sprint(r.Version)
		if _, dup := f.seen[k]; dup {
			continue
		}
		f.seen[k] = r.InsMS
		evs = append(evs, r.flow(time.Time{}).Event)
		f.cursor = max(f.cursor, r.InsMS)
	}
	for k, ms := range f.seen {
		if ms < f.cursor-f.overlap.Milliseconds() {
			delete(f.seen, k)
		}
	}
	return evs, nil
}
