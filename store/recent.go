package store

import (
	"cmp"
	"slices"
)

// The recent cache: the instances of the flows this Store committed lately,
// by key fingerprint, so that a DESTROY finds its START (and a retry its
// first try) without asking the table (identity.go).
//
// It must find every key added within the latest recentFlows/2 adds (and
// those of the latest "generation" of recentFlows/2 adds), as two
// generations of maps did before it: a key it lost sends its batch to a
// table lookup (0.05 to 1.2 s, measured), holding the registry's lock the
// other insert writers need. With 2^18 (2 to 4 s at the 100-stream
// bench's 70,000 flows a second) the DESTROYs of flows a little older than
// that missed it by the thousand.
//
// Why not two maps any more: under the bench the two generations' lookups
// (a new flow's START misses both) and inserts took a tenth of the
// collector's CPU, nearly all of it waiting for memory: each access is a
// random read of a 35 MB map. Here a key lives in one set of recentWays
// slots, its fingerprints in one cache line, so a lookup is one random
// read (two for a hit), and the generations are a tag per slot: a slot
// whose tag is older than the previous generation is free, so turning a
// generation over costs nothing. A set all of whose slots are live and
// that must take one more key moves its oldest into spill, a small map
// read only when a set has no match: with twice as many slots as live
// keys, about 2% of sets overflow at the end of a generation.
//
// Memory: recentFlows*2 slots of 32 bytes (64 MiB, allocated at the first
// add), nothing for the garbage collector to scan.
const (
	recentFlows = 1 << 20
	recentWays  = 8
	recentSets  = 2 * recentFlows / recentWays
	recentGen   = recentFlows / 2 // adds per generation
)

type recent struct {
	sets  []recentSet // recentSets; nil until the first add
	adds  uint64
	tag   uint32                // the current generation's tag (1, 2, ...); 0 marks a free slot
	spill map[recentKey]spilled // live entries pushed out of a full set
	two   [2]map[flowFP]packed  // second instances, by generation: [0] current, [1] previous
}

// recentSet is one set, field by field so that its fingerprints share a
// cache line.
type recentSet struct {
	a   [recentWays]uint64
	b   [recentWays]uint32
	tag [recentWays]uint32
	p   [recentWays]packed
}

// recentKey is a fingerprint as a slot keeps it: 96 bits.
type recentKey struct {
	a uint64
	b uint32
}

func shortKey(k flowFP) recentKey { return recentKey{k.a, uint32(k.b)} }

type spilled struct {
	p   packed
	tag uint32
}

// packed is an instance in 16 bytes: end's two top bits say whether it is
// approximate and whether the key has a second instance (times are
// milliseconds below 2^48, flowlog.MaxVersion).
type packed struct{ start, end int64 }

const (
	packedApprox = 1 << 62
	packedSecond = 1 << 61
	packedFlags  = packedApprox | packedSecond
)

func pack(in instance, second bool) packed {
	p := packed{start: in.start, end: in.end}
	if in.approx {
		p.end |= packedApprox
	}
	if second {
		p.end |= packedSecond
	}
	return p
}

func (p packed) instance() instance {
	return instance{start: p.start, end: p.end &^ packedFlags, approx: p.end&packedApprox != 0}
}

// live says whether a slot's tag is of the current or the previous
// generation.
func (c *recent) live(tag uint32) bool { return tag != 0 && tag+1 >= c.tag }

func (c *recent) set(k flowFP) *recentSet { return &c.sets[k.a&(recentSets-1)] }

// get appends k's instances to dst; false: none known.
func (c *recent) get(k flowFP, dst *[]instance) bool {
	if c.sets == nil {
		return false
	}
	s, short := c.set(k), shortKey(k)
	for i := range s.a {
		if s.a[i] == short.a && s.b[i] == short.b && c.live(s.tag[i]) {
			return c.give(k, s.p[i], dst)
		}
	}
	if sp, ok := c.spill[short]; ok && c.live(sp.tag) {
		return c.give(k, sp.p, dst)
	}
	return false
}

func (c *recent) give(k flowFP, p packed, dst *[]instance) bool {
	*dst = append(*dst, p.instance())
	if p.end&packedSecond != 0 {
		for _, m := range c.two {
			if q, ok := m[k]; ok {
				*dst = append(*dst, q.instance())
				break
			}
		}
	}
	return true
}

// add records a batch's instances of k. They replace those of earlier
// batches: a DESTROY's instance is its START's, ended; a flow_id's older
// instance, should there be one, is then left to the table, as are all but
// the latest two a batch saw.
func (c *recent) add(k flowFP, is []instance) {
	if c.sets == nil {
		c.sets, c.tag = make([]recentSet, recentSets), 1
	}
	if c.adds > 0 && c.adds%recentGen == 0 {
		c.turnOver()
	}
	c.adds++
	if len(is) > 2 {
		is = slices.SortedFunc(slices.Values(is), func(x, y instance) int { return cmp.Compare(x.start, y.start) })
		is = is[len(is)-2:]
	}
	p := pack(is[0], len(is) == 2)
	if len(is) == 2 {
		if c.two[0] == nil {
			c.two[0] = map[flowFP]packed{}
		}
		c.two[0][k] = pack(is[1], false)
	} else if len(c.two[0]) > 0 {
		delete(c.two[0], k)
	}
	s, short := c.set(k), shortKey(k)
	i := c.slotFor(s, short)
	s.a[i], s.b[i], s.tag[i], s.p[i] = short.a, short.b, c.tag, p
}

// slotFor picks k's slot in s: its own, else a free one, else the oldest,
// whose entry moves to spill.
func (c *recent) slotFor(s *recentSet, k recentKey) int {
	free, oldest := -1, 0
	for i := range s.a {
		switch {
		case s.a[i] == k.a && s.b[i] == k.b:
			return i
		case free < 0 && !c.live(s.tag[i]):
			free = i
		case s.tag[i] < s.tag[oldest]:
			oldest = i
		}
	}
	if free >= 0 {
		return free
	}
	if c.spill == nil {
		c.spill = map[recentKey]spilled{}
	}
	c.spill[recentKey{s.a[oldest], s.b[oldest]}] = spilled{s.p[oldest], s.tag[oldest]}
	return oldest
}

// turnOver starts a generation: the one before the previous is forgotten.
func (c *recent) turnOver() {
	c.tag++
	c.two[1], c.two[0] = c.two[0], nil
	for k, sp := range c.spill {
		if !c.live(sp.tag) {
			delete(c.spill, k)
		}
	}
}

// prefetch reads the first word of each key's set, so that the lookups
// that follow find it in the CPU's cache: these loads are independent, so
// the CPU overlaps their misses, where a lookup's loads depend on each
// other and wait one miss at a time (a random read of the 64 MiB table is
// a miss nearly always).
func (c *recent) prefetch(ks []flowFP) {
	if c.sets == nil {
		return
	}
	var sink uint64
	for _, k := range ks {
		sink += c.set(k).a[0]
	}
	prefetchSink = sink
}

// prefetchAhead is how many keys' sets are prefetched at a time: enough
// for the CPU to overlap their misses, few enough to stay cached until used.
const prefetchAhead = 256

// prefetchSink keeps prefetch's loads from being optimized away.
var prefetchSink uint64
