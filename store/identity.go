package store

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowlog/flowlog"
)

// Flow identity. A flow is (network_id, host_id, flow_id, start_ts): the
// sorting key of the flows table (after the hour of start_ts, which the key
// determines: flowsV13), and start_ts also picks its day partition.
// flow_id alone is not enough: a stock agent's flow_id is a hash of its host
// and the conntrack id, and the kernel reuses conntrack ids, so a later
// connection can carry the flow_id of an ended one; it is a new flow.
//
// But an agent's START and DESTROY of one flow need not carry the same start
// time: a stock agent stamps the START with its own clock and the DESTROY
// with the kernel's (0-2 ms apart, measured; maybe more), and a DESTROY of a
// connection opened before the kernel's timestamps were on has none at all
// (year 1 on the wire). So Insert gives every event its flow's canonical
// start time before writing it: the start of the first event seen of that
// flow (normally the START's). Then a START and its DESTROY share the key
// and the partition, wherever midnight falls, and collapse
// (ReplacingMergeTree) like a retried twin; the merged reads keep
// do_not_merge_across_partitions_select_final and their _partition_id
// pruning.
//
// Which stored flow ("instance") an event belongs to, among the flows with
// its network, host and flow_id:
//   - a START: an instance whose start is within startTolerance of its own
//     and that had not ended before it started (a START after the end is the
//     kernel reusing the id: a new flow);
//   - a DESTROY with a start: an instance within startTolerance, preferring
//     one still open, then the nearest;
//   - a DESTROY without a start: the latest instance still open; else (a
//     retry) the latest one it closed already; else none, and the DESTROY
//     stands for a flow of its own, starting when it ended.
// An event matching no instance keeps its start: a new flow.
//
// Instances come from the batches being inserted right now (registry),
// from the flows this Store committed lately (recent cache), and, for a
// DESTROY neither has a match for, from the table: the lookup and the
// registration of a batch hold one lock, and a batch leaves the registry
// (for the cache) only once its rows are committed, so two batches
// inserted in parallel (the collector's insert writers) see each other's
// flows. Several collectors writing one ClickHouse server see each other's
// committed rows only.
//
// Cost: memory lookups for most events (the batch's map, the recent
// cache: recent.go); one lookup query for the keys,
// pruned to the hours of the starts, for a batch with DESTROYs
// memory cannot place (after a restart, or of flows older than the cache
// holds) (BENCHMARKS.md).

// startTolerance is how far apart two start times of one flow may be.
const startTolerance = 5 * time.Second

type flowKey struct{ network, host, id string }

func keyOf(e *flowlog.Event) flowKey { return flowKey{e.NetworkID, e.HostID, e.FlowID} }

// flowFP is a flow key's 128-bit fingerprint: the tables below hold millions
// of keys, and keys of three strings cost the garbage collector a scan of
// every entry at every cycle (measured under the bench: GC ~11% of the
// collector's CPU, identity maps a fifth of its live heap) and a hash of
// three strings at every access. Maps of fingerprints and inline instances
// hold no pointers, so the GC skips them. Two seeded hashes: a false match
// needs a 128-bit collision (never, in practice); the seeds are per
// process, and nothing derived from them is stored.
type flowFP struct{ a, b uint64 }

var fpSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func fpOf(k flowKey) flowFP {
	return flowFP{maphash.Comparable(fpSeeds[0], k), maphash.Comparable(fpSeeds[1], k)}
}

// instance is one stored or pending flow of a key (times in Unix ms).
type instance struct {
	start, end int64 // end 0: not ended
	approx     bool  // end is a receive time (DESTROY without kernel timestamp)
}

// registry holds the instances of the batches being inserted, one map per
// batch (dropped whole: a map that keeps losing keys gets slow to probe).
type registry struct {
	mu       sync.Mutex // held across a batch's lookup and registration
	next     uint64
	inflight map[uint64]*batchFlows
	recent   recent // committed lately
	// spare are released batches' flows for the next resolves: a batch's
	// map and arrays (~145 bytes an event, 8 MB at 50,000) were a tenth of
	// the collector's allocations under the bench, made anew at every
	// insert (BENCHMARKS.md "Go heap under load"). At most spareFlows.
	spare []*batchFlows
}

// spareFlows: released batches kept for reuse, one per insert writer (the
// default two) runs at once.
const spareFlows = 2

// pending is a registered batch: release it once its insert has returned.
type pending struct{ id uint64 }

// instances are the known instances of k outside the batch being resolved,
// appended to arena (the batch's own array: no allocation per key).
func (r *registry) instances(k flowFP, arena *[]instance) []instance {
	var is []instance
	if n := len(*arena); r.recent.get(k, arena) {
		is = (*arena)[n:len(*arena):len(*arena)]
	}
	for _, b := range r.inflight {
		is = merged(is, b.mine(k))
	}
	return is
}

// merged is a and b as one set of instances, without changing either: a or
// b itself when the other is empty (the common case: no allocation).
func merged(a, b []instance) []instance {
	switch {
	case len(b) == 0:
		return a
	case len(a) == 0:
		return b
	}
	out := slices.Clone(a)
	for _, inst := range b {
		out = upsert(out, inst)
	}
	return out
}

// resolve gives each event its flow's canonical start (see above) and
// registers the batch's flows. Call release when the insert returned.
//
// Instances come from the batch itself, the registry, the recent cache
// (committed by this Store lately) and, only for a DESTROY none of those
// has a match for, the table: a START and its DESTROY seconds apart, the
// common case, cost no query. A START never waits for the table: the one
// case it would find something there (its own DESTROY, committed earlier
// with another start, then gone from the cache) is left to be a flow of
// its own.
func (s *Store) resolve(ctx context.Context, evs []flowlog.Event, now time.Time) (pending, error) {
	r := &s.ident
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.batchFlows(len(evs))
	state := func(k flowFP) *keyFlows {
		if i, ok := b.idx[k]; ok {
			return &b.keys[i]
		}
		b.idx[k] = int32(len(b.keys))
		b.keys = append(b.keys, keyFlows{k: k, others: r.instances(k, &b.known)}) // capacity: no move
		return &b.keys[len(b.keys)-1]
	}
	// One pass settles every event its memory has an answer for; a DESTROY
	// it has none for, and every later event of its flow, wait for the
	// table.
	var ask []int
	fps := make([]flowFP, len(evs)) // each event's key, hashed once
	for i := range evs {
		fps[i] = fpOf(keyOf(&evs[i]))
	}
	for i := range evs {
		if i%prefetchAhead == 0 {
			r.recent.prefetch(fps[i:min(i+prefetchAhead, len(fps))])
		}
		e := &evs[i]
		st := state(fps[i])
		if st.asked {
			ask = append(ask, i)
			continue
		}
		is := merged(st.others, st.mine)
		if e.Type == flowlog.EventDestroy && match(e, is) == nil {
			st.asked = true
			ask = append(ask, i)
			continue
		}
		b.own(st, settle(e, is, now))
	}
	if len(ask) > 0 {
		stored, err := s.lookup(ctx, evs, ask)
		if err != nil {
			return pending{}, err
		}
		for k, is := range stored {
			st := state(fpOf(k))
			st.others = merged(is, st.others)
		}
		for _, i := range ask {
			st := state(fps[i])
			b.own(st, settle(&evs[i], merged(st.others, st.mine), now))
		}
	}
	r.next++
	if r.inflight == nil {
		r.inflight = map[uint64]*batchFlows{}
	}
	r.inflight[r.next] = b
	return pending{r.next}, nil
}

// batchFlows are a batch's flows, by key: one map access per event.
type batchFlows struct {
	idx   map[flowFP]int32
	keys  []keyFlows
	arena []instance // one instance per key, in one array (what own has not taken of all)
	all   []instance // the whole arena
	known []instance // the recent cache's instances of the batch's keys
}

// keyFlows: others are the instances known outside the batch (read-only:
// they may be another batch's or the cache's slice); mine are the batch's
// own.
type keyFlows struct {
	k            flowFP
	others, mine []instance
	asked        bool // waits for the table
}

func newBatchFlows(n int) *batchFlows {
	all := make([]instance, n)
	return &batchFlows{idx: make(map[flowFP]int32, n), keys: make([]keyFlows, 0, n), arena: all, all: all,
		known: make([]instance, 0, n)}
}

// batchFlows returns an empty batchFlows for n events: a spare one large
// enough, else a new one. r.mu is held.
func (r *registry) batchFlows(n int) *batchFlows {
	for i, b := range r.spare {
		if cap(b.keys) >= n && len(b.all) >= n {
			r.spare = slices.Delete(r.spare, i, i+1)
			b.arena = b.all[:n]
			return b
		}
	}
	return newBatchFlows(n)
}

// keep makes a released batch's flows a spare, emptied: another batch's
// keys may still point into its arena, but only their own resolve reads
// them, and that ran under r.mu, as this does. The smallest spare gives
// way to a larger one. r.mu is held.
func (r *registry) keep(b *batchFlows) {
	clear(b.idx)
	clear(b.keys) // their slices
	b.keys, b.known = b.keys[:0], b.known[:0]
	if len(r.spare) < spareFlows {
		r.spare = append(r.spare, b)
		return
	}
	small := slices.MinFunc(r.spare, func(x, y *batchFlows) int { return cmp.Compare(cap(x.keys), cap(y.keys)) })
	if cap(small.keys) < cap(b.keys) {
		r.spare[slices.Index(r.spare, small)] = b
	}
}

func (b *batchFlows) own(st *keyFlows, inst instance) {
	if st.mine != nil {
		st.mine = upsert(st.mine, inst)
		return
	}
	b.arena[0] = inst
	st.mine, b.arena = b.arena[:1:1], b.arena[1:]
}

// mine returns the batch's instances of k.
func (b *batchFlows) mine(k flowFP) []instance {
	if i, ok := b.idx[k]; ok {
		return b.keys[i].mine
	}
	return nil
}

// release drops a batch from the registry: into the recent cache when its
// rows are committed, nowhere when it failed (it will be retried).
func (s *Store) release(p pending, committed bool) {
	r := &s.ident
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.inflight[p.id]
	if b != nil && committed {
		ks := make([]flowFP, 0, prefetchAhead)
		for i := range b.keys {
			if i%prefetchAhead == 0 {
				ks = ks[:0]
				for _, st := range b.keys[i:min(i+prefetchAhead, len(b.keys))] {
					ks = append(ks, st.k)
				}
				r.recent.prefetch(ks)
			}
			if st := &b.keys[i]; st.mine != nil {
				r.recent.add(st.k, st.mine)
			}
		}
	}
	delete(r.inflight, p.id)
	if b != nil {
		r.keep(b)
	}
}

// upsert adds inst to a key's instances, merging it into the one with its
// start (an end, once known, stays). It changes is: only for slices the
// caller owns.
func upsert(is []instance, inst instance) []instance {
	for i := range is {
		if is[i].start == inst.start {
			if inst.end != 0 && (is[i].end == 0 || is[i].approx && !inst.approx) {
				is[i].end, is[i].approx = inst.end, inst.approx
			}
			return is
		}
	}
	return append(is, inst)
}

// match returns the instance e belongs to among is, nil for none (a new
// flow): the rules at the top of this file.
func match(e *flowlog.Event, is []instance) *instance {
	tol := startTolerance.Milliseconds()
	var best *instance
	s := e.Start.UnixMilli()
	switch {
	case e.Type == flowlog.EventStart:
		for i := range is {
			c := &is[i]
			if d := absMS(c.start - s); d <= tol && (c.end == 0 || s <= c.end) {
				if best == nil || d < absMS(best.start-s) {
					best = c
				}
			}
		}
	case e.Start.IsZero(): // DESTROY without kernel timestamps
		for i := range is {
			c := &is[i]
			switch {
			case best == nil:
				best = c
			case (c.end == 0) != (best.end == 0):
				if c.end == 0 {
					best = c
				}
			case c.start > best.start:
				best = c
			}
		}
		if best != nil && best.end != 0 && !best.approx {
			best = nil // it ended for real: this DESTROY is another flow's
		}
	default: // a DESTROY: open instances first, then the nearest start
		for i := range is {
			c := &is[i]
			d := absMS(c.start - s)
			if d > tol {
				continue
			}
			switch {
			case best == nil:
				best = c
			case (c.end == 0) != (best.end == 0):
				if c.end == 0 {
					best = c
				}
			case d < absMS(best.start-s):
				best = c
			}
		}
	}
	return best
}

// settle rewrites e's start (and, for a retried DESTROY without kernel
// timestamps, its end) to its instance's and returns the instance as e
// leaves it.
func settle(e *flowlog.Event, is []instance, now time.Time) instance {
	if best := match(e, is); best != nil {
		e.Start = time.UnixMilli(best.start).UTC()
		if e.Type == flowlog.EventDestroy && e.EndApprox && best.end != 0 && best.approx {
			e.End = time.UnixMilli(best.end).UTC() // a retry: the first receive time stays
		}
	}
	if e.Start.IsZero() {
		e.Start = e.End // no instance: a flow of its own, known only by its end
		if e.Start.IsZero() {
			e.Start = now.UTC().Truncate(time.Millisecond)
		}
	}
	if e.Type == flowlog.EventDestroy && e.End.Before(e.Start) {
		e.End = e.Start // the START's clock ran ahead of the kernel's
	}
	inst := instance{start: e.Start.UnixMilli()}
	if e.Type == flowlog.EventDestroy {
		inst.end, inst.approx = e.End.UnixMilli(), e.EndApprox
	}
	return inst
}

func absMS(d int64) int64 {
	if d < 0 {
		return -d
	}
	return d
}

// lookup returns the stored instances of the keys of evs[ask]: one query
// over the day partitions their starts (± startTolerance) fall in, or every
// partition when a DESTROY has no start. Nothing to ask: no query.
//
// The keys travel inside the query, as RowBinary in a string literal read
// by the format table function: a query that needs nothing but itself
// runs the same on every shard of a Distributed flows (no GLOBAL IN, no
// table on one server) and on whichever server failover picks. One query
// however many keys (queryRows lets it be as long as it is): 100,000 keys
// in several queries of 256 KiB took almost twice as long as in one: each
// reads the partitions again (BENCHMARKS.md).
func (s *Store) lookup(ctx context.Context, evs []flowlog.Event, ask []int) (map[flowKey][]instance, error) {
	out := map[flowKey][]instance{}
	if len(ask) == 0 {
		return out, nil
	}
	hours := map[int64]bool{} // Unix seconds
	all := false
	var keys rowBinary
	seen := map[flowKey]bool{}
	for _, i := range ask {
		e := &evs[i]
		if e.Start.IsZero() {
			all = true
		} else {
			lo, hi := e.Start.Add(-startTolerance), e.Start.Add(startTolerance)
			for h := lo.Truncate(time.Hour); !h.After(hi); h = h.Add(time.Hour) {
				hours[h.Unix()] = true
			}
		}
		if k := keyOf(e); !seen[k] {
			seen[k] = true
			keys.str(k.network)
			keys.str(k.host)
			keys.str(k.id)
		}
	}
	var part []string
	if !all {
		// The hour leads the sorting key (flowsV13): naming the hours of
		// the starts reads only theirs; their days prune partitions.
		var ds, hs []string
		for _, h := range slices.Sorted(maps.Keys(hours)) {
			if d := time.Unix(h, 0).UTC().Format(partitionLayout); len(ds) == 0 || ds[len(ds)-1] != d {
				ds = append(ds, d)
			}
			hs = append(hs, strconv.FormatInt(h, 10))
		}
		part = []string{partitionIn(ds), "toStartOfHour(start_ts) IN (" + strings.Join(hs, ", ") + ")"}
	}
	var rows []struct {
		N   string `json:"network_id"`
		H   string `json:"host_id"`
		F   string `json:"flow_id"`
		S   int64  `json:"s"`
		E   int64  `json:"e"`
		D   uint8  `json:"d"`
		Apx uint8  `json:"end_approx"`
	}
	if err := s.queryRows(ctx, lookupSQL(s.db, keys.b, part), &rows); err != nil {
		return nil, fmt.Errorf("flow lookup: %w", err)
	}
	for _, r := range rows {
		k := flowKey{r.N, r.H, r.F}
		inst := instance{start: r.S}
		if r.D == 1 {
			inst.end, inst.approx = r.E, r.Apx == 1
		}
		out[k] = upsert(out[k], inst)
	}
	return out, nil
}

// lookupSQL is the query for the keys (RowBinary: network_id, host_id,
// flow_id), under the conditions part (the partitions and hours of the
// starts; none: everywhere).
func lookupSQL(db string, keys []byte, part []string) string {
	c := append([]string{"(network_id, host_id, flow_id) IN (SELECT network_id, host_id, flow_id FROM format(RowBinary, " +
		"'network_id String, host_id String, flow_id String', " + quote(string(keys)) + "))"}, part...)
	return fmt.Sprintf("SELECT network_id, host_id, flow_id, toUnixTimestamp64Milli(start_ts) AS s, "+
		"toUnixTimestamp64Milli(end_ts) AS e, toUInt8(event_type = 'destroy') AS d, end_approx FROM %s.flows %s", db, whereOf(c))
}
