package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowlog/flowlog"
)

// Rollups: flows summed per time bucket and dimension (by start, and the
// bytes that flowed in the bucket: spreadSQL), at 1 minute
// (flows_1m) and 1 hour (flows_1h), read by the aggregates (aggregate.go)
// instead of the raw table where they are known to be exact.
//
// Why not a materialized view. Aggregates must be exact under retries: a
// retried envelope re-inserts the same rows, and a flow is inserted twice
// anyway (START, then DESTROY). The raw table collapses them
// (ReplacingMergeTree, read with FINAL); a rollup cannot collapse sums.
//   - An insert-triggered materialized view sees every inserted block, twins
//     included, so it double counts; no aggregate state is idempotent under
//     duplicate rows except set-like ones (uniqExact(flow_id) for the flow
//     count), and nothing of the kind exists for byte sums short of keeping
//     one entry per flow, which is no rollup.
//   - A REFRESHABLE materialized view does run in chDB 26.5 (the embedded
//     engine runs the refresh scheduler; REFRESH EVERY 1 SECOND was watched in
//     system.view_refreshes) and reads FINAL, so it is exact for what it
//     recomputes. But what must it recompute? A DESTROY reports a flow's
//     bytes when the flow ends, hours or days after it started, and bytes are
//     bucketed by start time; a "recompute the last N minutes" refresh
//     misses them, and "recompute everything" re-reads 30 days of flows every
//     time (and the 1-hour rollup outlives the raw data, so it cannot be
//     recomputed from it). Knowing which buckets changed needs state the
//     insert path writes, and bookkeeping a view cannot do.
//
// So the collector does it (option "periodic recompute job"), exactly:
//   - Store.Insert, after the flows are committed and before it returns
//     (before the envelope is acked), records a dirty mark (day, stamp) for
//     each day partition the batch touched (in rollup_marks, by hour since
//     migration 12: "Hours" below). Stamps come from a strictly increasing
//     clock (Store.stamp).
//   - Store.Rollup recomputes each dirty day whole from the merged view
//     (flows FINAL, that day's partition: a flow's rows share a partition,
//     and FINAL reads the whole partition anyway since start_ts is not in
//     the sorting key; and the day before's, whose flows' bytes may run
//     into the day, spreadHorizon). Marks name both days. It writes
//     the day's complete rows under a new generation, then records in
//     rollup_days (day, gen, covers): readers use generation gen, and the
//     rows include every insert whose mark is <= covers.
//   - A day is clean when its latest mark is <= covers. Aggregates read the
//     rollup for clean days and the raw table for every other day of the
//     range, in one query, so an answer is exact whatever the job's lag.
//
// Exactness argument: covers is at most the largest mark M the job read
// before recomputing. A mark is stamped after its rows committed, and
// stamps strictly increase, so a mark <= M (whether the job saw it or not)
// was stamped before M, which was written before the job read it: its rows
// were committed before the recomputation read the day. covers is also kept
// rollupClockSlack below the stamp of the pass's start, so that several collectors
// sharing a ClickHouse server (each with its own clock) stay exact as long
// as their clocks agree within that slack. A crash between the flows insert
// and its mark loses the mark, but then Insert did not return, the envelope
// was not acked, and the agent's retry marks it. A partially written
// generation is never named in rollup_days, so never read as such. But
// the tables are ReplacingMergeTree(gen), keyed without gen, so the engine
// may merge the named generation's rows into a later one's of the same
// key, written by a pass under way (or stopped) on the day: a day being
// recomputed is dirty, so its day rows are not read, but its clean hours
// are, by hour of start. A dirty day's hours are read key by key at the
// named generation or a later one, the newest (aggregate.go hourConds),
// which for a clean hour holds the same sums.
//
// Cost: a day is recomputed whole (at 10M flows over 30 days, about 0.7 s a
// day, BENCHMARKS.md), in slices of hosts ("Slices" below). The background
// job leaves a day alone while inserts keep touching every hour of it that
// is dirty (the current hour, normally), and recomputes it once one of them
// pauses, or hourly.
//
// Hours (migration 12). Marks name the hour of each start (and of its
// neighbours within twice PeerSkew, and of where its bytes run to), in
// rollup_marks (day, hour, marked). A day is clean when every hour's
// latest mark is <= covers; an hour of a dirty day is clean when its own
// marks are: the argument above holds hour by hour, since every insert
// that can change what the rollup rows of an hour of start say marks that
// hour. So the clean hours of a dirty day (today's, but the one being
// written) and the whole hours of the range's partial first and last days
// are read from the rollups of start hours (talkers_1h, addrs_1h; flows_1h
// holds its flows by start hour too), and only the other hours raw. A time
// series' bucket gets bytes from flows started up to spreadHorizon before
// it, which no mark of the bucket's hour names, so series_1h serves clean
// days only; series_sh keeps those bytes by start hour, which the marks do
// name (grains.go, "By hour of start").

// Rollup retention, fixed (the raw flows' retention is --retention, 30 days
// by default): 1-minute rows for a week, 1-hour rows for a year, so long
// ranges stay answerable after the raw flows expired.
const (
	Rollup1mTTL = 7 * 24 * time.Hour
	Rollup1hTTL = 365 * 24 * time.Hour

	// DefaultRollupEvery is the recomputation interval to pass as
	// Options.RollupEvery (rollups are off unless it is set): the dirty days
	// are recomputed this often; meanwhile aggregates read them raw.
	DefaultRollupEvery = time.Minute
)

const (
	// rollupClockSlack: see "Exactness argument" above.
	rollupClockSlack = 2 * time.Second
	// rollupTTLMargin keeps readers and the job away from rows a TTL may be
	// deleting right now: a rollup serves a day only while the day's start
	// is more than this margin inside the rollup's TTL, and a day is
	// recomputed only while it is whole in the raw table.
	rollupTTLMargin = time.Hour
)

// rollupDims are the dimensions rollup rows are grouped by; their names are
// those of the raw columns, so filters render the same on both tables.
const rollupDims = "network_id, host_id, src_type, src_entity_id, src_entity_name, " +
	"dst_type, dst_entity_id, dst_entity_name, protocol, direction"

// rollupTable is one rollup table: a granularity and the groups it keeps.
type rollupTable struct {
	name    string        // table
	grain   time.Duration // bucket width
	ttl     time.Duration
	timeCol string   // its bucket's column: bucket (DateTime) or day (Date)
	dims    []string // the rollup dimensions it keeps (filters it answers); nil: all
	grains  bool     // written since migration 9 (grains.go): serves days whose rollup_days.grains = 1
	hourly  bool     // written since migration 12 (grains.go): serves hours of days whose rollup_days.hours = 1
	sides   bool     // one row per participant (or address) and side, not per flow's pair
	key     string   // of a table read by hour: its sorting key, one row per key and generation (hourConds)
}

var (
	rollup1m = rollupTable{name: "flows_1m", grain: time.Minute, ttl: Rollup1mTTL, timeCol: "bucket"}
	rollup1h = rollupTable{name: "flows_1h", grain: time.Hour, ttl: Rollup1hTTL, timeCol: "bucket", key: "bucket, " + rollupDims + ", shadowed"}
)

// firstDay is the first whole day (UTC midnight) this rollup still holds
// entirely at now.
func (r rollupTable) firstDay(now time.Time) time.Time {
	return nextMidnight(now.Add(-r.ttl + rollupTTLMargin))
}

func nextMidnight(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	if d.Before(t) {
		d = d.Add(24 * time.Hour)
	}
	return d
}

const dayLayout = "2006-01-02"

// stamp returns a strictly increasing Unix-nanosecond stamp (wall clock,
// bumped past the last one handed out, here or in the tables at Open).
func (s *Store) stamp() int64 {
	s.clock.Lock()
	defer s.clock.Unlock()
	n := time.Now().UnixNano()
	if n <= s.clock.last {
		n = s.clock.last + 1
	}
	s.clock.last = n
	return n
}

// seedClock makes stamps start after every stamp already stored.
func (s *Store) seedClock(ctx context.Context) error {
	var rows []struct {
		M int64 `json:"m"`
	}
	q := fmt.Sprintf("SELECT greatest((SELECT max(marked) FROM %[1]s.rollup_marks), "+
		"(SELECT max(stamp) FROM %[1]s.rollup_days), (SELECT max(gen) FROM %[1]s.rollup_days)) AS m", s.db)
	if err := s.queryRows(ctx, q, &rows); err != nil {
		return fmt.Errorf("reading rollup stamps: %w", err)
	}
	if len(rows) == 1 {
		s.clock.Lock()
		s.clock.last = max(s.clock.last, rows[0].M)
		s.clock.Unlock()
	}
	return nil
}

// markDirty records that the given events' hours changed. Called after
// their rows are committed, before Insert returns.
func (s *Store) markDirty(ctx context.Context, evs []flowlog.Event) error {
	near := (2 * s.peerSkew).Milliseconds()
	now := s.now().UnixMilli()    // about the rows' inserted_at
	hours := map[int64]struct{}{} // hours since the epoch (a few per batch: cheaper than formatting each)
	for i := range evs {
		// The neighbour hour too when the start is near one: whether an
		// ingress row there is shadowed depends on this one (dedupe.go).
		ms := evs[i].Start.UnixMilli()
		for _, t := range []int64{ms - near, ms, ms + near} {
			hours[floorDiv(t, hourMS)] = struct{}{}
		}
		// And the hour its bytes run into, for the day rollups' series (a
		// flow with none spreads nothing: a stock agent's START, inserted
		// long after its start by a spool).
		if e := &evs[i]; e.BytesSent|e.BytesRecv|e.PacketsSent|e.PacketsRecv != 0 {
			hours[floorDiv(spreadEnd(e, now), hourMS)] = struct{}{}
		}
	}
	need := s.marks.needed(hours) // dirty.go: hours this Store's last mark still covers are skipped
	if len(need) == 0 {
		return nil
	}
	stamp := s.stamp()
	st := strconv.FormatInt(stamp, 10)
	vals := make([]string, 0, len(need))
	for _, h := range need {
		vals = append(vals, "('"+time.UnixMilli(h*hourMS).UTC().Format(dayLayout)+"', "+strconv.FormatInt(floorMod(h, 24), 10)+", "+st+")")
	}
	sort.Strings(vals)
	err := s.eng.Exec(ctx, "INSERT INTO "+s.db+".rollup_marks (day, hour, marked) VALUES "+strings.Join(vals, ", "))
	s.marks.wroteState()
	if err != nil {
		return fmt.Errorf("marking %d hours for the rollups: %w", len(vals), err)
	}
	s.marks.marked(need, stamp)
	return nil
}

const hourMS = 60 * 60 * 1000

// spreadEnd is the end of the lifetime a time series spreads an event's
// flow over (spreadSQL), in Unix milliseconds: its end, or now (about its
// inserted_at) while it is open, at most spreadHorizon after its start.
// Its day's rollup holds a share of the flow (with spreadHorizon a day, it
// is the start's day or the next).
func spreadEnd(ev *flowlog.Event, now int64) int64 {
	start, end := ev.Start.UnixMilli(), now
	if ev.Type == flowlog.EventDestroy {
		end = ev.End.UnixMilli()
	}
	return max(start, min(end, start+spreadHorizon.Milliseconds()))
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// RollupStats says what one Rollup pass did.
type RollupStats struct {
	Days     int // days recomputed
	Closed   int // dirty days too old to recompute (raw rows expiring): rollup kept as is
	Busy     int // dirty days left for later: still being written (background job only)
	Others   int // dirty days another collector claimed (claim.go)
	Duration time.Duration
}

// Rollup recomputes the rollups of every dirty day and returns when they are
// written. Tools and tests call it; the background job runs rollup instead.
// Passes are serialized.
func (s *Store) Rollup(ctx context.Context) (RollupStats, error) {
	return s.rollup(ctx, 0)
}

// rollupMaxSkip bounds how long the job leaves a busy day dirty.
const rollupMaxSkip = time.Hour

// rollup recomputes the dirty days, except, when quiet > 0, the days whose
// every dirty hour was marked within quiet (still being written: the
// current hour, all hour long) and whose rollup is less than rollupMaxSkip
// old. Recomputing such a day is wasted work, as the next insert makes
// those hours dirty again and readers then read them raw; it is recomputed
// once inserts into one of them pause (the hour is over), or hourly.
func (s *Store) rollup(ctx context.Context, quiet time.Duration) (RollupStats, error) {
	s.rollupMu.Lock()
	defer s.rollupMu.Unlock()
	passStamp := s.stamp()
	s.marks.passBegins(passStamp) // before reading any mark (dirty.go)
	began := time.Now()
	var st RollupStats
	var dirty []struct {
		Day    string `json:"day"`
		Marked int64  `json:"marked"`
		Oldest int64  `json:"oldest"` // the earliest latest mark among its dirty hours
		Gen    int64  `json:"gen"`
		dayTables
		Last int64 `json:"last"`
	}
	q := fmt.Sprintf(`SELECT toString(d.day) AS day, max(d.marked) AS marked, minIf(d.marked, d.marked > m.covers) AS oldest,
			any(m.gen) AS gen, any(m.grains) AS grains, any(m.hours) AS hours, any(m.starts) AS starts, any(m.last) AS last
		FROM (SELECT day, hour, max(marked) AS marked FROM %[1]s.rollup_marks GROUP BY day, hour) AS d
		LEFT JOIN (SELECT day, argMax(gen, stamp) AS gen, argMax(grains, stamp) AS grains, argMax(hours, stamp) AS hours,
				argMax(starts, stamp) AS starts, argMax(covers, stamp) AS covers, max(stamp) AS last
			FROM %[1]s.rollup_days GROUP BY day) AS m USING (day)
		GROUP BY d.day HAVING max(d.marked) > any(m.covers) ORDER BY day DESC`, s.db)
	if err := s.queryRows(ctx, q, &dirty); err != nil {
		return st, fmt.Errorf("reading dirty days: %w", err)
	}
	now := time.Now()
	for _, d := range dirty {
		day, err := time.Parse(dayLayout, d.Day)
		if err != nil {
			return st, fmt.Errorf("dirty day %q: %w", d.Day, err)
		}
		if quiet > 0 && d.Oldest > now.Add(-quiet).UnixNano() && d.Last > now.Add(-rollupMaxSkip).UnixNano() {
			st.Busy++
			continue
		}
		if mine, err := s.claim(ctx, d.Day, d.Marked); err != nil {
			return st, err
		} else if !mine {
			st.Others++ // another collector recomputes this change of the day
			continue
		}
		gen := s.stamp()
		// The slack below the pass's start, not this day's: the same for
		// every day of a long pass (more conservative, so as exact).
		covers := min(d.Marked, passStamp-int64(s.slack))
		if !day.After(now.Add(-s.retention + rollupTTLMargin)) {
			// The raw day is (being) deleted by its TTL: recomputing it would
			// replace good rollup rows by a partial day. Keep the rows.
			if err := s.writeRollupDay(ctx, d.Day, d.Gen, d.Marked, d.dayTables); err != nil {
				return st, err
			}
			st.Closed++
			continue
		}
		slices, err := s.hostSlices(ctx, d.Day)
		if err != nil {
			return st, err
		}
		// Each statement of the day, unless the store is closing: the day
		// is then left dirty, its generation unnamed (so never read), for
		// the next pass (a claim's lease frees it for the others).
		exec := func(q string) error {
			if s.stopping() {
				return errPassStopped
			}
			return s.eng.Exec(ctx, q+s.rollupSettings)
		}
		var wrote dayTables
		for _, r := range []rollupTable{rollup1m, rollup1h} {
			if day.Before(r.firstDay(now)) {
				continue // its rows would expire at once; readers do not look there
			}
			// flows_1h sums the day's flows_1m rows when there are some.
			minutes := r.name == rollup1h.name && !day.Before(rollup1m.firstDay(now)) && !s.hoursFromRaw
			for _, slice := range slices {
				q := s.rollupInsertSQL(r, d.Day, gen, slice)
				if minutes {
					q = s.hoursOfMinutesSQL(d.Day, gen, slice)
				}
				if err := exec(q); err != nil {
					return st, fmt.Errorf("recomputing %s for %s: %w", r.name, d.Day, err)
				}
			}
			if r.name == rollup1h.name { // the page's rollups are sums of it (grains.go)
				withHours := !day.Before(talkers1h.firstDay(now))
				for _, q := range s.grainsInsertSQL(d.Day, gen, withHours, slices) {
					if err := exec(q); err != nil {
						return st, fmt.Errorf("recomputing the page's rollups for %s: %w", d.Day, err)
					}
				}
				wrote.Grains = 1
				if withHours {
					wrote.Hours = 1
				}
			}
		}
		if !day.Before(seriesSH.firstDay(now)) { // the time series by hour of start (grains.go)
			for _, q := range s.startsInsertSQL(d.Day, gen, slices) {
				if err := exec(q); err != nil {
					return st, fmt.Errorf("recomputing %s for %s: %w", seriesSH.name, d.Day, err)
				}
			}
			wrote.Starts = 1
		}
		if err := s.writeRollupDay(ctx, d.Day, gen, covers, wrote); err != nil {
			return st, err
		}
		st.Days++
	}
	st.Duration = time.Since(began)
	return st, nil
}

// errPassStopped ends a pass the store's Close interrupted (between two
// statements: the engine cannot interrupt one).
var errPassStopped = errors.New("rollup pass stopped: the store is closing")

// stopping says whether Close has begun. A pass over a big day is dozens
// of statements (slices of hosts) and takes seconds to minutes; Close,
// which waits for the job, then waits for one statement at most.
func (s *Store) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// dayTables says which tables a day's generation wrote besides flows_1m
// and flows_1h (rollup_days' flags; 1: it did).
type dayTables struct {
	Grains uint8 `json:"grains"` // the page's rollups by day (migration 10)
	Hours  uint8 `json:"hours"`  // talkers_1h, addrs_1h (migration 12)
	Starts uint8 `json:"starts"` // series_sh (migration 15)
}

func (s *Store) writeRollupDay(ctx context.Context, day string, gen, covers int64, w dayTables) error {
	err := s.eng.Exec(ctx, fmt.Sprintf("INSERT INTO %s.rollup_days (day, gen, covers, stamp, grains, hours, starts) VALUES ('%s', %d, %d, %d, %d, %d, %d)",
		s.db, day, gen, covers, s.stamp(), w.Grains, w.Hours, w.Starts))
	s.marks.wroteState()
	if err != nil {
		return fmt.Errorf("recording the rollup of %s: %w", day, err)
	}
	return nil
}

// Slices. A day is recomputed in slices of hosts (host_id ranges), each
// statement reading the merged flows of its slice's hosts only, so that
// what a statement holds at once is bounded by the slice, not the day: the
// merge of FINAL, the groups, and above all the one-count-per-connection
// sets (dedupe.go), which hold a key for every ingress row read (a day of
// 9.7M flows in one statement took the engine 0.75 GiB; BENCHMARKS.md
// "Rollup pass memory"). Why hosts: host_id is in the flows' sorting key
// (after the hour and the network: a slice's read skips the other hosts'
// granules), every row of a flow has its host, and so does every row of
// flows_1m and flows_1h, so their slices write disjoint keys (slices
// writing one key would collapse into one row: ReplacingMergeTree(gen)).
// The addresses have no host, so addrs_1h and addrs_1d are summed from
// each slice's sums (grains.go). A slice's ingress rows are still matched
// against the egress rows of every host. flows_1h is summed from flows_1m
// (hoursOfMinutesSQL), so a pass reads the raw flows twice, not three times.
//
// The slices read at different moments, where one statement read one
// snapshot; the exactness argument is unchanged: a mark <= covers names
// rows committed before the pass began, which every slice reads, and any
// insert between two slices marks the hours it changes (> covers), which
// readers then read raw.

// rollupSliceRows is the most raw rows (of the day and the day before, as
// stored: unmerged) a slice has, unless one host has more, or the day more
// than rollupMaxSlices slices of it.
//
// rollupMaxSlices: each slice's statement also scans the egress rows of
// every host of three days (conn_key, for the slice's sets: 0.1-0.2 s of
// the ~0.6 s of a slice at 10M flows a day), so a pass with slices of a
// fixed size would cost the square of the day; beyond 16 slices they grow
// with the day instead, 16 times slower than one statement did.
const (
	rollupSliceRows = 1 << 20
	rollupMaxSlices = 16
)

// hostSlices cuts the hosts of day's flows (and of the day before's, which
// the statements read too) into ranges of about sliceRows rows each,
// returned as conditions on host_id. The first range is open below and the
// last open above, so hosts that write meanwhile are in one too.
func (s *Store) hostSlices(ctx context.Context, day string) ([][]string, error) {
	var rows []struct {
		Host string `json:"host"`
		N    int64  `json:"n"`
	}
	q := fmt.Sprintf("SELECT host_id AS host, count() AS n FROM %s.flows WHERE %s GROUP BY host_id",
		s.db, partitionIn(dayAndBefore(day)))
	if err := s.queryRows(ctx, q, &rows); err != nil {
		return nil, fmt.Errorf("counting the rows of %s by host: %w", day, err)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Host < rows[j].Host }) // the engine's order: bytes
	total := int64(0)
	for _, r := range rows {
		total += r.N
	}
	limit := max(s.sliceRows, (total+rollupMaxSlices-1)/rollupMaxSlices)
	var out [][]string
	var lo []string // the current slice's lower bound
	n := int64(0)
	for _, r := range rows {
		if n > 0 && n+r.N > limit {
			out = append(out, append(slices.Clone(lo), "host_id < "+quote(r.Host)))
			lo, n = []string{"host_id >= " + quote(r.Host)}, 0
		}
		n += r.N
	}
	return append(out, lo), nil
}

// sliceRead is what a pass's statement reads of the day partitions parts
// (YYYYMMDD) for the hosts of slice (hostSlices): its conditions on the
// flows, and the expression saying whether a row is shadowed (dedupe.go),
// against the egress rows of those days and their neighbours, every host's.
func (s *Store) sliceRead(parts, slice []string) (read []string, shadowed string) {
	read = append([]string{partitionIn(parts)}, slice...)
	return read, s.shadowedExpr(s.egressBounds(time.Time{}, time.Time{}, parts, nil), read, false, true)
}

// dayAndBefore returns the partitions a day's flows_1m and flows_1h rows
// are computed from: the day and, for the bytes of flows running into it,
// the day before (spreadHorizon).
func dayAndBefore(day string) []string {
	d, _ := time.Parse(dayLayout, day)
	return []string{d.Add(-24 * time.Hour).Format(partitionLayout), d.Format(partitionLayout)}
}

// rollupInsertSQL recomputes one day of one rollup from the merged flows
// of the hosts of slice (hostSlices), each row's shadowing decided against
// the egress rows of the days read and their neighbours (dedupe.go); sums
// saturate (aggregate.go). A bucket row holds the bytes, packets and count
// of the flows started in it, and the bytes and packets that flowed in it
// (spread_*: spreadSQL), of flows started that day or, running into it,
// the day before (spreadHorizon).
func (s *Store) rollupInsertSQL(r rollupTable, day string, gen int64, slice []string) string {
	d, _ := time.Parse(dayLayout, day)
	read, shadowed := s.sliceRead(dayAndBefore(day), slice)
	spread := spreadSQL(s.db+".flows FINAL "+whereOf(read), rollupDims+", toUInt8("+shadowed+") AS shadowed_r, ",
		rollupDims+", shadowed_r, ", r.grain.Milliseconds(), d.UnixMilli(), d.Add(24*time.Hour).UnixMilli())
	return fmt.Sprintf(`INSERT INTO %[1]s.%[2]s (bucket, gen, %[3]s, shadowed, bytes, packets, flows, spread_bytes, spread_packets)
		SELECT toDateTime(t, 'UTC') AS bucket_r, toInt64(%[4]d) AS gen_r, %[3]s, shadowed_r,
			toUInt64(least(sum(sb), %[5]s)), toUInt64(least(sum(sp), %[5]s)), toUInt64(sum(nf)),
			toUInt64(least(sum(nb), %[5]s)), toUInt64(least(sum(np), %[5]s))
		FROM (%[6]s)
		GROUP BY bucket_r, %[3]s, shadowed_r`,
		s.db, r.name, rollupDims, gen, maxUInt64, spread)
}

// hoursOfMinutesSQL recomputes one day of flows_1h for the hosts of slice
// as the sums of its flows_1m rows of generation gen, without reading the
// raw flows again. They are the rows rollupInsertSQL computes: the
// counters by start add up (a flow starts in one minute of its hour), and
// so do the spread shares, since a bucket's share is floor(total·c/d) at
// its end less that at its start (spreadSQL) and the minutes' shares of
// an hour telescope to the hour's; sums saturate the same (a minute at the
// bound puts its hour there too). The flows_1m rows were written by this
// pass, and a day gets them only while its TTL is rollupTTLMargin away.
func (s *Store) hoursOfMinutesSQL(day string, gen int64, slice []string) string {
	d, _ := time.Parse(dayLayout, day)
	sum := saturatingSum
	read := append([]string{
		fmt.Sprintf("bucket >= toDateTime('%s 00:00:00', 'UTC')", day),
		fmt.Sprintf("bucket < toDateTime('%s 00:00:00', 'UTC')", d.Add(24*time.Hour).Format(dayLayout)),
		fmt.Sprintf("gen = %d", gen)}, slice...)
	return fmt.Sprintf(`INSERT INTO %[1]s.flows_1h (bucket, gen, %[2]s, shadowed, bytes, packets, flows, spread_bytes, spread_packets)
		SELECT toStartOfHour(bucket) AS bucket_r, gen, %[2]s, shadowed, %[3]s, %[4]s, %[5]s, %[6]s, %[7]s
		FROM %[1]s.flows_1m %[8]s
		GROUP BY bucket_r, gen, %[2]s, shadowed`,
		s.db, rollupDims, sum("bytes"), sum("packets"), sum("flows"), sum("spread_bytes"), sum("spread_packets"), whereOf(read))
}

// cleanDay is a rolled-up day: the generation to read, whether it includes
// the page's rollups (grains.go), those by hour and the series by hour of
// start, and which of its hours are dirty (bit h: hour h), none when the
// whole day is clean.
type cleanDay struct {
	gen    int64
	grains bool
	hours  bool
	starts bool
	dirty  uint32
}

// cleanDays returns the rolled-up days (UTC midnight, formatted
// 2006-01-02) among the days of [from, to) (zero = unbounded), each with
// its dirty hours.
func (s *Store) cleanDays(ctx context.Context, from, to time.Time) (map[string]cleanDay, error) {
	var cond []string
	if !from.IsZero() {
		cond = append(cond, "day >= '"+from.UTC().Format(dayLayout)+"'")
	}
	if !to.IsZero() {
		cond = append(cond, "day <= '"+to.Add(-time.Millisecond).UTC().Format(dayLayout)+"'")
	}
	w := ""
	if len(cond) > 0 {
		w = " WHERE " + strings.Join(cond, " AND ")
	}
	var rows []struct {
		Day string `json:"day"`
		Gen int64  `json:"gen"`
		dayTables
		Dirty uint32 `json:"dirty"`
	}
	days, at, ok := s.marks.cached(w) // a sole writer's last answer (dirty.go); read-only
	if ok {
		return days, nil
	}
	q := fmt.Sprintf(`SELECT toString(m.day) AS day, any(m.gen) AS gen, any(m.grains) AS grains, any(m.hours) AS hours, any(m.starts) AS starts,
			groupBitOr(if(d.marked > m.covers, bitShiftLeft(toUInt32(1), d.hour), toUInt32(0))) AS dirty
		FROM (SELECT day, argMax(gen, stamp) AS gen, argMax(grains, stamp) AS grains, argMax(hours, stamp) AS hours, argMax(starts, stamp) AS starts,
			argMax(covers, stamp) AS covers FROM %[1]s.rollup_days%[2]s GROUP BY day) AS m
		LEFT JOIN (SELECT day, hour, max(marked) AS marked FROM %[1]s.rollup_marks%[2]s GROUP BY day, hour) AS d USING (day)
		GROUP BY m.day`, s.db, w)
	if err := s.queryRows(ctx, q, &rows); err != nil {
		return nil, fmt.Errorf("reading rollup state: %w", err)
	}
	out := make(map[string]cleanDay, len(rows))
	for _, r := range rows {
		out[r.Day] = cleanDay{gen: r.Gen, grains: r.Grains == 1, hours: r.Hours == 1, starts: r.Starts == 1, dirty: r.Dirty}
	}
	s.marks.keep(w, out, at)
	return out, nil
}

// rollupLoop runs Rollup every interval until stop is closed.
func (s *Store) rollupLoop(every time.Duration, log *slog.Logger, stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	// A pass is not cancelled midway through a statement: an engine
	// statement cannot be interrupted, and Close must not close the engine
	// under one. It stops between two (stopping).
	ctx := context.Background()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		st, err := s.rollup(ctx, every)
		switch {
		case errors.Is(err, errPassStopped):
			log.Debug("rollup pass stopped by shutdown; the days left stay dirty for the next run")
			return
		case err != nil:
			log.Warn("rollup pass failed; aggregates read those days raw until a later pass succeeds", "err", err)
		case st.Days+st.Closed > 0:
			log.Debug("rollups recomputed", "days", st.Days, "closed", st.Closed, "took", st.Duration)
		}
	}
}
