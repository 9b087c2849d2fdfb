package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
)

// Aggregates (flowlog.Aggregator) over merged flows: each flow counts once,
// with its latest version (a retried insert or a START+DESTROY pair counts
// once, with the DESTROY's counters; an active flow counts as a flow with
// the counters of its START, normally zero). Bytes are bytes_sent +
// bytes_recv, packets likewise, as the reporting host counted them.
//
// Every aggregate is one SQL query over a union of up to three sources:
//   - a rollup for the whole days of [From, To) whose rollup is clean
//     (rollup.go) and inside the rollup's TTL, when the filter uses only
//     rollup dimensions (not IP, Port, State): the cheapest that keeps the
//     filter's dimensions and the aggregate's groups (plan): talkers_1d,
//     pairs_1d, addrs_1d, series_1h (grains.go), else flows_1h, or flows_1m
//     when a series' step is a whole number of minutes but not of hours;
//     a series of whole hours from the hour reads series_sh instead, for
//     every clean start hour from a day before its range (startsPlan), and
//     raw only the flows of the others;
//   - except for series, its rollup by hour of start (hourTwin) for the
//     whole, clean hours of the other days (rollup.go, "Hours"): the
//     range's partial first and last days, and dirty days but for their
//     dirty hours (today but the hour being written);
//   - the raw flows (FINAL) for the rest of the range: days not rolled up
//     yet, older than the rollup keeps, the dirty hours, the partial hours
//     at the range's ends.
// A raw read of part of a day still reads the columns of the whole day
// partition (flows are sorted by flow, not by time), but aggregates only
// its rows in the hours left: top talkers over the page's "last N days"
// cost a third less CPU (BENCHMARKS.md). Answers are exact whichever
// source serves which day or hour.

const (
	defaultTopLimit    = 10
	defaultMatrixLimit = 100
)

// readPath forces a source (tests and benchmarks).
type readPath uint8

const (
	pathAuto readPath = iota // rollups where exact and useful, raw elsewhere
	pathRaw                  // raw flows only
)

// plan is how one aggregate reads [From, To).
type plan struct {
	r     *rollupTable        // nil: raw only
	days  map[string]cleanDay // the days (2006-01-02) r serves, each at its generation
	h     *rollupTable        // by hour of start: serves hours (nil: none)
	hours map[int64]int64     // the hours (since the epoch) h serves, each at its day's generation
	dirty map[int64]bool      // the days (since the epoch) of those hours that are dirty (hourConds)
}

// The rollups each aggregate may read, cheapest first (plan takes the
// first that answers the filter exactly; grains.go).
var (
	topTables    = []*rollupTable{&talkers1d, &pairs1d, &rollup1h}
	ipTables     = []*rollupTable{&addrs1d}
	matrixTables = []*rollupTable{&pairs1d, &rollup1h}
)

// seriesTables are the rollups a series of step may read: a bucket must
// fall in one step, and steps are aligned to the epoch, so the step must
// be a multiple of the grain.
func seriesTables(step time.Duration) []*rollupTable {
	switch {
	case step%time.Hour == 0:
		return []*rollupTable{&series1h, &rollup1h}
	case step%time.Minute == 0:
		return []*rollupTable{&rollup1m}
	}
	return nil
}

// plan picks, among cands (cheapest first), the first rollup that answers
// f's conditions and serves whole days of its range, and those days; with
// byHour, and its hourTwin the clean whole hours of the other days.
func (s *Store) plan(ctx context.Context, f flowlog.Filter, cands []*rollupTable, byHour bool) (plan, error) {
	if s.path == pathRaw || !rollupable(f) {
		return plan{}, nil
	}
	conds := dimConds(f)
	now := time.Now()
	var clean map[string]cleanDay
	for _, r := range cands {
		if !r.serves(conds) {
			continue
		}
		first := r.firstDay(now)
		if !f.From.IsZero() {
			first = maxTime(first, nextMidnight(f.From))
		}
		h := r.hourTwin()
		if !byHour || h == nil || !h.serves(conds) {
			h = nil
		}
		if h == nil && !f.To.IsZero() && first.Add(24*time.Hour).After(f.To) {
			continue // no whole day
		}
		if clean == nil { // the candidates' TTLs differ by none or a few days: read once, widest
			var err error
			if clean, err = s.cleanDays(ctx, cands[len(cands)-1].firstDay(now).Add(-24*time.Hour), f.To); err != nil {
				return plan{}, err
			}
		}
		p := plan{r: r, days: map[string]cleanDay{}}
		complete := true
		for d, c := range clean {
			day, err := time.Parse(dayLayout, d)
			if err != nil {
				return plan{}, fmt.Errorf("rollup day %q: %w", d, err)
			}
			if c.dirty == 0 && !day.Before(first) && (f.To.IsZero() || !day.Add(24*time.Hour).After(f.To)) {
				p.days[d] = c
				complete = complete && (c.grains || !r.grains)
			}
		}
		if !complete {
			continue // a day rolled up before r existed: a table that has it
		}
		if h != nil {
			p.h, p.hours, p.dirty = h, servedHours(f, h, clean, p.days, now), dirtyDays(clean)
		}
		if len(p.days) == 0 && len(p.hours) == 0 {
			return plan{}, nil
		}
		return p, nil
	}
	return plan{}, nil
}

// servedHours are the hours h serves of the range's days that the day
// rollup does not: whole hours inside the range, clean, of a day whose
// generation wrote h, inside h's TTL.
func servedHours(f flowlog.Filter, h *rollupTable, clean, days map[string]cleanDay, now time.Time) map[int64]int64 {
	first := h.firstDay(now)
	if !f.From.IsZero() {
		first = maxTime(first, f.From.Add(time.Hour-time.Millisecond).Truncate(time.Hour))
	}
	out := map[int64]int64{}
	for d, c := range clean {
		if _, ok := days[d]; ok || (h.hourly && !c.hours) {
			continue
		}
		day, err := time.Parse(dayLayout, d)
		if err != nil {
			continue // not a day: left to the raw read
		}
		for hr := range 24 {
			t := day.Add(time.Duration(hr) * time.Hour)
			if c.dirty&(1<<hr) != 0 || t.Before(first) || (!f.To.IsZero() && t.Add(time.Hour).After(f.To)) {
				continue
			}
			out[t.UnixMilli()/hourMS] = c.gen
		}
	}
	return out
}

// dirtyDays are the days (since the epoch) of clean that have dirty hours.
func dirtyDays(clean map[string]cleanDay) map[int64]bool {
	out := map[int64]bool{}
	for d, c := range clean {
		if day, err := time.Parse(dayLayout, d); err == nil && c.dirty != 0 {
			out[day.Unix()/86400] = true
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// sources is the union the flow-shaped aggregates read (p.r not sides).
// Columns: t (start or bucket, DateTime64(3)), cols (the caller's: rollup
// dimensions, each followed by ", "), with withIPs (raw only) the
// endpoints' columns rollups lack (endpointColumns), and nb, np, nf:
// bytes, packets, flows. For a series (step > 0) t is a bucket and nb, np
// the bytes and packets that flowed in it (spreadSQL); otherwise t is a
// flow's start and nb, np all of its bytes and packets.
func (s *Store) sources(f flowlog.Filter, p plan, cols string, withIPs bool, step time.Duration) string {
	if p.h == &seriesSH {
		return s.startsSources(f, p, step)
	}
	var parts []string
	if len(p.days) > 0 {
		parts = append(parts, s.rollupPart(f, p, cols, step))
	}
	if len(p.hours) > 0 {
		parts = append(parts, hourReads(f, p, 0, func(c []string, newest bool) string { return s.flowRows(p.h, newest, c, cols, 0) })...)
	}
	if raw := s.rawPart(f, p, cols, withIPs, step); raw != "" {
		parts = append(parts, raw)
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}

// servedDays are the days p's rollup serves, sorted (2006-01-02).
func servedDays(p plan) []string {
	days := make([]string, 0, len(p.days))
	for d := range p.days {
		days = append(days, d)
	}
	sort.Strings(days)
	return days
}

// rollupConds select the rows of p's rollup for the days it serves, each
// at its generation, meeting f.
func rollupConds(f flowlog.Filter, p plan, step time.Duration) []string {
	days := servedDays(p)
	set := make([]string, len(days))
	for i, d := range days {
		set[i] = fmt.Sprintf("('%s', %d)", d, p.days[d].gen)
	}
	last, _ := time.Parse(dayLayout, days[len(days)-1])
	end := last.Add(24 * time.Hour).Format(dayLayout)
	rc := dimConds(f)
	if dedupes(f) {
		rc = append(rc, "shadowed = 0")
	}
	// The bounds prune parts; the set picks each day's generation.
	if p.r.timeCol == "day" {
		rc = append(rc, "day >= '"+days[0]+"'", "day < '"+end+"'", "(day, gen) IN ("+strings.Join(set, ", ")+")")
	} else {
		rc = append(rc, "bucket >= toDateTime('"+days[0]+" 00:00:00', 'UTC')", "bucket < toDateTime('"+end+" 00:00:00', 'UTC')",
			"(toDate(bucket), gen) IN ("+strings.Join(set, ", ")+")")
	}
	if step == 0 {
		rc = append(rc, "flows > 0") // rows holding only spread bytes of flows started before
	}
	return rc
}

// hourConds select the rows of p's hour rollup for the hours it serves of
// the clean days, or with dirty of the dirty days, each at its day's
// generation, meeting f (for a series (step > 0), with the rows holding
// only bytes); nil for no such hour.
//
// A dirty day is one a pass may be recomputing, or one a pass stopped
// recomputing: it writes a later generation's rows before it names it,
// the same as the named one's for the hours still clean, and the engine
// may merge the named generation's rows into them meanwhile (the tables
// are ReplacingMergeTree(gen), keyed without it), so a dirty day's hours
// are read key by key at the named generation or a later one, the newest
// (hourReads, rowsOf). Each key's row of any generation is whole (one
// statement writes it), so the newest is as exact as the named one's; the
// keys a later generation no longer has are of its dirty hours, not read
// here.
// A clean day is not being recomputed, and reads its generation's rows.
func hourConds(f flowlog.Filter, p plan, step time.Duration, dirty bool) []string {
	hs := make([]int64, 0, len(p.hours))
	for h := range p.hours {
		if p.dirty[h/24] == dirty {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return nil
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i] < hs[j] })
	c := p.h.timeCol
	// Each hour is at its day's generation: the set names the days (a set
	// of a month's 720 hours cost more than reading their rows).
	var gens []string
	for i, h := range hs {
		if i > 0 && h/24 == hs[i-1]/24 {
			continue
		}
		day := time.Unix(h*3600, 0).UTC().Format(dayLayout)
		if dirty {
			gens = append(gens, fmt.Sprintf("toDate(%s) = '%s' AND gen >= %d", c, day, p.hours[h]))
		} else {
			gens = append(gens, fmt.Sprintf("('%s', %d)", day, p.hours[h]))
		}
	}
	rc := dimConds(f)
	if dedupes(f) {
		rc = append(rc, "shadowed = 0")
	}
	// The runs of consecutive hours prune parts and granules (the first
	// and last day of a long range are weeks apart) and pick the hours.
	var runs []string
	for i := 0; i < len(hs); {
		j := i + 1
		for j < len(hs) && hs[j] == hs[j-1]+1 {
			j++
		}
		runs = append(runs, fmt.Sprintf("%[1]s >= toDateTime(%[2]d, 'UTC') AND %[1]s < toDateTime(%[3]d, 'UTC')", c, hs[i]*3600, (hs[j-1]+1)*3600))
		i = j
	}
	rc = append(rc, "("+strings.Join(runs, " OR ")+")")
	if dirty {
		rc = append(rc, "("+strings.Join(gens, " OR ")+")")
	} else {
		rc = append(rc, "(toDate("+c+"), gen) IN ("+strings.Join(gens, ", ")+")")
	}
	if step == 0 {
		rc = append(rc, "flows > 0")
	}
	return rc
}

// hourReads renders read for p's hours, in up to two parts: the hours of
// clean days, and those of dirty days, each key's newest row (hourConds).
func hourReads(f flowlog.Filter, p plan, step time.Duration, read func(c []string, newest bool) string) []string {
	var out []string
	for _, dirty := range []bool{false, true} {
		if c := hourConds(f, p, step, dirty); c != nil {
			out = append(out, read(c, dirty))
		}
	}
	return out
}

// rollupPart reads the days p serves from its (flow-shaped) rollup.
func (s *Store) rollupPart(f flowlog.Filter, p plan, cols string, step time.Duration) string {
	return s.flowRows(p.r, false, rollupConds(f, p, step), cols, step)
}

// flowRows reads the rows meeting c of a flow-shaped rollup (newest: see
// rowsOf).
func (s *Store) flowRows(r *rollupTable, newest bool, c []string, cols string, step time.Duration) string {
	nb, np := "bytes", "packets"
	if step > 0 {
		nb, np = "spread_bytes", "spread_packets"
	}
	return fmt.Sprintf("SELECT toDateTime64(%s, 3, 'UTC') AS t, %stoUInt128(%s) AS nb, toUInt128(%s) AS np, toUInt128(flows) AS nf FROM %s",
		r.timeCol, cols, nb, np, s.rowsOf(r, c, newest))
}

// rowsOf is the FROM of a rollup's rows meeting c, with newest only each
// key's row of the newest generation among them (hourConds). Not FINAL:
// on flows_1h (month partitions) it cost seven times the read.
func (s *Store) rowsOf(r *rollupTable, c []string, newest bool) string {
	if newest {
		return fmt.Sprintf("(SELECT * FROM %s.%s %s ORDER BY gen DESC LIMIT 1 BY %s)", s.db, r.name, whereOf(c), r.key)
	}
	return s.db + "." + r.name + " " + whereOf(c)
}

// sidePart reads the days p serves from its rollup of one row per side
// (talkers_1d, addrs_1d), and the hours from its hour twin: g (the row's
// participant or address, as the expression g renders it), nb, np, nf.
func (s *Store) sidePart(f flowlog.Filter, p plan, g string, sides []string) string {
	var parts []string
	if len(p.days) > 0 {
		parts = append(parts, s.sideRows(p.r, false, rollupConds(f, p, 0), g, sides))
	}
	if len(p.hours) > 0 {
		parts = append(parts, hourReads(f, p, 0, func(c []string, newest bool) string { return s.sideRows(p.h, newest, c, g, sides) })...)
	}
	return strings.Join(parts, " UNION ALL ")
}

func (s *Store) sideRows(r *rollupTable, newest bool, c []string, g string, sides []string) string {
	if len(sides) == 1 {
		c = append(c, "side = "+map[string]string{"src": "0", "dst": "1"}[sides[0]])
	}
	return fmt.Sprintf("SELECT %s AS g, toUInt128(bytes) AS nb, toUInt128(packets) AS np, toUInt128(flows) AS nf FROM %s",
		g, s.rowsOf(r, c, newest))
}

// rawPart reads raw flows for the days of the range p's rollup does not
// serve ("" when it serves them all).
func (s *Store) rawPart(f flowlog.Filter, p plan, cols string, withIPs bool, step time.Duration) string {
	if step > 0 {
		if p.r != nil && coversRange(f, servedDays(p)) {
			return "" // no other day: no raw read at all
		}
		return s.rawSpread(f, p, cols, step)
	}
	skip, spans, all := rawSkip(f, p)
	if all {
		return "" // no other day or hour: no raw read at all
	}
	raw := s.condsExcept(f, s.staleCutoff(), skip, spans)
	ips := ""
	if withIPs {
		ips = endpointColumns
	}
	return fmt.Sprintf("SELECT start_ts AS t, %s%s%s AS nb, %s AS np, toUInt128(1) AS nf FROM %s", cols, ips, sumBytes, sumPackets, s.rawFrom(raw))
}

// rawSpread is a series' raw read: the bytes of the flows of the range's
// days that the rollup does not serve, spread over buckets (spreadSQL).
// Flows started up to spreadHorizon before the range are read too, for
// their share in it; of a day the rollup serves, only the flows that may
// reach the next day when the rollup does not serve that one.
func (s *Store) rawSpread(f flowlog.Filter, p plan, cols string, step time.Duration) string {
	var skip, served []string
	for d := range p.days {
		day, _ := time.Parse(dayLayout, d)
		served = append(served, strconv.FormatInt(day.UnixMilli()/dayMS, 10))
		next := day.Add(24 * time.Hour)
		if _, ok := p.days[next.Format(dayLayout)]; ok || (!f.To.IsZero() && !next.Before(f.To)) {
			skip = append(skip, day.Format(partitionLayout))
		}
	}
	sort.Strings(skip)
	sort.Strings(served)
	back, lo, hi := spreadRange(f)
	w := spreadWidth(step)
	q := spreadSQL(s.rawFrom(s.condsExcept(back, s.staleCutoff(), skip, nil)), cols, cols, w, lo, hi)
	q = "SELECT t, " + cols + "nb, np, nf FROM (" + q + ")"
	if len(served) > 0 {
		q += fmt.Sprintf(" WHERE intDiv(toUnixTimestamp64Milli(t), %d) NOT IN (%s)", dayMS, strings.Join(served, ", "))
	}
	return q
}

// startsPlan is a series' plan by hour of start (grains.go, "By hour of
// start"): p.h is series_sh and p.hours the start hours it serves, from
// spreadHorizon before the range to its end. No plan (p.h nil) when it
// cannot answer: a step not a whole number of hours; a range without a
// start or whose start is not on the hour (its partial first bucket needs
// the share before the start of every flow running then, which only the
// raw flows have); a filter on more than its dimensions; a day of the
// range whose generation did not write it (rolled up before migration 15:
// only series_1h has it, and its raw flows may be gone). Those are left
// to plan. A range may end within an hour (the page's ranges end now): a
// start hour some of whose flows ran past the end is read raw
// (endsWithin).
func (s *Store) startsPlan(ctx context.Context, f flowlog.Filter, step time.Duration) (plan, error) {
	if step <= 0 || step%time.Hour != 0 || s.path == pathRaw || !rollupable(f) || !seriesSH.serves(dimConds(f)) ||
		f.From.IsZero() || !onHour(f.From) {
		return plan{}, nil
	}
	back, _, _ := spreadRange(f)
	now := time.Now()
	clean, err := s.cleanDays(ctx, back.From, f.To)
	if err != nil {
		return plan{}, err
	}
	first := seriesSH.firstDay(now)
	hours := map[int64]int64{}
	for d, c := range clean {
		day, err := time.Parse(dayLayout, d)
		if err != nil {
			return plan{}, fmt.Errorf("rollup day %q: %w", d, err)
		}
		if !c.starts {
			return plan{}, nil
		}
		if day.Before(first) {
			continue
		}
		for hr := range 24 {
			t := day.Add(time.Duration(hr) * time.Hour)
			if c.dirty&(1<<hr) != 0 || t.Before(back.From) || (!f.To.IsZero() && !t.Before(f.To)) {
				continue
			}
			hours[t.UnixMilli()/hourMS] = c.gen
		}
	}
	p := plan{h: &seriesSH, hours: hours, dirty: dirtyDays(clean)}
	if !f.To.IsZero() && !onHour(f.To) && len(hours) > 0 {
		if err := s.endsWithin(ctx, f, p); err != nil {
			return plan{}, err
		}
	}
	if len(hours) == 0 {
		return plan{}, nil
	}
	return p, nil
}

// endsWithin leaves to the raw read the start hours p serves that have a
// flow whose lifetime runs past f.To (within the hour: the range's last
// bucket would get bytes of after its end). Those are rare when the range
// ends now: a lifetime ends at the flow's end or its latest report.
func (s *Store) endsWithin(ctx context.Context, f flowlog.Filter, p plan) error {
	last := f.To.Truncate(time.Hour)
	var rows []struct {
		H int64 `json:"h"`
	}
	reads := hourReads(f, p, time.Hour, func(c []string, newest bool) string {
		c = append(c, "bucket = toDateTime("+strconv.FormatInt(last.Unix(), 10)+", 'UTC')")
		return "SELECT hour, last_end FROM " + s.rowsOf(&seriesSH, c, newest)
	})
	q := fmt.Sprintf("SELECT toUnixTimestamp(hour) AS h FROM (%s) GROUP BY hour HAVING max(last_end) >= %d",
		strings.Join(reads, " UNION ALL "), f.To.UnixMilli())
	if err := s.queryRows(ctx, q, &rows); err != nil {
		return fmt.Errorf("reading the time series' last hour: %w", err)
	}
	for _, r := range rows {
		delete(p.hours, r.H/3600)
	}
	return nil
}

func onHour(t time.Time) bool { return t.Equal(t.Truncate(time.Hour)) }

// startsSources is the union a series by hour of start reads (startsPlan):
// the served start hours' rows of series_sh whose buckets are in the
// range, and the flows started in the other hours since spreadHorizon
// before the range, spread over its buckets. Columns as sources'.
func (s *Store) startsSources(f flowlog.Filter, p plan, step time.Duration) string {
	parts := hourReads(f, p, step, func(c []string, newest bool) string {
		c = append(c, "bucket >= toDateTime("+strconv.FormatInt(f.From.Unix(), 10)+", 'UTC')")
		if !f.To.IsZero() {
			c = append(c, "bucket < toDateTime("+strconv.FormatInt(f.To.Unix(), 10)+", 'UTC')")
		}
		return fmt.Sprintf("SELECT toDateTime64(bucket, 3, 'UTC') AS t, toUInt128(spread_bytes) AS nb, toUInt128(spread_packets) AS np, toUInt128(flows) AS nf FROM %s",
			s.rowsOf(&seriesSH, c, newest))
	})
	back, lo, hi := spreadRange(f)
	if skip, spans, all := rawSkip(back, p); !all {
		q := spreadSQL(s.rawFrom(s.condsExcept(back, s.staleCutoff(), skip, spans)), "", "", spreadWidth(step), lo, hi)
		parts = append(parts, "SELECT t, nb, np, nf FROM ("+q+")")
	}
	return "(" + strings.Join(parts, " UNION ALL ") + ")"
}

// rawSkip says what of f's range a raw read leaves to p's rollups: the day
// partitions (YYYYMMDD) wholly served by the day rollup or by hours, and
// when p serves hours, the spans of the range left to read raw (none: the
// rollups serve the whole range).
func rawSkip(f flowlog.Filter, p plan) (days []string, raw []span, all bool) {
	for _, d := range servedDays(p) {
		t, _ := time.Parse(dayLayout, d)
		days = append(days, t.Format(partitionLayout))
	}
	if len(p.hours) == 0 {
		return days, nil, p.r != nil && coversRange(f, servedDays(p))
	}
	var served []span
	for _, d := range servedDays(p) {
		t, _ := time.Parse(dayLayout, d)
		served = append(served, span{t, t.Add(24 * time.Hour)})
	}
	perDay := map[string]int{}
	for h := range p.hours {
		t := time.UnixMilli(h * hourMS).UTC()
		served = append(served, span{t, t.Add(time.Hour)})
		perDay[t.Format(partitionLayout)]++
	}
	sort.Slice(served, func(i, j int) bool { return served[i].lo.Before(served[j].lo) })
	cur := f.From // the start of what is not served yet (zero: unbounded)
	for _, sp := range served {
		if !cur.IsZero() && !sp.hi.After(cur) {
			continue
		}
		if cur.IsZero() || sp.lo.After(cur) {
			raw = append(raw, span{cur, sp.lo})
		}
		cur = sp.hi
	}
	if f.To.IsZero() || cur.Before(f.To) {
		raw = append(raw, span{cur, f.To})
	}
	for d, n := range perDay {
		if n == 24 { // every hour of the day from the hour rollup
			days = append(days, d)
		}
	}
	sort.Strings(days)
	return days, raw, len(raw) == 0
}

// span is a time range [lo, hi), unbounded where zero.
type span struct{ lo, hi time.Time }

// spansCond selects the starts in spans, each widened by w on both sides.
func spansCond(spans []span, w time.Duration) string {
	or := make([]string, len(spans))
	for i, sp := range spans {
		lo, hi := sp.lo, sp.hi
		if !lo.IsZero() {
			lo = lo.Add(-w)
		}
		if !hi.IsZero() {
			hi = hi.Add(w)
		}
		c := timeConds(lo, hi)
		if len(c) == 0 {
			c = []string{"1 = 1"}
		}
		or[i] = "(" + strings.Join(c, " AND ") + ")"
	}
	return "(" + strings.Join(or, " OR ") + ")"
}

// coversRange says whether days (2006-01-02, sorted) are every day of the
// bounded range [f.From, f.To), which starts and ends at midnight.
func coversRange(f flowlog.Filter, days []string) bool {
	if f.From.IsZero() || f.To.IsZero() || !f.From.Equal(f.From.Truncate(24*time.Hour)) || !f.To.Equal(f.To.Truncate(24*time.Hour)) {
		return false
	}
	return len(days) > 0 && days[0] == f.From.UTC().Format(dayLayout) &&
		len(days) == int(f.To.Sub(f.From)/(24*time.Hour))
}

// participantCols are the columns the matrix and top participants group
// flow-shaped sources by.
const participantCols = "src_type, src_entity_id, src_entity_name, dst_type, dst_entity_id, dst_entity_name, "

// aggregateSQL plans and renders one flow-shaped aggregate: SELECT sel FROM
// <sources> tail.
func (s *Store) aggregateSQL(ctx context.Context, f flowlog.Filter, step time.Duration, cands []*rollupTable, cols string, sel, tail string) (string, error) {
	p, err := s.aggregatePlan(ctx, f, step, cands)
	if err != nil {
		return "", err
	}
	return "SELECT " + sel + " FROM " + s.sources(f, p, cols, false, step) + " " + tail, nil
}

// aggregatePlan is how a flow-shaped aggregate reads f's range: a series
// by hour of start when it can (startsPlan), else from cands (plan).
func (s *Store) aggregatePlan(ctx context.Context, f flowlog.Filter, step time.Duration, cands []*rollupTable) (plan, error) {
	if p, err := s.startsPlan(ctx, f, step); err != nil || p.h != nil {
		return p, err
	}
	return s.plan(ctx, f, cands, step == 0)
}

// Sums never wrap. ClickHouse's sum of UInt64 is a UInt64 that wraps
// (2^64-1 + 21 sums to 20, checked on the engine), and so does the +
// of two UInt64: one agent could then subtract from a participant's
// totals. Ingest refuses counters near 2^64 (ingest.Convert); reads still sum
// in UInt128 and saturate at 2^64-1, the largest total the API can print.
const (
	sumBytes   = "toUInt128(bytes_sent) + bytes_recv"
	sumPackets = "toUInt128(packets_sent) + packets_recv"
	maxUInt64  = "18446744073709551615"
	totalsSel  = "toUInt64(least(sum(nb), " + maxUInt64 + ")) AS bytes, toUInt64(least(sum(np), " + maxUInt64 + ")) AS packets, " +
		"toUInt64(least(sum(nf), " + maxUInt64 + ")) AS flows"
)

// saturatingSum sums a UInt64 column of rollup rows, saturating at the
// largest UInt64 as every sum of the rollups does.
func saturatingSum(col string) string {
	return fmt.Sprintf("toUInt64(least(sum(toUInt128(%s)), %s))", col, maxUInt64)
}

// endpointColumns are the raw flows' columns about endpoints that rollups
// do not keep: addresses and their networks. (The engine reads only those
// an aggregate uses.)
const endpointColumns = "src_ip, dst_ip, src_asn, dst_asn, src_as_name, dst_as_name, src_country, dst_country, "

type totalsRow struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

func (r totalsRow) totals() flowlog.Totals {
	return flowlog.Totals{Bytes: r.Bytes, Packets: r.Packets, Flows: r.Flows}
}

func metricCol(m flowlog.Metric) (string, error) {
	switch m {
	case flowlog.MetricBytes:
		return "bytes", nil
	case flowlog.MetricPackets:
		return "packets", nil
	case flowlog.MetricFlows:
		return "flows", nil
	}
	return "", fmt.Errorf("unknown metric %d", m)
}

// Top returns the biggest talkers among the flows matching q.Filter, by
// q.Metric descending (ties: by type, id, name or by address), at most
// q.Limit (default 10). Grouping is by participant (type, id, name) or, with
// ByIP, by address (IPv4 as a.b.c.d), with ByASN by AS (number, name), with
// ByCountry by country, with ByPrefix external endpoints by the prefix of
// their address (ASN, country and prefix read raw flows only: rollups keep
// no networks, and addresses only per day and side; endpoints of no known
// AS or country, mesh participants among them, are left out, and so are
// mesh participants by prefix). With SideAny a flow
// counts once for its source and once for its destination (twice for one
// participant talking to itself).
func (s *Store) Top(ctx context.Context, q flowlog.TopQuery) ([]flowlog.Talker, error) {
	if q.Limit <= 0 {
		q.Limit = defaultTopLimit
	}
	if _, err := metricCol(q.Metric); err != nil {
		return nil, err
	}
	var key, arrayJoin string
	var sides []string
	switch q.Side {
	case flowlog.SideAny:
		sides = []string{"src", "dst"}
	case flowlog.SideSrc:
		sides = []string{"src"}
	case flowlog.SideDst:
		sides = []string{"dst"}
	default:
		return nil, fmt.Errorf("unknown side %d", q.Side)
	}
	raw := q.ByIP || q.ByASN || q.ByCountry || q.ByPrefix
	lens := q.PrefixLens
	if lens == (flowlog.PrefixLens{}) {
		lens = flowlog.DefaultPrefixLens
	}
	if q.ByPrefix {
		if err := lens.Check(); err != nil {
			return nil, err
		}
	}
	one := func(side string) string {
		switch {
		case q.ByIP:
			return side + "_ip"
		case q.ByPrefix:
			return fmt.Sprintf("(%[1]s_type = 'external', %[2]s)", side, prefixExpr(side+"_ip", lens))
		case q.ByASN:
			return fmt.Sprintf("(%[1]s_asn, toString(%[1]s_as_name))", side)
		case q.ByCountry:
			return "toString(" + side + "_country)"
		}
		return fmt.Sprintf("(%[1]s_type, %[1]s_entity_id, %[1]s_entity_name)", side)
	}
	if len(sides) == 2 {
		arrayJoin = "ARRAY JOIN [" + one("src") + ", " + one("dst") + "] AS g"
	} else {
		arrayJoin = "ARRAY JOIN [" + one(sides[0]) + "] AS g"
	}
	// One key shape for every grouping (unused parts constant): ASN rides
	// in pid, its name in pname, a country in pname.
	switch {
	case q.ByIP:
		key = "IPv6NumToString(g) AS ip_s, 0 AS ptype, '' AS pid, '' AS pname"
	case q.ByASN:
		key = "'' AS ip_s, 0 AS ptype, toString(g.1) AS pid, g.2 AS pname"
		arrayJoin += " WHERE g.1 != 0" // endpoints of no known network (the mesh's own) are no AS
	case q.ByCountry:
		key = "'' AS ip_s, 0 AS ptype, '' AS pid, g AS pname"
		arrayJoin += " WHERE g != ''"
	case q.ByPrefix:
		key = "IPv6NumToString(g.2) AS ip_s, 0 AS ptype, '' AS pid, '' AS pname"
		arrayJoin += " WHERE g.1" // the mesh's own addresses are no one's prefix
	default:
		key = "'' AS ip_s, toInt8(g.1) AS ptype, toString(g.2) AS pid, toString(g.3) AS pname"
	}
	sql, err := s.topSQL(ctx, q, raw, sides, arrayJoin, key)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		IP   string `json:"ip_s"`
		Type uint8  `json:"ptype"`
		ID   string `json:"pid"`
		Name string `json:"pname"`
		totalsRow
	}
	if err := s.queryRows(ctx, sql, &rows); err != nil {
		return nil, fmt.Errorf("querying top talkers: %w", err)
	}
	out := make([]flowlog.Talker, len(rows))
	for i, r := range rows {
		out[i].Totals = r.totalsRow.totals()
		switch {
		case q.ByIP:
			a, err := netip.ParseAddr(r.IP)
			if err != nil {
				return nil, fmt.Errorf("top talkers: address %q: %w", r.IP, err)
			}
			out[i].IP = a.Unmap()
		case q.ByPrefix:
			a, err := netip.ParseAddr(r.IP)
			if err != nil {
				return nil, fmt.Errorf("top talkers: prefix %q: %w", r.IP, err)
			}
			out[i].Prefix = lens.Of(a)
		case q.ByASN:
			asn, err := strconv.ParseUint(r.ID, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("top talkers: AS number %q: %w", r.ID, err)
			}
			out[i].ASN, out[i].ASName = uint32(asn), r.Name
		case q.ByCountry:
			out[i].Country = r.Name
		default:
			out[i].Type, out[i].ID, out[i].Name = flowlog.ParticipantType(r.Type), r.ID, r.Name
		}
	}
	return out, nil
}

// topSQL renders Top's query over the cheapest exact sources: rows of one
// participant (or address) per side where a rollup keeps them, flow-shaped
// rows (raw, or a rollup of pairs) turned into one row per side by
// arrayJoin.
func (s *Store) topSQL(ctx context.Context, q flowlog.TopQuery, raw bool, sides []string, arrayJoin, key string) (string, error) {
	order, err := metricCol(q.Metric)
	if err != nil {
		return "", err
	}
	cands, cols, g := topTables, participantCols, "(ptype, pid, pname)"
	switch {
	case q.ByIP:
		cands, cols, g = ipTables, "", "ip"
	case q.ByPrefix: // external endpoints only: their types too
		cands, cols = nil, "src_type, dst_type, "
	case raw:
		cands, cols = nil, ""
	}
	p, err := s.plan(ctx, q.Filter, cands, true)
	if err != nil {
		return "", err
	}
	var flowParts, parts []string
	if len(p.days) > 0 && !p.r.sides {
		flowParts = append(flowParts, s.rollupPart(q.Filter, p, cols, 0))
	}
	if len(p.hours) > 0 && !p.h.sides {
		flowParts = append(flowParts, hourReads(q.Filter, p, 0, func(c []string, newest bool) string { return s.flowRows(p.h, newest, c, cols, 0) })...)
	}
	if r := s.rawPart(q.Filter, p, cols, raw, 0); r != "" {
		flowParts = append(flowParts, r)
	}
	if len(flowParts) > 0 {
		parts = append(parts, "SELECT g, nb, np, nf FROM ("+strings.Join(flowParts, " UNION ALL ")+") "+arrayJoin)
	}
	if p.r != nil && p.r.sides { // and its hours: hourTwin pairs like with like
		parts = append(parts, s.sidePart(q.Filter, p, g, sides))
	}
	return fmt.Sprintf("SELECT %s, %s FROM (%s) GROUP BY ip_s, ptype, pid, pname ORDER BY %s DESC, ptype, pid, pname, ip_s LIMIT %d",
		key, totalsSel, strings.Join(parts, " UNION ALL "), order, q.Limit), nil
}

// Matrix returns who talked to whom: totals per (source participant,
// destination participant), the limit (default 100) largest by bytes
// (ties: by flows, then by the participants).
func (s *Store) Matrix(ctx context.Context, f flowlog.Filter, limit int) ([]flowlog.Edge, error) {
	if limit <= 0 {
		limit = defaultMatrixLimit
	}
	sql, err := s.aggregateSQL(ctx, f, 0, matrixTables, participantCols,
		"toInt8(src_type) AS st, toString(src_entity_id) AS sid, toString(src_entity_name) AS sname, "+
			"toInt8(dst_type) AS dt, toString(dst_entity_id) AS did, toString(dst_entity_name) AS dname, "+totalsSel,
		fmt.Sprintf("GROUP BY st, sid, sname, dt, did, dname ORDER BY bytes DESC, flows DESC, st, sid, sname, dt, did, dname LIMIT %d", limit))
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ST    uint8  `json:"st"`
		SID   string `json:"sid"`
		SName string `json:"sname"`
		DT    uint8  `json:"dt"`
		DID   string `json:"did"`
		DName string `json:"dname"`
		totalsRow
	}
	if err := s.queryRows(ctx, sql, &rows); err != nil {
		return nil, fmt.Errorf("querying traffic matrix: %w", err)
	}
	out := make([]flowlog.Edge, len(rows))
	for i, r := range rows {
		out[i] = flowlog.Edge{
			Src:    flowlog.Participant{Type: flowlog.ParticipantType(r.ST), ID: r.SID, Name: r.SName},
			Dst:    flowlog.Participant{Type: flowlog.ParticipantType(r.DT), ID: r.DID, Name: r.DName},
			Totals: r.totals(),
		}
	}
	return out, nil
}

// Series returns totals per bucket of step of the flows matching f, in
// [f.From, f.To): the bytes and packets that flowed in the bucket (each
// flow's spread evenly over its lifetime, spreadSQL), the flows that
// started in it. Buckets are aligned to multiples of step since the Unix
// epoch (for steps dividing a day: the UTC clock), so the first and last
// may extend beyond the range (they hold only what is in it). Only buckets holding flows are returned, in time order: the caller
// fills gaps. A step of a whole number of minutes (hours) lets the 1-minute
// (1-hour) rollup answer.
func (s *Store) Series(ctx context.Context, f flowlog.Filter, step time.Duration) ([]flowlog.Point, error) {
	if step <= 0 || step%time.Millisecond != 0 {
		return nil, errors.New("series step must be a positive whole number of milliseconds")
	}
	interval := fmt.Sprintf("INTERVAL %d MILLISECOND", step/time.Millisecond)
	if step%time.Second == 0 {
		interval = fmt.Sprintf("INTERVAL %d SECOND", step/time.Second)
	}
	sql, err := s.aggregateSQL(ctx, f, step, seriesTables(step), "",
		"toUnixTimestamp64Milli(toDateTime64(toStartOfInterval(t, "+interval+"), 3, 'UTC')) AS ts, "+totalsSel,
		"GROUP BY ts ORDER BY ts")
	if err != nil {
		return nil, err
	}
	var rows []struct {
		TS int64 `json:"ts"`
		totalsRow
	}
	if err := s.queryRows(ctx, sql, &rows); err != nil {
		return nil, fmt.Errorf("querying time series: %w", err)
	}
	out := make([]flowlog.Point, len(rows))
	for i, r := range rows {
		out[i] = flowlog.Point{T: time.UnixMilli(r.TS).UTC(), Totals: r.totals()}
	}
	return out, nil
}

// Active counts the flows matching f that are open now (START seen, no
// DESTROY yet, not stale), among flows starting in [f.From, f.To) when those
// are set. It always reads the raw flows: it needs one narrow column
// (event_type) and measured faster than through the rollups
// (BENCHMARKS.md).
func (s *Store) Active(ctx context.Context, f flowlog.Filter) (uint64, error) {
	if f.State != flowlog.StateAll && f.State != flowlog.StateActive {
		return 0, nil // open now and finished (or stale) at once: none
	}
	f.State = flowlog.StateActive
	c := s.conds(f, s.staleCutoff())
	var rows []struct {
		N uint64 `json:"n"`
	}
	if err := s.queryRows(ctx, "SELECT count() AS n FROM "+s.rawFrom(c), &rows); err != nil {
		return 0, fmt.Errorf("counting active flows: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	return rows[0].N, nil
}

// Time series put a flow's bytes where they flowed, as far as the store
// knows: a flow's bytes and packets are spread evenly over its lifetime,
// [start, end] once it ended, [start, inserted_at of its latest report]
// while it is open (our agent re-reports open flows with their counters so
// far every active timeout; a stock agent's START carries none, so its
// flows land whole in the interval of their DESTROY's lifetime only once
// they end). Each bucket gets the flow's share of the time it overlaps. The
// flow count stays in the bucket of the start.
//
// Lifetimes count up to spreadHorizon: a flow lasting longer has its bytes
// spread over its first spreadHorizon. That bound keeps reads exact and
// cheap: a flow reaches at most the day after its start partition, so a
// series reads one day partition before its range (and a day's rollup
// reads the day before it), not the whole retention.
const spreadHorizon = 24 * time.Hour

const dayMS = 24 * 60 * 60 * 1000

// spreadSQL renders, for each merged flow of src (a FROM clause over the
// flows table, with its WHERE), one row per bucket of w milliseconds
// (aligned to the epoch) that the flow's lifetime overlaps within [lo, hi)
// (Unix milliseconds): t, the bucket's start (DateTime64(3)); the columns
// named outCols (inCols renders them; each column followed by ", "); nb, np, the flow's bytes and
// packets times the share of its lifetime in the bucket and the range; nf,
// 1 in the bucket of the flow's start (when in the range), else 0; sb, sp,
// all its bytes and packets there, else 0. Rows with nothing are left out.
//
// Integer shares are exact: bucket i gets floor(total·c_i/d) −
// floor(total·c_{i−1}/d), c_i the time from the start to the bucket's end,
// so the shares of a flow sum to its total (the last reaches d). Products
// fit UInt128: totals are below 2^65, d below 2^27 (spreadHorizon in ms).
func spreadSQL(src, inCols, outCols string, w, lo, hi int64) string {
	life := fmt.Sprintf("least(greatest(if(event_type = 'destroy', toUnixTimestamp64Milli(end_ts), toUnixTimestamp64Milli(inserted_at)), s0), s0 + %d)",
		spreadHorizon.Milliseconds())
	flows := fmt.Sprintf("SELECT %stoUnixTimestamp64Milli(start_ts) AS s0, %s AS e0, %s AS tb, %s AS tp FROM %s",
		inCols, life, sumBytes, sumPackets, src)
	lo0 := fmt.Sprintf("greatest(s0, toInt64(%d))", lo)
	buckets := fmt.Sprintf("SELECT *, toUInt128(e0 - s0) AS d, arrayJoin(range(intDiv(%[1]s, %[2]d), intDiv(greatest(least(e0, toInt64(%[3]d)) - 1, %[1]s), %[2]d) + 1)) AS bk "+
		"FROM (%[4]s) WHERE s0 >= %[5]d OR e0 > %[5]d", lo0, w, hi, flows, lo)
	share := func(total string) string {
		c0 := fmt.Sprintf("toUInt128(greatest(bk * %d, s0, toInt64(%d)) - s0)", w, lo)
		c1 := fmt.Sprintf("toUInt128(least((bk + 1) * %d, e0, toInt64(%d)) - s0)", w, hi)
		return fmt.Sprintf("toUInt128(if(d = 0, %[1]s, intDiv(%[1]s * %[3]s, d) - intDiv(%[1]s * %[2]s, d)))", total, c0, c1)
	}
	return fmt.Sprintf("SELECT fromUnixTimestamp64Milli(toInt64(bk * %[1]d), 'UTC') AS t, %[2]s%[3]s AS nb, %[4]s AS np, "+
		"toUInt128(s0 >= %[5]d AND s0 < %[6]d AND intDiv(s0, %[1]d) = bk) AS nf, if(nf = 1, tb, toUInt128(0)) AS sb, if(nf = 1, tp, toUInt128(0)) AS sp "+
		"FROM (%[7]s) WHERE nb > 0 OR np > 0 OR nf > 0",
		w, outCols, share("tb"), share("tp"), lo, hi, buckets)
}

// spreadRange is what a spread read of f's range reads: f with the flows
// started up to spreadHorizon before its range, and the range in Unix
// milliseconds (unbounded: 0, 2^62).
func spreadRange(f flowlog.Filter) (back flowlog.Filter, lo, hi int64) {
	back, lo, hi = f, 0, 1<<62
	if !f.From.IsZero() {
		back.From, lo = f.From.Add(-spreadHorizon), f.From.UnixMilli()
	}
	if !f.To.IsZero() {
		hi = f.To.UnixMilli()
	}
	return back, lo, hi
}

// spreadWidth is the bucket width a raw series read spreads over: the
// step, or a divisor of it that also divides a day, so that no bucket
// straddles midnight (days the rollups serve are left out bucket by
// bucket); Series regroups them into steps.
func spreadWidth(step time.Duration) int64 {
	a, b := step.Milliseconds(), int64(dayMS)
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
