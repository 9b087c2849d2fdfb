package enrich

import "sync/atomic"

// Stats counts verdicts. It is owned by the caller, not the Table, so counts
// survive config reloads; safe for concurrent use.
type Stats struct {
	n [numVerdicts]atomic.Uint64
}

// Add counts one verdict.
func (s *Stats) Add(v Verdict) {
	if v < numVerdicts {
		s.n[v].Add(1)
	}
}

// Count is the number of flows that got verdict v.
func (s *Stats) Count(v Verdict) uint64 {
	if v < numVerdicts {
		return s.n[v].Load()
	}
	return 0
}

// Snapshot returns all counts by verdict name ("keep", "out_of_scope",
// "drop_protocol", "drop_port", "drop_cidr"), e.g. for metrics or logs.
func (s *Stats) Snapshot() map[string]uint64 {
	m := make(map[string]uint64, numVerdicts)
	for v := Verdict(0); v < numVerdicts; v++ {
		m[v.String()] = s.n[v].Load()
	}
	return m
}
