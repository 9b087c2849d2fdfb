package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"
)

// Rollup claims: any number of collectors share one server, each running
// the rollup job (rollup.go). Recomputing a day twice is harmless (each
// pass writes a complete generation, readers use the latest named one) but
// wasted, so before recomputing a change of a day (the day's latest mark
// in rollup_marks) a collector claims it, and only the winner goes ahead:
//   - a claim is a row (day, marked, owner, claimed) inserted with a
//     deduplication token naming the round: (day, marked, lease epoch).
//     The table keeps the first block of a token and drops the others
//     (deduplication through Keeper on a cluster, the table's window on one
//     server), so one claim per round lands, whoever sent the others;
//   - the winner is the owner of the earliest live claim of (day, marked);
//     all claimants read the same rows once they are visible to them;
//   - a claim is live for rollupLease: a winner that died mid-recomputation
//     holds the change off no longer than that; the next round's claim
//     (a new epoch, so a new token) then wins;
//   - the claim is an optimisation, never a condition of exactness: if two
//     collectors both believe they won (a claim not yet visible on the
//     replica one reads, claims on both sides of an epoch boundary, marks
//     read at different moments), both recompute, and the answer is the
//     same.
// The embedded engine runs the same statements (one collector: always
// the winner).

// rollupLease bounds how long a claim holds off the other collectors; a
// day's recomputation takes about a second (BENCHMARKS.md).
const rollupLease = 10 * time.Minute

// claim reports whether this store should recompute (day, marked).
func (s *Store) claim(ctx context.Context, day string, marked int64) (bool, error) {
	now := s.now().UnixNano()
	token := fmt.Sprintf("rollup-claim-%s-%d-%d", day, marked, now/int64(rollupLease))
	if err := s.eng.Exec(ctx, fmt.Sprintf("INSERT INTO %s.rollup_claims (day, marked, owner, claimed) "+
		"SETTINGS insert_deduplicate = 1, insert_deduplication_token = %s VALUES ('%s', %d, %s, %d)",
		s.db, quote(token), day, marked, quote(s.owner), now)); err != nil {
		return false, fmt.Errorf("claiming the rollup of %s: %w", day, err)
	}
	var rows []struct {
		Winner string `json:"winner"`
	}
	// Live claims: within the lease, and for the embedded engine made since
	// this store opened. Its directory is one process's, so an older claim
	// is a process's that is gone (stopped mid-pass, or crashed): a
	// restarted collector would otherwise leave the day to it, read raw,
	// for up to the lease.
	since := now - int64(rollupLease)
	if s.marks.sole {
		since = max(since, s.opened)
	}
	q := fmt.Sprintf(`SELECT argMin(owner, (claimed, owner)) AS winner FROM %s.rollup_claims
		WHERE day = '%s' AND marked = %d AND claimed > %d`, s.db, day, marked, since)
	if err := s.queryRows(ctx, q, &rows); err != nil {
		return false, fmt.Errorf("reading the rollup claims of %s: %w", day, err)
	}
	// No visible claim (a replica lagging behind the insert): go ahead.
	return len(rows) == 0 || rows[0].Winner == "" || rows[0].Winner == s.owner, nil
}

// newOwner names this store among the collectors sharing a server: host,
// process and a random part (two stores in one process differ).
func newOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}
