package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

var _ flowlog.RejectedReader = (*Store)(nil)

// rejectedRow is one rejected event as the SELECT below returns it.
type rejectedRow struct {
	ReceivedMS int64  `json:"received_ms"`
	Peer       string `json:"peer"`
	HostID     string `json:"host_id"`
	Idx        uint32 `json:"idx"`
	Reason     string `json:"reason"`
	Class      string `json:"reason_class"`
	Event      string `json:"event"`
}

// Rejected lists rejected events, newest first, a page by number. FINAL
// collapses a retried envelope's rejects (same host, reason and event) to
// one.
func (s *Store) Rejected(ctx context.Context, f flowlog.RejectedFilter, p flowlog.Page) ([]flowlog.Rejected, error) {
	if p.PerPage <= 0 {
		p.PerPage = 100
	}
	if p.Number <= 0 {
		p.Number = 1
	}
	var where []string
	if f.HostID != "" {
		where = append(where, "host_id = "+quote(f.HostID))
	}
	if f.Class != "" {
		where = append(where, "reason_class = "+quote(f.Class))
	}
	if !f.From.IsZero() {
		where = append(where, fmt.Sprintf("received_at >= fromUnixTimestamp64Milli(%d, 'UTC')", f.From.UnixMilli()))
	}
	if !f.To.IsZero() {
		where = append(where, fmt.Sprintf("received_at <= fromUnixTimestamp64Milli(%d, 'UTC')", f.To.UnixMilli()))
	}
	sql := "SELECT toUnixTimestamp64Milli(received_at) AS received_ms, peer, host_id, idx, reason, reason_class, event FROM " +
		s.db + ".rejected_events FINAL"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += fmt.Sprintf(" ORDER BY received_at DESC, host_id, idx LIMIT %d OFFSET %d", p.PerPage, (p.Number-1)*p.PerPage)
	var rows []rejectedRow
	if err := s.queryRows(ctx, sql, &rows); err != nil {
		return nil, err
	}
	out := make([]flowlog.Rejected, len(rows))
	for i, r := range rows {
		out[i] = flowlog.Rejected{
			Received: time.UnixMilli(r.ReceivedMS).UTC(), Peer: r.Peer, HostID: r.HostID, Index: int(r.Idx),
			Reason: r.Reason, Class: r.Class, Event: r.Event,
		}
	}
	return out, nil
}
