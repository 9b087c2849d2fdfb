package ingest

import (
	"fmt"
	"sync"
	"time"
)

// DefaultMaxCommitStall is the commit backlog age past which Ready fails: far
// longer than a healthy group commit (milliseconds to a few seconds), and
// than InsertTimeout, so a store that hangs every insert is reported.
const DefaultMaxCommitStall = time.Minute

// backlogWatch remembers the last time the commit backlog was seen empty or
// moving (a commit succeeded), as asked by CommitBacklog.
type backlogWatch struct {
	mu        sync.Mutex
	committed int64 // rows committed when last asked
	since     time.Time
}

// CommitBacklog is the number of rows received and not yet committed, and
// how long they have been stuck: the time since this method last saw no
// backlog or a successful commit. A readiness probe calls it every few
// seconds, which is its resolution.
func (s *Server) CommitBacklog() (rows int64, stuck time.Duration) {
	rows = s.commit.pending.Load()
	committed := s.commit.stats.rows.Load()
	now := s.now()
	w := &s.backlog
	w.mu.Lock()
	defer w.mu.Unlock()
	if rows == 0 || committed != w.committed || w.since.IsZero() {
		w.committed, w.since = committed, now
	}
	return rows, now.Sub(w.since)
}

// Ready is nil unless rows have waited for commit longer than maxStall
// (0: DefaultMaxCommitStall): the store takes envelopes but does not commit
// them, and acks stop. For /readyz.
func (s *Server) Ready(maxStall time.Duration) error {
	if maxStall <= 0 {
		maxStall = DefaultMaxCommitStall
	}
	if rows, stuck := s.CommitBacklog(); rows > 0 && stuck >= maxStall {
		return fmt.Errorf("commit backlog: %d rows waiting, no commit succeeded for %s (limit %s)", rows, stuck.Round(time.Second), maxStall)
	}
	return nil
}
