package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

// One connection, one count. In a mesh both ends of most connections run an
// agent, and each reports the connection: the initiator as egress, the
// responder as ingress, under different flow ids. Both observations carry
// the connection's original tuple (src = initiator, dst = responder) and the
// same network, so conn_key (a hash of network, protocol, addresses, ports
// and ICMP type and code, computed by the table at insert) is the same for
// both.
//
// An ingress observation is "shadowed" when an egress observation with its
// conn_key started within PeerSkew of it (the hosts' clocks differ). Reads
// that count connections leave shadowed rows out: each connection counts
// once, as its initiator saw it, and a connection only one end reports
// counts once as it did before. Shadowing is decided when reading (raw
// flows) or when a day's rollup is recomputed (the shadowed column of the
// rollups), never at insert: the two observations arrive in any order,
// minutes apart when an agent was away.
//
// How: starts are cut into buckets of PeerSkew; an ingress row is shadowed
// when (conn_key, its bucket) is in the set of egress (conn_key, bucket - 1,
// bucket, bucket + 1) of the range. That matches every pair within
// PeerSkew (and some pairs up to 2 x PeerSkew apart).
//
// Filters on the reporting host or the direction select one end's
// observations, where each connection appears once already: they read every
// row (dedupes is false), and so does Observations = ObserveAll.

// dedupes says whether a read under f leaves shadowed rows out.
func dedupes(f flowlog.Filter) bool {
	return f.Observations == flowlog.ObserveOne && f.HostID == "" && f.Direction == flowlog.DirUnspecified
}

// shadowedExpr is true for an ingress row of the flows table whose
// connection has an egress observation (among the rows meeting bounds)
// starting within PeerSkew; cand are conditions every ingress row asked
// about meets (on single rows, or on merged rows with candFinal).
//
// The egress set is what costs (a hash set of (conn_key, bucket) built per
// query: 0.4-0.8 s for 600,000 egress rows, measured), so over a long
// range it is built of the egress rows whose conn_key some candidate
// ingress row has (a set of single UInt64 first: prefilter), and only
// ingress rows probe it (if is short-circuited; measured 2x). Each egress
// row enters the set with the buckets before and after its own, so one
// probe covers the three.
//
// Over a short range (prefilterSpan) the candidates' set costs more than
// it saves: the egress rows of a few hours are about as many as the rows
// the read itself reads, so the set stays proportional to the read, and
// building the candidates' set first is a second read of the range
// (BENCHMARKS.md, "The deduplication's candidate set"). Callers pass
// prefilter false there (shortRead); the answer is the same, as the
// candidates' set only leaves out egress rows no candidate probes for.
func (s *Store) shadowedExpr(bounds, cand []string, candFinal, prefilter bool) string {
	b := fmt.Sprintf("intDiv(toUnixTimestamp64Milli(start_ts), %d)", s.peerSkew.Milliseconds())
	egress := []string{"direction = 'egress'"}
	if prefilter {
		from := s.db + ".flows"
		if candFinal {
			from += " FINAL"
		}
		ingress := fmt.Sprintf("SELECT conn_key FROM %s %s", from, whereOf(append([]string{"direction = 'ingress'"}, cand...)))
		egress = append(egress, "conn_key IN ("+ingress+")")
	}
	set := fmt.Sprintf("SELECT conn_key, %s + arrayJoin([-1, 0, 1]) FROM %s.flows %s", b, s.db, whereOf(append(egress, bounds...)))
	return fmt.Sprintf("if(direction = 'ingress', (conn_key, %s) IN (%s), 0)", b, set)
}

// prefilterSpan is the longest read (in total time of starts) whose
// deduplication builds its egress set without the candidates' set
// (shadowedExpr): a listing's first windows and an aggregate's raw edges
// (the range's partial first hour and the hour being written).
const prefilterSpan = 4 * time.Hour

// shortRead says whether a read of the range [from, to), or of only the
// starts in spans when spans is set, reads at most prefilterSpan. An open
// end counts up to an hour past now (starts beyond are rare: a host whose
// clock runs ahead).
func shortRead(from, to time.Time, spans []span, now time.Time) bool {
	if spans == nil {
		spans = []span{{from, to}}
	}
	var total time.Duration
	for _, sp := range spans {
		if sp.lo.IsZero() {
			return false
		}
		hi := sp.hi
		if hi.IsZero() {
			hi = maxTime(sp.lo, now.Add(time.Hour))
		}
		total += hi.Sub(sp.lo)
	}
	return total <= prefilterSpan
}

// egressBounds prunes the egress set to the partitions (and starts) an
// ingress row of a read may match: the read's days and their neighbours,
// or its range widened by twice PeerSkew, less the skipped days (read from
// the rollups) whose neighbours are skipped too.
func (s *Store) egressBounds(from, to time.Time, days, skip []string) []string {
	if days != nil {
		return []string{partitionIn(neighbours(days))}
	}
	widen := 2 * s.peerSkew
	var from2, to2 time.Time
	if !from.IsZero() {
		from2 = from.Add(-widen)
	}
	if !to.IsZero() {
		to2 = to.Add(widen)
	}
	c := timeConds(from2, to2)
	near := map[string]bool{}
	for _, d := range neighbours(daysNotIn(skip)) {
		near[d] = true
	}
	var interior []string
	for _, d := range skip {
		if !near[d] {
			interior = append(interior, d)
		}
	}
	if len(interior) > 0 {
		c = append(c, "_partition_id NOT IN ('"+strings.Join(interior, "', '")+"')")
	}
	return c
}

// neighbours returns the days (YYYYMMDD) and the day before and after each.
func neighbours(days []string) []string {
	near := map[string]bool{}
	var out []string
	for _, d := range days {
		t, err := time.Parse(partitionLayout, d)
		if err != nil {
			continue
		}
		for _, n := range []time.Time{t.Add(-24 * time.Hour), t, t.Add(24 * time.Hour)} {
			if k := n.Format(partitionLayout); !near[k] {
				near[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// daysNotIn returns the days just outside a set of days (YYYYMMDD): the
// edges of the skipped runs, whose rows are read raw.
func daysNotIn(skip []string) []string {
	in := map[string]bool{}
	for _, d := range skip {
		in[d] = true
	}
	var out []string
	for _, d := range neighbours(skip) {
		if !in[d] {
			out = append(out, d)
		}
	}
	return out
}

const partitionLayout = "20060102"

// Observations returns every observation of f's connection: f itself and
// the other end's (egress first, then by start), each a merged flow, those
// starting within twice PeerSkew of f's start. A flow detail shows both
// reports of a connection with it.
func (s *Store) Observations(ctx context.Context, f flowlog.Flow) ([]flowlog.Flow, error) {
	widen := 2 * s.peerSkew
	c := append(timeConds(f.Start.Add(-widen), f.Start.Add(widen+time.Millisecond)),
		"network_id = "+quote(f.NetworkID),
		fmt.Sprintf("protocol = %d AND src_port = %d AND dst_port = %d AND icmp_type = %d AND icmp_code = %d",
			f.Protocol, f.SrcPort, f.DstPort, f.ICMPType, f.ICMPCode),
		"src_ip = toIPv6("+quote(f.Src.IP.String())+")", "dst_ip = toIPv6("+quote(f.Dst.IP.String())+")")
	var rows []flowRow
	q := fmt.Sprintf("SELECT %s FROM %s ORDER BY direction DESC, start_ts, host_id, flow_id LIMIT 100", selectFlow, s.rawFrom(c))
	if err := s.queryRows(ctx, q, &rows); err != nil {
		return nil, fmt.Errorf("querying observations: %w", err)
	}
	cutoff := s.staleCutoff()
	out := make([]flowlog.Flow, len(rows))
	for i := range rows {
		out[i] = rows[i].flow(cutoff)
	}
	return out, nil
}
