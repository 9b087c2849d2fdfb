package store

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Rollups at the grain of the page's aggregates (migration 9). flows_1h
// keeps every rollup dimension per hour, and at 10M flows over 30 days
// most of its groups (host x source x destination x protocol x direction x
// hour) hold one flow: it has 60% of the rows of flows, and a 30-day top
// list read from it costs about what the raw read does. The page asks for
// far coarser groups, so these tables hold exactly those, per day (per
// hour for the series), each with the shadowed flag (dedupe.go):
//   - pairs_1d: (network, source participant, destination participant):
//     the matrix, and top participants under filters on participants;
//   - talkers_1d: (network, side, participant): top participants;
//   - addrs_1d: (network, side, address): top IPs;
//   - series_1h: (hour, network, protocol, direction): the time series.
//
// They are written by the rollup pass of a day (rollup.go) under the
// generation it writes flows_1h with, and named by the same rollup_days
// row (with grains = 1), so every exactness argument of the rollups holds
// for them unchanged: a reader reads them only for clean days, at the
// generation named, and reads every other day raw. pairs_1d, talkers_1d
// and series_1h are sums of the day's flows_1h rows just written (a
// handful of milliseconds; identical to summing the merged flows, which
// flows_1h is); addrs_1d needs the addresses, so it is summed from the
// merged flows of the day, each row's shadowing decided as for the
// rollups, slice of hosts by slice into addrs_slices, then those sums.

// The tables, cheapest first within each aggregate's candidates
// (aggregate.go plan). dims are the filter columns a table can answer
// (dimConds); nil: every rollup dimension.
var (
	pairs1d = rollupTable{name: "pairs_1d", grain: 24 * time.Hour, ttl: Rollup1hTTL, timeCol: "day", grains: true,
		dims: []string{"network_id", "src_type", "src_entity_id", "src_entity_name", "dst_type", "dst_entity_id", "dst_entity_name"}}
	talkers1d = rollupTable{name: "talkers_1d", grain: 24 * time.Hour, ttl: Rollup1hTTL, timeCol: "day", grains: true, sides: true,
		dims: []string{"network_id"}}
	addrs1d = rollupTable{name: "addrs_1d", grain: 24 * time.Hour, ttl: Rollup1hTTL, timeCol: "day", grains: true, sides: true,
		dims: []string{"network_id"}}
	series1h = rollupTable{name: "series_1h", grain: time.Hour, ttl: Rollup1hTTL, timeCol: "bucket", grains: true,
		dims: []string{"network_id", "protocol", "direction"}}

	// By hour of start (migration 12): the hours of the days the day
	// tables above do not serve (rollup.go, "Hours").
	talkers1h = rollupTable{name: "talkers_1h", grain: time.Hour, ttl: RollupHourTTL, timeCol: "hour", hourly: true, sides: true,
		key:  "hour, network_id, shadowed, side, ptype, pid, pname",
		dims: []string{"network_id"}}
	addrs1h = rollupTable{name: "addrs_1h", grain: time.Hour, ttl: RollupHourTTL, timeCol: "hour", hourly: true, sides: true,
		key:  "hour, network_id, shadowed, side, ip",
		dims: []string{"network_id"}}
)

// By hour of start (migration 15): the time series ("By hour of start"
// below).
var seriesSH = rollupTable{name: "series_sh", grain: time.Hour, ttl: Rollup1hTTL, timeCol: "hour",
	key:  "hour, network_id, protocol, direction, shadowed, bucket",
	dims: []string{"network_id", "protocol", "direction"}}

// RollupHourTTL is how long talkers_1h and addrs_1h keep their rows: the
// raw flows' default retention and a few days, as they serve the first
// day of a range reaching that far back.
const RollupHourTTL = 35 * 24 * time.Hour

// hourTwin is the table serving the hours of the days r does not serve
// (nil: none). flows_1h keeps its flows, bytes and packets by hour of
// start, so it serves the hours of pairs_1d and its own; its spread
// columns are by bucket, which no mark names (rollup.go, "Hours").
func (r *rollupTable) hourTwin() *rollupTable {
	switch r.name {
	case talkers1d.name:
		return &talkers1h
	case addrs1d.name:
		return &addrs1h
	case pairs1d.name, rollup1h.name:
		return &rollup1h
	}
	return nil
}

// dimColumnRe finds the rollup dimensions a condition of dimConds names
// (a quoted value spelling a column's name adds that column: a costlier
// table, never a wrong one).
var dimColumnRe = regexp.MustCompile(`\b(` + strings.ReplaceAll(rollupDims, ", ", "|") + `)\b`)

// serves says whether r can answer every condition of conds (dimConds).
func (r *rollupTable) serves(conds []string) bool {
	if r.dims == nil {
		return true
	}
	for _, c := range dimColumnRe.FindAllString(strings.Join(conds, " "), -1) {
		found := false
		for _, d := range r.dims {
			found = found || d == c
		}
		if !found {
			return false
		}
	}
	return true
}

// grainsInsertSQL recomputes one day of the page's rollups under
// generation gen, after flows_1h got the day's rows of gen, with those by
// hour when hours is set; the addresses slice by slice (rollup.go,
// "Slices").
func (s *Store) grainsInsertSQL(day string, gen int64, hours bool, slices [][]string) []string {
	d, _ := time.Parse(dayLayout, day)
	next := d.Add(24 * time.Hour).Format(dayLayout)
	hour := fmt.Sprintf("%s.flows_1h WHERE bucket >= toDateTime('%s 00:00:00', 'UTC') AND bucket < toDateTime('%s 00:00:00', 'UTC') AND gen = %d",
		s.db, day, next, gen)
	sum := saturatingSum
	totals := sum("bytes") + ", " + sum("packets") + ", " + sum("flows")
	pair := "network_id, shadowed, src_type, src_entity_id, src_entity_name, dst_type, dst_entity_id, dst_entity_name"
	pairs := fmt.Sprintf(`INSERT INTO %[1]s.pairs_1d (day, gen, %[2]s, bytes, packets, flows)
		SELECT toDate('%[3]s') AS day_r, toInt64(%[4]d) AS gen_r, %[2]s, %[5]s
		FROM %[6]s AND flows > 0 GROUP BY %[2]s`, s.db, pair, day, gen, totals, hour)
	talkers := fmt.Sprintf(`INSERT INTO %[1]s.talkers_1d (day, gen, network_id, shadowed, side, ptype, pid, pname, bytes, packets, flows)
		SELECT day, gen, network_id, shadowed, p.1 AS side_r, p.2 AS ptype_r, p.3 AS pid_r, p.4 AS pname_r, %[2]s
		FROM %[1]s.pairs_1d
		ARRAY JOIN [(toUInt8(0), src_type, src_entity_id, src_entity_name), (toUInt8(1), dst_type, dst_entity_id, dst_entity_name)] AS p
		WHERE day = '%[3]s' AND gen = %[4]d
		GROUP BY day, gen, network_id, shadowed, side_r, ptype_r, pid_r, pname_r`, s.db, totals, day, gen)
	series := fmt.Sprintf(`INSERT INTO %[1]s.series_1h (bucket, gen, network_id, protocol, direction, shadowed, flows, spread_bytes, spread_packets)
		SELECT bucket, gen, network_id, protocol, direction, shadowed, %[2]s, %[3]s, %[4]s
		FROM %[5]s GROUP BY bucket, gen, network_id, protocol, direction, shadowed`,
		s.db, sum("flows"), sum("spread_bytes"), sum("spread_packets"), hour)
	out := []string{pairs, talkers, series}
	if hours {
		out = append(out, fmt.Sprintf(`INSERT INTO %[1]s.talkers_1h (hour, gen, network_id, shadowed, side, ptype, pid, pname, bytes, packets, flows)
		SELECT bucket, gen, network_id, shadowed, p.1 AS side_r, p.2 AS ptype_r, p.3 AS pid_r, p.4 AS pname_r, %[2]s
		FROM (SELECT * FROM %[3]s AND flows > 0)
		ARRAY JOIN [(toUInt8(0), src_type, src_entity_id, src_entity_name), (toUInt8(1), dst_type, dst_entity_id, dst_entity_name)] AS p
		GROUP BY bucket, gen, network_id, shadowed, side_r, ptype_r, pid_r, pname_r`, s.db, totals, hour))
	}
	// The addresses, from the merged flows of the day, shadowing decided
	// against the egress rows of the day and its neighbours (dedupe.go),
	// each slice's sums by hour of start in addrs_slices, then their sums
	// by hour, and the day's as the sums of those, or by day directly.
	part := []string{d.Format(partitionLayout)}
	for i, slice := range slices {
		read, shadowed := s.sliceRead(part, slice)
		out = append(out, fmt.Sprintf(`INSERT INTO %[1]s.addrs_slices (gen, slice, hour, network_id, shadowed, side, ip, bytes, packets, flows)
		SELECT toInt64(%[2]d) AS gen_r, toUInt32(%[3]d) AS slice_r, t_r, network_id, shadowed_r, a.1 AS side_r, a.2 AS ip_r,
			toUInt64(least(sum(nb), %[4]s)), toUInt64(least(sum(np), %[4]s)), count()
		FROM (SELECT toStartOfHour(start_ts) AS t_r, network_id, src_ip, dst_ip, toUInt8(%[5]s) AS shadowed_r, %[6]s AS nb, %[7]s AS np FROM %[8]s)
		ARRAY JOIN [(toUInt8(0), src_ip), (toUInt8(1), dst_ip)] AS a
		GROUP BY t_r, network_id, shadowed_r, side_r, ip_r`,
			s.db, gen, i, maxUInt64, shadowed, sumBytes, sumPackets, s.rawFrom(read)))
	}
	slicesOf := fmt.Sprintf("%s.addrs_slices WHERE gen = %d", s.db, gen)
	if !hours {
		return append(out, fmt.Sprintf(`INSERT INTO %[1]s.addrs_1d (day, gen, network_id, shadowed, side, ip, bytes, packets, flows)
		SELECT toDate('%[2]s') AS day_r, gen, network_id, shadowed, side, ip, %[3]s
		FROM %[4]s GROUP BY gen, network_id, shadowed, side, ip`, s.db, day, totals, slicesOf))
	}
	addrsH := fmt.Sprintf(`INSERT INTO %[1]s.addrs_1h (hour, gen, network_id, shadowed, side, ip, bytes, packets, flows)
		SELECT hour, gen, network_id, shadowed, side, ip, %[2]s
		FROM %[3]s GROUP BY hour, gen, network_id, shadowed, side, ip`, s.db, totals, slicesOf)
	addrsD := fmt.Sprintf(`INSERT INTO %[1]s.addrs_1d (day, gen, network_id, shadowed, side, ip, bytes, packets, flows)
		SELECT toDate('%[2]s') AS day_r, gen, network_id, shadowed, side, ip, %[3]s
		FROM %[1]s.addrs_1h WHERE hour >= toDateTime('%[2]s 00:00:00', 'UTC') AND hour < toDateTime('%[4]s 00:00:00', 'UTC') AND gen = %[5]d
		GROUP BY gen, network_id, shadowed, side, ip`, s.db, day, totals, next, gen)
	return append(out, addrsH, addrsD)
}

// By hour of start. series_1h holds the bytes that flowed in each hour,
// whenever their flows started, so it is exact for a bucket only when the
// day is clean and the day before too (a flow reaches up to spreadHorizon
// past its start), and a bucket of a dirty day is read raw with every flow
// started up to a day before it: the partial first day of a "last 30
// days" and today cost two day partitions each under FINAL. series_sh
// keeps the same sums apart by the hour their flows started in. Every
// insert that changes what a start hour's flows spread (a DESTROY, a
// retry, an egress row shadowing an ingress one) marks that start hour,
// so a clean start hour's rows are exact for every bucket they reach, and
// a series reads raw only the flows of the start hours that are dirty
// (the hour being written) or not rolled up (aggregate.go startsPlan).
// A day's pass writes the start hours of its own flows, with every bucket
// they reach (the day and the next), slice of hosts by slice into
// series_slices, then their sums.

// startsInsertSQL recomputes the series_sh rows of the flows started on
// day, under generation gen: each slice of hosts (hostSlices) sums its
// flows into series_slices, and the last statement adds the slices up.
func (s *Store) startsInsertSQL(day string, gen int64, slices [][]string) []string {
	d, _ := time.Parse(dayLayout, day)
	part := []string{d.Format(partitionLayout)}
	dims := "network_id, protocol, direction, "
	var out []string
	for i, slice := range slices {
		read, shadowed := s.sliceRead(part, slice)
		spread := spreadSQL(s.db+".flows FINAL "+whereOf(read), "toStartOfHour(start_ts) AS hour_r, "+dims+"toUInt8("+shadowed+") AS shadowed_r, ",
			"hour_r, "+dims+"shadowed_r, e0, ", hourMS, d.UnixMilli(), 1<<62)
		out = append(out, fmt.Sprintf(`INSERT INTO %[1]s.series_slices (gen, slice, hour, bucket, %[2]sshadowed, flows, spread_bytes, spread_packets, last_end)
		SELECT toInt64(%[3]d) AS gen_r, toUInt32(%[4]d) AS slice_r, hour_r, toDateTime(t, 'UTC') AS bucket_r, %[2]sshadowed_r,
			toUInt64(sum(nf)), toUInt64(least(sum(nb), %[5]s)), toUInt64(least(sum(np), %[5]s)), max(e0)
		FROM (%[6]s)
		GROUP BY hour_r, bucket_r, %[2]sshadowed_r`,
			s.db, dims, gen, i, maxUInt64, spread))
	}
	sum := saturatingSum
	return append(out, fmt.Sprintf(`INSERT INTO %[1]s.series_sh (hour, bucket, gen, %[2]sshadowed, flows, spread_bytes, spread_packets, last_end)
		SELECT hour, bucket, gen, %[2]sshadowed, %[3]s, %[4]s, %[5]s, max(last_end)
		FROM %[1]s.series_slices WHERE gen = %[6]d
		GROUP BY hour, bucket, gen, %[2]sshadowed`,
		s.db, dims, sum("flows"), sum("spread_bytes"), sum("spread_packets"), gen))
}
