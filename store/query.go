package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

// flowRow is one merged flow as the SELECT below returns it.
type flowRow struct {
	EventType     string `json:"event_type"`
	FlowID        string `json:"flow_id"`
	HostID        string `json:"host_id"`
	HostName      string `json:"host_name"`
	NetworkID     string `json:"network_id"`
	Protocol      uint8  `json:"protocol"`
	SrcPort       uint16 `json:"src_port"`
	DstPort       uint16 `json:"dst_port"`
	ICMPType      uint8  `json:"icmp_type"`
	ICMPCode      uint8  `json:"icmp_code"`
	Direction     uint8  `json:"direction_n"`
	SrcIP         string `json:"src_ip_s"`
	SrcType       uint8  `json:"src_type_n"`
	SrcEntityID   string `json:"src_entity_id"`
	SrcEntityName string `json:"src_entity_name"`
	DstIP         string `json:"dst_ip_s"`
	DstType       uint8  `json:"dst_type_n"`
	DstEntityID   string `json:"dst_entity_id"`
	DstEntityName string `json:"dst_entity_name"`
	StartMS       int64  `json:"start_ms"`
	EndMS         int64  `json:"end_ms"`
	BytesSent     uint64 `json:"bytes_sent"`
	BytesRecv     uint64 `json:"bytes_recv"`
	PacketsSent   uint64 `json:"packets_sent"`
	PacketsRecv   uint64 `json:"packets_recv"`
	Status        uint32 `json:"status"`
	Version       int64  `json:"version"`
	EndApprox     uint8  `json:"end_approx"`
	SeenMS        int64  `json:"seen_ms"`
	SrcASN        uint32 `json:"src_asn"`
	SrcASName     string `json:"src_as_name"`
	SrcCountry    string `json:"src_country"`
	DstASN        uint32 `json:"dst_asn"`
	DstASName     string `json:"dst_as_name"`
	DstCountry    string `json:"dst_country"`
}

// selectFlow reads enums as their numbers and times as epoch milliseconds, so
// decoding needs no string parsing. Aliases never reuse a column's name: in
// ClickHouse an alias would shadow the column in WHERE.
const selectFlow = `event_type, flow_id, host_id, host_name, network_id, protocol, src_port, dst_port,
	icmp_type, icmp_code, toInt8(direction) AS direction_n,
	IPv6NumToString(src_ip) AS src_ip_s, toInt8(src_type) AS src_type_n, src_entity_id, src_entity_name,
	IPv6NumToString(dst_ip) AS dst_ip_s, toInt8(dst_type) AS dst_type_n, dst_entity_id, dst_entity_name,
	toUnixTimestamp64Milli(start_ts) AS start_ms, toUnixTimestamp64Milli(end_ts) AS end_ms,
	bytes_sent, bytes_recv, packets_sent, packets_recv, status, version, end_approx,
	toUnixTimestamp64Milli(inserted_at) AS seen_ms,
	src_asn, src_as_name, src_country, dst_asn, dst_as_name, dst_country`

// Flows returns merged flows, newest start first (then flow id, descending).
// FINAL merges each flow's rows at read time, so a flow whose START and
// DESTROY (or a retried twin) are not merged yet still appears once, with its
// highest version; WHERE is applied after that merge, so "active" means "no
// DESTROY anywhere".
//
// With p.After set it is keyset paging: the flows strictly after the cursor
// in that order, p.PerPage of them, p.Number ignored. A cursor page reads
// only the day partitions at and before the cursor's day, and needs no
// OFFSET, so page 10,000 costs what page 1 costs. Flows inserted meanwhile
// with newer starts do not shift later pages, and a flow is never repeated:
// its position (start, flow_id) does not change when its DESTROY arrives.
//
// The first page and cursor pages read the range in windows of time
// newest first (oldest first ascending): the newest hour, then twice as
// many hours, or as many as the rest of the page takes at the density
// found so far (grow), until the page is full. A window's flows
// all start after the next one's, so the page is the same as one query
// over the whole range would give, and usually costs one hour: flows are
// stored in time order (schema.go, flowsV13), so a window reads only its
// own granules (at 10M flows a day: BENCHMARKS.md, "Flows in time
// order"). Offset pages (Number > 1) count the flows of each hour first, in
// the same windows, until the count reaches past the page, then read only
// the hours holding the page, with the offset within them (offsetPage).
func (s *Store) Flows(ctx context.Context, f flowlog.Filter, p flowlog.Page) ([]flowlog.Flow, error) {
	if p.PerPage <= 0 {
		p.PerPage = 100
	}
	if p.Number <= 0 {
		p.Number = 1
	}
	var rows []flowRow
	if deep := (p.Number - 1) * p.PerPage; p.After == nil && s.maxOffset > 0 && (deep > s.maxOffset || p.Number-1 > s.maxOffset) {
		return nil, fmt.Errorf("%w: page %d of %d starts %d flows deep, beyond the %d that offset paging reaches: use cursor paging (pass the answer's Next as cursor=, as fast on any page as on the first)",
			flowlog.ErrPageTooDeep, p.Number, p.PerPage, deep, s.maxOffset)
	}
	cutoff := s.staleCutoff()
	switch {
	case p.Sort.Key != flowlog.SortStart: // time does not order bytes or durations: one query
		if err := s.queryRows(ctx, s.flowsSQL(f, p, cutoff), &rows); err != nil {
			return nil, fmt.Errorf("querying flows: %w", err)
		}
	case p.Number > 1 && p.After == nil:
		var err error
		if rows, err = s.offsetPage(ctx, f, p, cutoff); err != nil {
			return nil, err
		}
	default:
		r, ok, err := s.listRange(ctx, f, p)
		if err != nil {
			return nil, err
		}
		for n, done := 1, 0; ok && !r.empty() && len(rows) < p.PerPage; n = grow(n, done, len(rows), p.PerPage) {
			w := r.next(n, p.Sort.Asc)
			done += n
			var more []flowRow
			q := p
			q.PerPage = p.PerPage - len(rows)
			if err := s.queryRows(ctx, s.flowsSQL(w.of(f), q, cutoff), &more); err != nil {
				return nil, fmt.Errorf("querying flows: %w", err)
			}
			rows = append(rows, more...)
		}
	}
	flows := make([]flowlog.Flow, len(rows))
	for i := range rows {
		flows[i] = rows[i].flow(cutoff)
	}
	return flows, nil
}

// listRange is what a listing in start order may read: f's range,
// narrowed by the cursor and to the stored starts (from the parts'
// metadata: the partition key's min and max, no data read); ok false:
// nothing stored there.
func (s *Store) listRange(ctx context.Context, f flowlog.Filter, p flowlog.Page) (r span, ok bool, err error) {
	var b []struct {
		Lo int64  `json:"lo"`
		Hi int64  `json:"hi"`
		N  uint64 `json:"n"`
	}
	if err := s.queryRows(ctx, "SELECT toUnixTimestamp64Milli(min(start_ts)) AS lo, toUnixTimestamp64Milli(max(start_ts)) AS hi, count() AS n FROM "+s.db+".flows", &b); err != nil {
		return span{}, false, fmt.Errorf("reading the stored time range: %w", err)
	}
	if len(b) != 1 || b[0].N == 0 {
		return span{}, false, nil
	}
	r = span{time.UnixMilli(b[0].Lo).UTC(), time.UnixMilli(b[0].Hi).UTC().Add(time.Millisecond)}
	if !f.From.IsZero() && f.From.After(r.lo) {
		r.lo = f.From
	}
	if !f.To.IsZero() && f.To.Before(r.hi) {
		r.hi = f.To
	}
	if a := p.After; a != nil && a.Sort.Key == flowlog.SortStart {
		if a.Sort.Asc && a.Start.After(r.lo) {
			r.lo = a.Start
		} else if end := a.Start.Add(time.Millisecond); !a.Sort.Asc && end.Before(r.hi) {
			r.hi = end
		}
	}
	return r, r.lo.Before(r.hi), nil
}

// next takes the next window of a listing off r: its first n hours (its
// last, descending), the first of them from r's end to the hour boundary,
// the others whole hours.
func (r *span) next(n int, asc bool) span {
	if asc {
		end := minTime(r.lo.Truncate(time.Hour).Add(time.Duration(n)*time.Hour), r.hi)
		w := span{r.lo, end}
		r.lo = end
		return w
	}
	start := maxTime(r.hi.Add(-time.Millisecond).Truncate(time.Hour).Add(-time.Duration(n-1)*time.Hour), r.lo)
	w := span{start, r.hi}
	r.hi = start
	return w
}

// grow sizes a listing's next window, in hours: twice the last (n), or
// as many hours as the flows still wanted take at the density of the done
// hours so far (seen flows in them), plus a quarter. Each window costs a
// query with its own fixed part (the connection deduplication's sets among
// it): page 5,000 by offset counts 2 windows instead of 6, and a first page
// filtered to an address seen a few times an hour reads 2 or 3 windows
// instead of 7 (BENCHMARKS.md, "Windows sized by density").
func grow(n, done, seen, want int) int {
	n *= 2
	if seen > 0 && seen < want {
		n = max(n, min((want-seen)*done/seen*5/4+1, 1<<20)) // 2^20 hours: 120 years, no overflow
	}
	return n
}

// empty says whether nothing is left of r.
func (r span) empty() bool { return !r.lo.Before(r.hi) }

// of is f with its range narrowed to the span.
func (w span) of(f flowlog.Filter) flowlog.Filter {
	f.From, f.To = w.lo, w.hi
	return f
}

// offsetPage reads page p by offset. The listing is the concatenation of
// its hours' listings, newest hour first (oldest, ascending): counting each
// hour's flows (a merge of the sorting key of the hours counted, far
// cheaper than sorting their rows), in the windows of a first page, finds
// the hours holding the page and the offset within them, and only those
// are read and sorted. The rows are those of one query over the whole
// range (at 10M flows, page 5,000: BENCHMARKS.md).
func (s *Store) offsetPage(ctx context.Context, f flowlog.Filter, p flowlog.Page, cutoff time.Time) ([]flowRow, error) {
	r, ok, err := s.listRange(ctx, f, p)
	if err != nil || !ok {
		return nil, err
	}
	off := (p.Number - 1) * p.PerPage
	var pick []span // the hours (within the range) holding the page, in the listing's order
	before, seen := 0, 0
	for n, done := 1, 0; !r.empty() && seen < off+p.PerPage; {
		w := r.next(n, p.Sort.Asc)
		done += n
		var counts []struct {
			H int64 `json:"h"`
			N int   `json:"n"`
		}
		q := "SELECT toUnixTimestamp64Milli(toDateTime64(toStartOfHour(start_ts), 3, 'UTC')) AS h, toInt64(count()) AS n FROM " +
			s.rawFrom(s.conds(w.of(f), cutoff)) + " GROUP BY h ORDER BY h"
		if err := s.queryRows(ctx, q, &counts); err != nil {
			return nil, fmt.Errorf("counting flows per hour: %w", err)
		}
		if !p.Sort.Asc {
			slices.Reverse(counts)
		}
		for _, c := range counts {
			if seen+c.N > off && seen < off+p.PerPage {
				if len(pick) == 0 {
					before = seen
				}
				h := time.UnixMilli(c.H).UTC()
				pick = append(pick, span{maxTime(h, w.lo), minTime(h.Add(time.Hour), w.hi)})
			}
			seen += c.N
		}
		n = grow(n, done, seen, off+p.PerPage)
	}
	if len(pick) == 0 {
		return nil, nil // past the last flow
	}
	read := span{pick[0].lo, pick[len(pick)-1].hi}
	if !p.Sort.Asc {
		read = span{pick[len(pick)-1].lo, pick[0].hi}
	}
	var rows []flowRow
	if err := s.queryRows(ctx, s.listSQL(read.of(f), nil, p.Sort, p.PerPage, off-before, cutoff), &rows); err != nil {
		return nil, fmt.Errorf("querying flows: %w", err)
	}
	return rows, nil
}

// flowsSQL is the listing query: a page by offset, or after a cursor.
func (s *Store) flowsSQL(f flowlog.Filter, p flowlog.Page, cutoff time.Time) string {
	return s.listSQL(f, p.After, p.Sort, p.PerPage, (p.Number-1)*p.PerPage, cutoff)
}

// listSQL lists limit flows from offset, or after a cursor (offset then
// ignored).
func (s *Store) listSQL(f flowlog.Filter, a *flowlog.Cursor, sort flowlog.Sort, limit, offset int, cutoff time.Time) string {
	var after []string
	if a != nil {
		offset = 0
		// Nothing after the cursor of a start sort starts later (earlier,
		// ascending) than it: bounding the range prunes partitions, the
		// connection deduplication's included.
		switch {
		case a.Sort.Key != flowlog.SortStart:
		case a.Sort.Asc:
			if f.From.IsZero() || f.From.Before(a.Start) {
				f.From = a.Start
			}
		default:
			if end := a.Start.Add(time.Millisecond); f.To.IsZero() || f.To.After(end) {
				f.To = end
			}
		}
		after = append(after, afterCond(a))
	}
	c := append(s.conds(f, cutoff), after...)
	return fmt.Sprintf("SELECT %s FROM %s %s LIMIT %d OFFSET %d",
		selectFlow, s.rawFrom(c), orderBy(sort), limit, offset)
}

func whereOf(c []string) string {
	if len(c) == 0 {
		return ""
	}
	return "WHERE " + strings.Join(c, " AND ")
}

// conds renders every condition of a filter on the flows table, with the
// stale horizon at cutoff.
func (s *Store) conds(f flowlog.Filter, cutoff time.Time) []string {
	return s.condsExcept(f, cutoff, nil, nil)
}

// condsExcept is conds for a read of the range but the days
// in skip (YYYYMMDD), which the caller reads elsewhere (rollups), and
// when spans is set, of only the starts in spans (the rest of the range
// served by rollups by hour): the connection deduplication then looks for
// egress rows only near them.
func (s *Store) condsExcept(f flowlog.Filter, cutoff time.Time, skip []string, spans []span) []string {
	c := timeConds(f.From, f.To)
	if len(skip) > 0 {
		c = append(c, "_partition_id NOT IN ('"+strings.Join(skip, "', '")+"')")
	}
	if spans != nil {
		c = append(c, spansCond(spans, 0))
	}
	c = append(c, dimConds(f)...)
	c = append(c, rawConds(f)...)
	if dedupes(f) {
		// The ingress rows this read may keep: its conditions on single
		// rows (a merged row is one of its rows), the state's included;
		// open flows are few, so those are picked exactly (FINAL).
		cand, final := append(slices.Clone(c), stateRowConds(f.State)...), false
		if f.State == flowlog.StateActive || f.State == flowlog.StateStale {
			cand, final = append(slices.Clone(c), stateConds(f.State, cutoff)...), true
		}
		bounds := s.egressBounds(f.From, f.To, nil, skip)
		if spans != nil {
			bounds = []string{spansCond(spans, 2*s.peerSkew)}
		}
		c = append(c, "NOT "+s.shadowedExpr(bounds, cand, final, !shortRead(f.From, f.To, spans, s.now())))
	}
	return append(c, stateConds(f.State, cutoff)...)
}

func partitionIn(days []string) string {
	if len(days) == 0 {
		return "0 = 1"
	}
	return "_partition_id IN ('" + strings.Join(days, "', '") + "')"
}

// staleCutoff: an open flow whose last event was inserted before this is
// stale.
func (s *Store) staleCutoff() time.Time {
	return s.now().Add(-s.staleAfter)
}

// stateRowConds is what a row of a flow in a state is, whichever of its
// rows: a START for an open flow, a DESTROY for a finished one.
func stateRowConds(st flowlog.State) []string {
	switch st {
	case flowlog.StateActive, flowlog.StateStale:
		return []string{"event_type = 'start'"}
	case flowlog.StateFinished:
		return []string{"event_type = 'destroy'"}
	}
	return nil
}

// stateConds selects flows by state. A flow's last event is its merged
// row's: inserted_at of the latest version.
func stateConds(st flowlog.State, cutoff time.Time) []string {
	switch st {
	case flowlog.StateActive:
		return []string{"event_type = 'start'", "inserted_at >= " + ms(cutoff)}
	case flowlog.StateStale:
		return []string{"event_type = 'start'", "inserted_at < " + ms(cutoff)}
	case flowlog.StateFinished:
		return []string{"event_type = 'destroy'"}
	}
	return nil
}

// timeConds bounds start_ts to [from, to) (zero = unbounded). With FINAL,
// ClickHouse uses only sorting-key conditions to select parts, so a start_ts
// range alone reads every partition. The partition id of toDate(start_ts) is
// 'YYYYMMDD': bounding it prunes by day.
func timeConds(from, to time.Time) []string {
	var c []string
	if !from.IsZero() {
		c = append(c, "_partition_id >= "+quote(from.UTC().Format("20060102")), hourCond(">=", from), "start_ts >= "+ms(from))
	}
	if !to.IsZero() {
		last := to.Add(-time.Millisecond)
		c = append(c, "_partition_id <= "+quote(last.UTC().Format("20060102")), hourCond("<=", last), "start_ts < "+ms(to))
	}
	return c
}

// hourCond compares the hour of start_ts with t's. It says nothing a
// condition on start_ts does not, but the engine prunes by the sorting
// key's toStartOfHour(start_ts) only for conditions on that expression
// itself (it derives none from start_ts, checked with EXPLAIN indexes = 1).
func hourCond(op string, t time.Time) string {
	return "toStartOfHour(start_ts) " + op + " " + strconv.FormatInt(t.Truncate(time.Hour).Unix(), 10)
}

// dimConds renders the filter's conditions on the rollup dimensions (column
// names shared by the flows and the rollup tables).
func dimConds(f flowlog.Filter) []string {
	var c []string
	eq := func(col, v string) {
		if v != "" {
			c = append(c, col+" = "+quote(v))
		}
	}
	eq("network_id", f.NetworkID)
	if f.Networks != nil { // a token's scope: nil = any, empty = none
		if len(f.Networks) == 0 {
			c = append(c, "0 = 1")
		} else {
			q := make([]string, len(f.Networks))
			for i, n := range f.Networks {
				q[i] = quote(n)
			}
			c = append(c, "network_id IN ("+strings.Join(q, ", ")+")")
		}
	}
	eq("host_id", f.HostID)
	if f.Node != "" {
		c = append(c, fmt.Sprintf("(host_id = %[1]s OR (src_type = 'node' AND src_entity_id = %[1]s) OR (dst_type = 'node' AND dst_entity_id = %[1]s))",
			quote(f.Node)))
	}
	eq("src_entity_id", f.SrcEntityID)
	eq("dst_entity_id", f.DstEntityID)
	if len(f.SrcTypes) > 0 {
		c = append(c, "toInt8(src_type) IN ("+ints(f.SrcTypes)+")")
	}
	if len(f.DstTypes) > 0 {
		c = append(c, "toInt8(dst_type) IN ("+ints(f.DstTypes)+")")
	}
	if len(f.Protocols) > 0 {
		c = append(c, "protocol IN ("+ints(f.Protocols)+")")
	}
	if f.Username != "" {
		u := quote(f.Username)
		c = append(c, fmt.Sprintf("((src_type = 'user' AND (src_entity_id = %[1]s OR src_entity_name = %[1]s)) OR "+
			"(dst_type = 'user' AND (dst_entity_id = %[1]s OR dst_entity_name = %[1]s)))", u))
	}
	if f.Direction != flowlog.DirUnspecified {
		c = append(c, "toInt8(direction) = "+strconv.Itoa(int(f.Direction)))
	}
	if f.Participant != "" {
		c = append(c, fmt.Sprintf("(src_entity_id = %[1]s OR src_entity_name = %[1]s OR dst_entity_id = %[1]s OR dst_entity_name = %[1]s)",
			quote(f.Participant)))
	}
	return c
}

// rawConds renders the filter's conditions that only the flows table can
// answer (rollups keep neither addresses, their networks, ports nor state).
func rawConds(f flowlog.Filter) []string {
	var c []string
	if f.IP.IsValid() {
		lo, hi := ipRange(f.IP)
		c = append(c, fmt.Sprintf("(src_ip BETWEEN %[1]s AND %[2]s OR dst_ip BETWEEN %[1]s AND %[2]s)", lo, hi))
	}
	c = append(c, sideIPConds(f)...)
	if f.Port != 0 {
		c = append(c, fmt.Sprintf("(src_port = %[1]d OR dst_port = %[1]d)", f.Port))
	}
	if len(f.ASNs) > 0 {
		in := uints(f.ASNs)
		c = append(c, fmt.Sprintf("(src_asn IN (%[1]s) OR dst_asn IN (%[1]s))", in))
	}
	if len(f.Countries) > 0 {
		q := make([]string, len(f.Countries))
		for i, cc := range f.Countries {
			q[i] = quote(cc)
		}
		in := strings.Join(q, ", ")
		c = append(c, fmt.Sprintf("(src_country IN (%[1]s) OR dst_country IN (%[1]s))", in))
	}
	return c
}

// rollupable says whether a filter uses only rollup dimensions.
func rollupable(f flowlog.Filter) bool {
	return len(rawConds(f)) == 0 && f.State == flowlog.StateAll
}

// ipRange is the first and last address of a prefix as IPv6 literals, the
// way the columns store them: an IPv4 prefix a.b.c.d/n is
// ::ffff:a.b.c.d/(96+n).
func ipRange(p netip.Prefix) (lo, hi string) {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	a := p.Addr().As16()
	b := a
	for i := bits; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return "toIPv6('" + netip.AddrFrom16(a).String() + "')", "toIPv6('" + netip.AddrFrom16(b).String() + "')"
}

func ms(t time.Time) string {
	return "fromUnixTimestamp64Milli(toInt64(" + strconv.FormatInt(t.UnixMilli(), 10) + "), 'UTC')"
}

func ints[T ~uint8](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(int(v))
	}
	return strings.Join(s, ", ")
}

func uints(vs []uint32) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.FormatUint(uint64(v), 10)
	}
	return strings.Join(s, ", ")
}

func (r *flowRow) flow(cutoff time.Time) flowlog.Flow {
	var f flowlog.Flow
	e := &f.Event
	e.Type = flowlog.EventStart
	if r.EventType == "start" {
		f.Stale = r.SeenMS < cutoff.UnixMilli()
		f.Active = !f.Stale
	} else {
		e.Type = flowlog.EventDestroy
		e.End = time.UnixMilli(r.EndMS).UTC()
		e.EndApprox = r.EndApprox == 1
	}
	e.FlowID, e.HostID, e.HostName, e.NetworkID = r.FlowID, r.HostID, r.HostName, r.NetworkID
	e.Protocol, e.SrcPort, e.DstPort, e.ICMPType, e.ICMPCode = r.Protocol, r.SrcPort, r.DstPort, r.ICMPType, r.ICMPCode
	e.Direction = flowlog.Direction(r.Direction)
	e.Src = participant(r.SrcIP, r.SrcType, r.SrcEntityID, r.SrcEntityName)
	e.Dst = participant(r.DstIP, r.DstType, r.DstEntityID, r.DstEntityName)
	e.Start = time.UnixMilli(r.StartMS).UTC()
	e.BytesSent, e.BytesRecv, e.PacketsSent, e.PacketsRecv = r.BytesSent, r.BytesRecv, r.PacketsSent, r.PacketsRecv
	e.Status, e.Version = r.Status, r.Version
	e.Src.ASN, e.Src.ASName, e.Src.Country = r.SrcASN, r.SrcASName, r.SrcCountry
	e.Dst.ASN, e.Dst.ASName, e.Dst.Country = r.DstASN, r.DstASName, r.DstCountry
	return f
}

func participant(ip string, typ uint8, id, name string) flowlog.Participant {
	a, _ := netip.ParseAddr(ip)
	return flowlog.Participant{IP: a.Unmap(), Type: flowlog.ParticipantType(typ), ID: id, Name: name}
}

// mergeMode is how raw reads merge a flow's rows into its latest version.
type mergeMode uint8

const (
	mergeFinal  mergeMode = iota // FROM flows FINAL: the default, faster (BENCHMARKS.md)
	mergeArgMax                  // GROUP BY the sorting key, argMax(column, version)
)

// argMaxColumns: every column but the sorting key, at the highest version.
var argMaxColumns = func() string {
	var b []string
	for _, c := range strings.Split(flowColumns, ", ") {
		switch c {
		case "network_id", "host_id", "flow_id", "start_ts":
		default:
			b = append(b, "argMax(flows."+c+", flows.rank) AS "+c)
		}
	}
	return strings.Join(append(b, "any(flows.conn_key) AS conn_key"), ", ")
}()

// rawFrom is the FROM (and WHERE) of a read of merged flows meeting every
// condition in c, each evaluated on the merged row.
func (s *Store) rawFrom(c []string) string {
	if s.merge == mergeArgMax {
		// Partition pruning goes inside (it is a property of both rows of a
		// flow); everything else applies to the merged row.
		var in, out []string
		for _, x := range c {
			if strings.HasPrefix(x, "_partition_id") {
				in = append(in, x)
			} else {
				out = append(out, x)
			}
		}
		return fmt.Sprintf("(SELECT network_id, host_id, flow_id, start_ts, %s FROM %s.flows %s GROUP BY network_id, host_id, flow_id, start_ts) %s",
			argMaxColumns, s.db, whereOf(in), whereOf(out))
	}
	return s.db + ".flows FINAL " + whereOf(c)
}
