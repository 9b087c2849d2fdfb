package store

import (
	"sync"

	"github.com/flowlog/flowlog/store/chdb"
)

// marks spares an insert the second write of its commit when it can: the
// dirty mark of an hour this Store marked already, if no rollup pass can have
// covered that mark since (see "Exactness argument" in rollup.go). At a
// light load every group commit is two fsync'd inserts, the flows and the
// marks; the marks are the same hours almost every time (the current one), and the
// acks of a stock agent, which drops a batch after three tries 300 ms
// apart, wait for both.
//
// Why skipping is exact. Say this Store marked hour d with stamp S0 and no
// pass began since (passes record a stamp, from the same strictly increasing
// clock, before they read any mark). A batch whose rows are now committed
// skips its mark of d. No pass can have set covers >= S0 yet (a pass covers
// only marks it read, and none read since S0), so d stays dirty and readers
// read it raw; every later pass begins after these rows committed, so the
// pass that finally covers S0 reads them. If a pass began after S0 (even
// one still running), the batch marks d again, as always.
//
// Only a sole writer may skip: the embedded engine, whose data directory
// one process holds, outside cluster mode. Collectors sharing a ClickHouse
// server cannot see each other's passes, so they mark every commit.
type marks struct {
	sole bool

	mu        sync.Mutex
	passBegan int64           // stamp of the latest rollup pass's start
	last      map[int64]int64 // hour (hours since the epoch) -> this Store's latest mark of it

	wrote uint64                // writes of rollup_marks and rollup_days so far (cached)
	clean map[string]cleanState // cleanDays answers by query, read at wrote
}

func newMarks(eng Engine, cluster string) *marks {
	_, embedded := eng.(*chdb.DB)
	return &marks{sole: embedded && cluster == "", last: map[int64]int64{}}
}

// passBegins records that a rollup pass is about to read the marks.
func (m *marks) passBegins(stamp int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.passBegan = stamp
}

// needed returns the hours of a committed batch that must be marked.
func (m *marks) needed(days map[int64]struct{}) []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]int64, 0, len(days))
	for d := range days {
		if !m.sole || m.last[d] <= m.passBegan {
			out = append(out, d)
		}
	}
	return out
}

// marked records the stamp the given hours were marked with (after the
// marks are committed).
func (m *marks) marked(days []int64, stamp int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.last) > 1024 { // hours a long-running collector marked once: forget them all
		clear(m.last)
	}
	for _, d := range days {
		m.last[d] = max(m.last[d], stamp)
	}
}

// The rollup state (cleanDays) a sole writer reads from memory. Every
// aggregate asks which days and hours are clean (a join of rollup_days and
// rollup_marks, ~6 ms at 30 days of marks, BENCHMARKS.md); only this Store
// writes those tables, so an answer holds until it writes one of them.
// Each write bumps wrote, after it ends (failed or not); an answer is
// kept under the count read before its query began, so one read while a
// write was under way is dropped at the bump. A reader served from memory
// between a write's commit and its bump sees the state just before the
// write, as a reader whose query ran a moment earlier would: the rows the
// write stands for are not acknowledged yet (markDirty returns first).

// cached returns the clean days last read for the query key (ok false:
// none, or stale), and the count a new answer is to be kept under.
func (m *marks) cached(key string) (days map[string]cleanDay, at uint64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clean[key]
	return c.days, m.wrote, ok && m.sole && c.at == m.wrote
}

// keep remembers the answer to key, read after count at was seen.
func (m *marks) keep(key string, days map[string]cleanDay, at uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.sole || at != m.wrote {
		return
	}
	if m.clean == nil || len(m.clean) >= 64 { // ranges of other days: forget them all
		m.clean = map[string]cleanState{}
	}
	m.clean[key] = cleanState{days: days, at: at}
}

// wroteState records that this Store wrote rollup_marks or rollup_days.
func (m *marks) wroteState() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wrote++
	clear(m.clean)
}

type cleanState struct {
	days map[string]cleanDay
	at   uint64
}
