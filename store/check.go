package store

import (
	"context"
	"errors"
)

// What tools that check a store against what was acknowledged need (the
// benchmark's verification): counts of one network, merged either way the
// API reads, and its raw rows.

// Counts are one network's merged flows: every flow once, at its latest
// version; bytes are those of finished flows (their DESTROY).
type Counts struct {
	Flows     int64  `json:"flows"`
	Finished  int64  `json:"finished"`
	BytesSent uint64 `json:"bytes_sent"`
	BytesRecv uint64 `json:"bytes_recv"`
}

// NetworkCounts counts network's flows merged with FINAL (as the API reads).
func (s *Store) NetworkCounts(ctx context.Context, network string) (Counts, error) {
	return s.oneCounts(ctx, `SELECT count() AS flows, countIf(event_type = 'destroy') AS finished,
		sumIf(bytes_sent, event_type = 'destroy') AS bytes_sent, sumIf(bytes_recv, event_type = 'destroy') AS bytes_recv
		FROM `+s.db+`.flows FINAL WHERE network_id = `+quote(network))
}

// NetworkCountsArgMax counts network's flows merged by argMax of version
// (the other merged read), so a row that FINAL would miss shows up here.
func (s *Store) NetworkCountsArgMax(ctx context.Context, network string) (Counts, error) {
	return s.oneCounts(ctx, `SELECT count() AS flows, countIf(t = 'destroy') AS finished,
		sumIf(bs, t = 'destroy') AS bytes_sent, sumIf(br, t = 'destroy') AS bytes_recv
		FROM (SELECT flow_id, argMax(event_type, version) AS t, argMax(bytes_sent, version) AS bs, argMax(bytes_recv, version) AS br
		      FROM `+s.db+`.flows WHERE network_id = `+quote(network)+` GROUP BY flow_id)`)
}

// NetworkRows counts network's raw rows, before any merge (retries and
// START/DESTROY pairs not yet collapsed).
func (s *Store) NetworkRows(ctx context.Context, network string) (int64, error) {
	var rows []struct {
		N int64 `json:"n"`
	}
	if err := s.queryRows(ctx, "SELECT count() AS n FROM "+s.db+".flows WHERE network_id = "+quote(network), &rows); err != nil {
		return 0, err
	}
	if len(rows) != 1 {
		return 0, errors.New("count query returned no row")
	}
	return rows[0].N, nil
}

// StopMerges pauses background merges of the flows table, so that a
// measurement right after a load is not competing with them.
func (s *Store) StopMerges(ctx context.Context) error {
	return s.eng.Exec(ctx, "SYSTEM STOP MERGES "+s.db+".flows")
}

// DropDatabase removes the database name and everything in it (a
// benchmark's scratch database before a fresh run).
func DropDatabase(ctx context.Context, eng Engine, name string) error {
	return eng.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" SYNC")
}

func (s *Store) oneCounts(ctx context.Context, sql string) (Counts, error) {
	var out []Counts
	if err := s.queryRows(ctx, sql, &out); err != nil {
		return Counts{}, err
	}
	if len(out) != 1 {
		return Counts{}, errors.New("aggregate query returned no row")
	}
	return out[0], nil
}
