package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

// The console's views (flowlog.Insights): hosts, new pairs, suggestions.
// Each is one or two queries over the flows table through the helpers of
// query.go (conds, rawFrom), so the filter means what it means everywhere.

var _ flowlog.Insights = (*Store)(nil)

// Hosts lists every host with a stored event (all retained days, so a
// host that went quiet is listed too, with zeros), with its activity over
// f's window. Networks scope both (f.NetworkID, f.Networks).
func (s *Store) Hosts(ctx context.Context, f flowlog.Filter) ([]flowlog.HostSummary, error) {
	// What each host reported, both ends of a connection included: this
	// is about the reporters, not about counting connections once.
	f.Observations = flowlog.ObserveAll
	// The last report is the newest insert of any row of the host: a plain
	// (unmerged) read of two columns, no FINAL needed for a max.
	var last []struct {
		HostID string `json:"host_id"`
		Name   string `json:"name"`
		LastMS int64  `json:"last_ms"`
	}
	if err := s.queryRows(ctx, fmt.Sprintf(`SELECT host_id, argMax(host_name, inserted_at) AS name,
		toUnixTimestamp64Milli(max(inserted_at)) AS last_ms FROM %s.flows %s GROUP BY host_id`,
		s.db, whereOf(dimConds(flowlog.Filter{NetworkID: f.NetworkID, Networks: f.Networks, HostID: f.HostID}))), &last); err != nil {
		return nil, fmt.Errorf("querying hosts: %w", err)
	}
	// A finished flow is two events (START, DESTROY), an open one is one.
	var win []struct {
		HostID string   `json:"host_id"`
		Nets   []string `json:"nets"`
		Flows  uint64   `json:"flows"`
		Active uint64   `json:"open"`
		Bytes  uint64   `json:"b"`
	}
	if err := s.queryRows(ctx, fmt.Sprintf(`SELECT host_id, arraySort(groupUniqArray(network_id)) AS nets, count() AS flows,
		countIf(event_type = 'start') AS open, sum(bytes_sent + bytes_recv) AS b FROM %s GROUP BY host_id`,
		s.rawFrom(s.conds(f, s.staleCutoff()))), &win); err != nil {
		return nil, fmt.Errorf("querying host activity: %w", err)
	}
	rejected := map[string]uint64{}
	var rej []struct {
		HostID string `json:"host_id"`
		N      uint64 `json:"n"`
	}
	rc := []string{}
	if !f.From.IsZero() {
		rc = append(rc, "received_at >= "+ms(f.From))
	}
	if !f.To.IsZero() {
		rc = append(rc, "received_at < "+ms(f.To))
	}
	if err := s.queryRows(ctx, fmt.Sprintf("SELECT host_id, count() AS n FROM %s.rejected_events %s GROUP BY host_id", s.db, whereOf(rc)), &rej); err != nil {
		return nil, fmt.Errorf("querying rejected events: %w", err)
	}
	for _, r := range rej {
		rejected[r.HostID] = r.N
	}
	agents, err := s.agentsOf(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]flowlog.HostSummary, 0, len(last))
	idx := map[string]int{}
	for _, l := range last {
		idx[l.HostID] = len(out)
		out = append(out, flowlog.HostSummary{HostID: l.HostID, HostName: l.Name, LastReport: time.UnixMilli(l.LastMS).UTC(),
			Rejected: rejected[l.HostID], Agents: agents[l.HostID]})
	}
	for _, w := range win {
		i, ok := idx[w.HostID]
		if !ok { // inserted between the two queries
			continue
		}
		h := &out[i]
		h.Networks, h.Flows, h.Active, h.Bytes = w.Nets, w.Flows, w.Active, w.Bytes
		h.Events = 2*w.Flows - w.Active
	}
	slices.SortFunc(out, func(a, b flowlog.HostSummary) int {
		return strings.Compare(strings.ToLower(a.HostName+"\x00"+a.HostID), strings.ToLower(b.HostName+"\x00"+b.HostID))
	})
	return out, nil
}

// pairKey is how NewPairs identifies an endpoint: its id, else its name,
// else (externals, unnamed ones) its address.
func pairKey(side string) string {
	return fmt.Sprintf("multiIf(%[1]s_type = 'external', IPv6NumToString(%[1]s_ip), %[1]s_entity_id != '', %[1]s_entity_id, %[1]s_entity_name != '', %[1]s_entity_name, IPv6NumToString(%[1]s_ip))", side)
}

// NewPairs reads the merged flows of [BaselineFrom, To) once, grouped by
// pair, and keeps the pairs whose first flow starts at or after From: a
// pair with any flow in the baseline is not new.
func (s *Store) NewPairs(ctx context.Context, q flowlog.NewPairsQuery) ([]flowlog.NewPair, error) {
	if q.Filter.From.IsZero() || !q.BaselineFrom.Before(q.Filter.From) {
		return nil, fmt.Errorf("new pairs: the baseline must start before the window")
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	f := q.Filter
	f.From = q.BaselineFrom
	var rows []struct {
		ST      uint8  `json:"st"`
		SK      string `json:"sk"`
		SID     string `json:"sid"`
		SN      string `json:"sn"`
		SIP     string `json:"sip"`
		DT      uint8  `json:"dt"`
		DK      string `json:"dk"`
		DID     string `json:"did"`
		DN      string `json:"dn"`
		DIP     string `json:"dip"`
		DP      uint16 `json:"dp"`
		PR      uint8  `json:"pr"`
		FirstMS int64  `json:"first_ms"`
		LastMS  int64  `json:"last_ms"`
		Flows   uint64 `json:"n"`
		Bytes   uint64 `json:"b"`
		Packets uint64 `json:"p"`
	}
	sql := fmt.Sprintf(`SELECT toInt8(src_type) AS st, %s AS sk, any(src_entity_id) AS sid, any(src_entity_name) AS sn, any(IPv6NumToString(src_ip)) AS sip,
		toInt8(dst_type) AS dt, %s AS dk, any(dst_entity_id) AS did, any(dst_entity_name) AS dn, any(IPv6NumToString(dst_ip)) AS dip,
		dst_port AS dp, protocol AS pr,
		toUnixTimestamp64Milli(min(start_ts)) AS first_ms, toUnixTimestamp64Milli(max(start_ts)) AS last_ms,
		count() AS n, sum(bytes_sent + bytes_recv) AS b, sum(packets_sent + packets_recv) AS p
		FROM %s GROUP BY st, sk, dt, dk, dp, pr HAVING min(start_ts) >= %s
		ORDER BY n DESC, b DESC, first_ms ASC, sk, dk, dp, pr LIMIT %d`,
		pairKey("src"), pairKey("dst"), s.rawFrom(s.conds(f, s.staleCutoff())), ms(q.Filter.From), q.Limit)
	if err := s.queryRows(ctx, sql, &rows); err != nil {
		return nil, fmt.Errorf("querying new pairs: %w", err)
	}
	out := make([]flowlog.NewPair, len(rows))
	for i, r := range rows {
		out[i] = flowlog.NewPair{
			Src: participant(r.SIP, r.ST, r.SID, r.SN), Dst: participant(r.DIP, r.DT, r.DID, r.DN),
			DstPort: r.DP, Protocol: r.PR,
			First: time.UnixMilli(r.FirstMS).UTC(), Last: time.UnixMilli(r.LastMS).UTC(),
			Totals: flowlog.Totals{Bytes: r.Bytes, Packets: r.Packets, Flows: r.Flows},
		}
	}
	return out, nil
}

// Suggest reads the flows unmerged (a name is a name in either row of a
// flow; counts only rank) and answers participants by id (externals have
// none: they are filtered by address), hosts and networks.
func (s *Store) Suggest(ctx context.Context, f flowlog.Filter, text string, limit int) ([]flowlog.Suggestion, error) {
	// What each host reported, both ends of a connection included: this
	// is about the reporters, not about counting connections once.
	f.Observations = flowlog.ObserveAll
	if limit <= 0 {
		limit = 20
	}
	w := whereOf(s.conds(f, s.staleCutoff()))
	part := func(side string) string {
		return fmt.Sprintf("SELECT 'participant' AS field, %[1]s_entity_id AS value, %[1]s_entity_name AS label, toString(%[1]s_type) AS t, count() AS n FROM %[2]s.flows %[3]s GROUP BY value, label, t",
			side, s.db, w)
	}
	match := "1"
	if text != "" {
		match = fmt.Sprintf("(positionCaseInsensitiveUTF8(value, %[1]s) > 0 OR positionCaseInsensitiveUTF8(label, %[1]s) > 0)", quote(text))
	}
	sql := fmt.Sprintf(`SELECT field, value, argMax(label, n) AS lbl, argMax(t, n) AS typ, sum(n) AS flows FROM (
		%s UNION ALL %s
		UNION ALL SELECT 'node_id' AS field, host_id AS value, host_name AS label, '' AS t, count() AS n FROM %[3]s.flows %[4]s GROUP BY value, label
		UNION ALL SELECT 'network_id' AS field, network_id AS value, network_id AS label, '' AS t, count() AS n FROM %[3]s.flows %[4]s GROUP BY value
	) WHERE value != '' AND %[5]s GROUP BY field, value ORDER BY field, flows DESC, value LIMIT %[6]d BY field`,
		part("src"), part("dst"), s.db, w, match, limit)
	var rows []struct {
		Field string `json:"field"`
		Value string `json:"value"`
		Label string `json:"lbl"`
		Type  string `json:"typ"`
		Flows uint64 `json:"flows"`
	}
	if err := s.queryRows(ctx, sql, &rows); err != nil {
		return nil, fmt.Errorf("querying suggestions: %w", err)
	}
	out := make([]flowlog.Suggestion, len(rows))
	for i, r := range rows {
		out[i] = flowlog.Suggestion{Field: r.Field, Value: r.Value, Label: r.Label, Type: r.Type, Flows: r.Flows}
	}
	return out, nil
}

// stackKey is the SQL of a stack key: a protocol or port number, or an
// endpoint's name, else id, else address.
func stackKey(by string) (string, error) {
	switch by {
	case "protocol":
		return "toString(protocol)", nil
	case "port":
		return "toString(dst_port)", nil
	case "src", "dst":
		return fmt.Sprintf("multiIf(%[1]s_entity_name != '', %[1]s_entity_name, %[1]s_entity_id != '', %[1]s_entity_id, IPv6NumToString(%[1]s_ip))", by), nil
	}
	return "", fmt.Errorf("stacked series: unknown key %q", by)
}

// SeriesBy reads the merged flows twice: once for the top groups over the
// whole window (flows started in it), once for the buckets, with the other
// groups folded into "". Buckets are aligned to the epoch and hold the
// bytes that flowed in them, as Series' do (spreadSQL), so the groups add
// up to the series.
func (s *Store) SeriesBy(ctx context.Context, f flowlog.Filter, step time.Duration, by string, limit int) ([]flowlog.GroupPoint, error) {
	key, err := stackKey(by)
	if err != nil {
		return nil, err
	}
	if step < time.Second {
		return nil, fmt.Errorf("stacked series: step %v below a second", step)
	}
	if limit <= 0 {
		limit = 5
	}
	cutoff := s.staleCutoff()
	from := s.rawFrom(s.conds(f, cutoff))
	back, lo, hi := spreadRange(f)
	spread := spreadSQL(s.rawFrom(s.conds(back, cutoff)), key+" AS k, ", "k, ", step.Milliseconds(), lo, hi)
	sql := fmt.Sprintf(`SELECT intDiv(toUnixTimestamp64Milli(t), 1000) AS ts,
		if(k IN (SELECT k FROM (SELECT %[1]s AS k, sum(bytes_sent + bytes_recv) AS kb FROM %[2]s GROUP BY k ORDER BY kb DESC, k LIMIT %[3]d)), k, '') AS g,
		%[4]s FROM (%[5]s)
		GROUP BY ts, g ORDER BY ts, g`, key, from, limit, totalsSel, spread)
	var rows []struct {
		T int64  `json:"ts"`
		G string `json:"g"`
		totalsRow
	}
	if err := s.queryRows(ctx, sql, &rows); err != nil {
		return nil, fmt.Errorf("querying stacked series: %w", err)
	}
	out := make([]flowlog.GroupPoint, len(rows))
	for i, r := range rows {
		out[i] = flowlog.GroupPoint{Key: r.G, T: time.Unix(r.T, 0).UTC(), Totals: r.totals()}
	}
	return out, nil
}
