package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flowlog/flowlog"
)

// Flow identity. A flow is (network_id, host_id, flow_id, start_ts): the
// sorting key of the flows table, and start_ts also picks its day partition.
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
// Instances come from the table (committed rows) and from the batches being
// inserted right now (registry): the lookup and the registration of a
// batch hold one lock, and a batch leaves the registry only once its rows
// are committed (or failed), so two batches inserted in parallel (the
// collector's insert writers) see each other's flows. Several collectors
// writing one ClickHouse server see each other's committed rows only.
//
// Cost: one lookup query per batch on the key's prefix, pruned to the day
// partitions of the batch's starts (BENCHMARKS.md).

// startTolerance is how far apart two start times of one flow may be.
const startTolerance = 5 * time.Second

type flowKey struct{ network, host, id string }

func keyOf(e *flowlog.Event) flowKey { return flowKey{e.NetworkID, e.HostID, e.FlowID} }

// instance is one stored or pending flow of a key (times in Unix ms).
type instance struct {
	start, end int64 // end 0: not ended
	approx     bool  // end is a receive time (DESTROY without kernel timestamp)
}

// registry holds the instances of the batches being inserted.
type registry struct {
	mu    sync.Mutex // held across a batch's lookup and registration
	next  uint64
	m     map[flowKey][]regEntry
	table string // per-Store Memory table of the keys to look up
}

type regEntry struct {
	batch uint64
	inst  instance
}

// pending is a registered batch: release it once its insert has returned.
type pending struct {
	id   uint64
	keys []flowKey
}

func newLookupTable(db string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return db + ".`flow_lookup_" + hex.EncodeToString(b[:]) + "`"
}

// createLookup makes this Store's lookup table: Memory, nothing durable.
func (s *Store) createLookup(ctx context.Context) error {
	if err := s.eng.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.ident.table+
		" (network_id String, host_id String, flow_id String) ENGINE = Memory"); err != nil {
		return fmt.Errorf("creating the flow lookup table: %w", err)
	}
	return nil
}

// resolve gives each event its flow's canonical start (see above) and
// registers the batch's flows. Call release when the insert returned.
func (s *Store) resolve(ctx context.Context, evs []flowlog.Event, now time.Time) (pending, error) {
	r := &s.ident
	r.mu.Lock()
	defer r.mu.Unlock()
	known, err := s.lookup(ctx, evs)
	if err != nil {
		return pending{}, err
	}
	r.next++
	p := pending{id: r.next}
	seen := map[flowKey]bool{}
	for i := range evs {
		k := keyOf(&evs[i])
		if !seen[k] {
			seen[k] = true
			p.keys = append(p.keys, k)
			for _, e := range r.m[k] {
				known[k] = upsert(known[k], e.inst)
			}
		}
		inst := settle(&evs[i], known[k], now)
		known[k] = upsert(known[k], inst)
		if r.m == nil {
			r.m = map[flowKey][]regEntry{}
		}
		r.m[k] = append(r.m[k], regEntry{p.id, inst})
	}
	return p, nil
}

// release drops a batch from the registry (its rows are in the table now,
// or it failed and will be retried).
func (s *Store) release(p pending) {
	r := &s.ident
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range p.keys {
		es := r.m[k][:0]
		for _, e := range r.m[k] {
			if e.batch != p.id {
				es = append(es, e)
			}
		}
		if len(es) == 0 {
			delete(r.m, k)
		} else {
			r.m[k] = es
		}
	}
}

// upsert adds inst to a key's instances, merging it into the one with its
// start (an end, once known, stays).
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

// settle rewrites e's start (and, for a retried DESTROY without kernel
// timestamps, its end) to its instance's and returns the instance as e
// leaves it.
func settle(e *flowlog.Event, is []instance, now time.Time) instance {
	tol := startTolerance.Milliseconds()
	var best *instance
	better := func(c *instance, dist int64, open bool) {
		if best == nil {
			best = c
			return
		}
		bOpen := best.end == 0
		if open != bOpen {
			if open {
				best = c
			}
			return
		}
		if dist < absMS(best.start-e.Start.UnixMilli()) {
			best = c
		}
	}
	switch {
	case e.Type == flowlog.EventStart:
		s := e.Start.UnixMilli()
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
	default:
		s := e.Start.UnixMilli()
		for i := range is {
			c := &is[i]
			if d := absMS(c.start - s); d <= tol {
				better(c, d, c.end == 0)
			}
		}
	}
	if best != nil {
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

// lookup returns the stored instances of the batch's keys: one query over
// the day partitions the batch's starts (± startTolerance) fall in, or every
// partition when a DESTROY has no start.
func (s *Store) lookup(ctx context.Context, evs []flowlog.Event) (map[flowKey][]instance, error) {
	days := map[string]bool{}
	all := false
	var keys rowBinary
	seen := map[flowKey]bool{}
	for i := range evs {
		e := &evs[i]
		if e.Start.IsZero() {
			all = true
		} else {
			for _, t := range []time.Time{e.Start.Add(-startTolerance), e.Start.Add(startTolerance)} {
				days[t.UTC().Format("20060102")] = true
			}
		}
		if k := keyOf(e); !seen[k] {
			seen[k] = true
			keys.str(k.network)
			keys.str(k.host)
			keys.str(k.id)
		}
	}
	if err := s.eng.Exec(ctx, "TRUNCATE TABLE "+s.ident.table); err != nil {
		return nil, fmt.Errorf("flow lookup: %w", err)
	}
	if err := s.eng.InsertRowBinary(ctx, s.ident.table, "network_id, host_id, flow_id", keys.b); err != nil {
		return nil, fmt.Errorf("flow lookup: %w", err)
	}
	c := []string{"(network_id, host_id, flow_id) IN (SELECT network_id, host_id, flow_id FROM " + s.ident.table + ")"}
	if !all {
		ds := make([]string, 0, len(days))
		for d := range days {
			ds = append(ds, "'"+d+"'")
		}
		sort.Strings(ds)
		c = append(c, "_partition_id IN ("+strings.Join(ds, ", ")+")")
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
	q := fmt.Sprintf("SELECT network_id, host_id, flow_id, toUnixTimestamp64Milli(start_ts) AS s, "+
		"toUnixTimestamp64Milli(end_ts) AS e, toUInt8(event_type = 'destroy') AS d, end_approx FROM %s.flows %s", s.db, whereOf(c))
	if err := s.queryRows(ctx, q, &rows); err != nil {
		return nil, fmt.Errorf("flow lookup: %w", err)
	}
	out := map[flowKey][]instance{}
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

