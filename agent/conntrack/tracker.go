package conntrack

import (
	"net/netip"
	"time"

	"github.com/flowlog/flowlog"
)

// flowKey names one conntrack entry while it lives. The id alone would do
// for entries alive at the same time; the tuple guards against the kernel
// handing the same id to a later entry. No pointers, so a large open set
// costs the garbage collector nothing to scan.
type flowKey struct {
	id       uint32
	zone     uint16
	proto    uint8
	icmpType uint8
	icmpCode uint8
	src, dst [16]byte
	sport    uint16
	dport    uint16
}

func keyOf(f *Flow) flowKey {
	return flowKey{
		id: f.ID, zone: f.Zone, proto: f.Proto, icmpType: f.ICMPType, icmpCode: f.ICMPCode,
		src: f.Src.As16(), dst: f.Dst.As16(), sport: f.SrcPort, dport: f.DstPort,
	}
}

// openFlow is what the source remembers about a flow between New and
// Destroy, and what the state file keeps of it across restarts.
type openFlow struct {
	start int64 // Unix ns, exactly as emitted in New
	// lastReport is when the flow was last announced (New or update), Unix
	// ns: the next active-timeout update is due from it.
	lastReport int64
	// counters are the last known orig bytes, orig packets, reply bytes,
	// reply packets (from a dump), for a Destroy the kernel never sent.
	counters [4]uint64
	status   uint32
	// kernelStart: start is the kernel's timestamp, not our clock.
	kernelStart bool
	// fromDump: announced by a resync, so a NEW event for it still queued
	// in the socket is a duplicate.
	fromDump bool
	// saved: the state file holds it.
	saved bool
}

// flow rebuilds the Destroy of an entry that vanished without one, with
// the last counters known.
func (k flowKey) flow(o openFlow, end time.Time) Flow {
	return Flow{
		Kind: Destroy, ID: k.id, Proto: k.proto, Zone: k.zone,
		Src: netip.AddrFrom16(k.src).Unmap(), Dst: netip.AddrFrom16(k.dst).Unmap(),
		SrcPort: k.sport, DstPort: k.dport, ICMPType: k.icmpType, ICMPCode: k.icmpCode,
		Start: time.Unix(0, o.start), End: end, Status: o.status,
		OrigBytes: o.counters[0], OrigPackets: o.counters[1], ReplyBytes: o.counters[2], ReplyPackets: o.counters[3],
	}
}

func countersOf(f *Flow) [4]uint64 {
	return [4]uint64{f.OrigBytes, f.OrigPackets, f.ReplyBytes, f.ReplyPackets}
}

// wall drops the monotonic reading and normalises the location, as the
// kernel's timestamps come: the Start of a New and of its Destroy are then
// equal with ==, not only with Equal.
func wall(t time.Time) time.Time { return time.Unix(0, t.UnixNano()) }

// tracker holds the open set. It is not safe for concurrent use: only the
// goroutine in Run touches it.
type tracker struct {
	open map[flowKey]openFlow
	now  func() time.Time
	// lost is called for every Destroy the tracker makes up because the
	// kernel's was never seen (ended unobserved: last known counters).
	lost func(Flow)
	// state persists open; nil: not persisted. saved counts the flows of
	// open it holds.
	state *stateLog
	saved int
	// activeTimeout: a resync emits an Update for every open flow last
	// reported this long ago (0: never); dueSlack is half the period of
	// resyncs, so that the update goes out at the resync nearest its due
	// time rather than always at the one after.
	activeTimeout, dueSlack time.Duration
}

// set stores a flow's state in the open set and the state file.
func (t *tracker) set(k flowKey, o openFlow) {
	if t.state != nil {
		was := o.saved
		o.saved = t.state.put(k, o, t.saved)
		if o.saved && !was {
			t.saved++
		}
	}
	t.open[k] = o
}

// remove forgets a flow, in the state file too.
func (t *tracker) remove(k flowKey) {
	o, ok := t.open[k]
	if !ok {
		return
	}
	delete(t.open, k)
	if o.saved && t.state != nil {
		t.state.del(k)
		t.saved--
	}
}

// sync writes out the state file's buffered changes.
func (t *tracker) sync() {
	if t.state != nil {
		t.state.sync(t.open, t.saved)
	}
}

func newTracker() *tracker {
	return &tracker{open: make(map[flowKey]openFlow), now: time.Now, lost: func(Flow) {}}
}

// onNew records a NEW event and emits it, unless a resync announced it
// already; f.Start is the kernel's timestamp or zero.
func (t *tracker) onNew(f Flow, emit func(Flow) error) error {
	f.Kind = New
	kernelStart := !f.Start.IsZero()
	if !kernelStart {
		// This kernel's NEW events carry no CTA_TIMESTAMP (only dumps and
		// DESTROY do), so the start is when we saw it; the open set keeps
		// it so that the Destroy repeats it.
		f.Start = t.now()
	}
	f.Start = wall(f.Start)
	k := keyOf(&f)
	if o, ok := t.open[k]; ok {
		if o.fromDump && (!kernelStart || !o.kernelStart || o.start == f.Start.UnixNano()) {
			// A resync already announced it; this is its NEW, read late.
			o.fromDump = false
			t.open[k] = o
			return nil
		}
		// Same id and tuple again: the earlier entry's DESTROY was lost.
		t.remove(k)
		if err := t.emitLost(k.flow(o, time.Time{}), f.Start, emit); err != nil {
			return err
		}
	}
	// A NEW's counters are zero by contract (ours: a New announces the
	// flow, updates and the Destroy carry counters).
	f.OrigBytes, f.OrigPackets, f.ReplyBytes, f.ReplyPackets = 0, 0, 0, 0
	t.set(k, openFlow{start: f.Start.UnixNano(), lastReport: wall(t.now()).UnixNano(), status: f.Status, kernelStart: kernelStart})
	return emit(f)
}

// onDestroy completes a DESTROY event (f.Start and f.End are the kernel's
// or zero) and forgets the flow.
func (t *tracker) onDestroy(f Flow, emit func(Flow) error) error {
	f.Kind = Destroy
	if f.End.IsZero() {
		f.End = wall(t.now())
	}
	k := keyOf(&f)
	if o, ok := t.open[k]; ok {
		f.Start = time.Unix(0, o.start)
		t.remove(k)
	} else if f.Start.IsZero() {
		// Began before we listened and before timestamps were on: nothing
		// better to say than "now", which makes it a zero-length flow.
		f.Start = f.End
	}
	if f.End.Before(f.Start) {
		// A start from our clock can be later than the kernel's stop when
		// the NEW was read late.
		f.End = f.Start
	}
	return emit(f)
}

// reconcile compares the open set with a dump of the kernel's table (Start
// = kernel timestamp or zero). It returns the dumped flows we never saw (to
// announce as New; Start still zero where the kernel had none), the open
// flows absent from the dump (as Destroys with the last counters known, End
// unset) and the open flows due for an active-timeout update (as Updates
// with the dump's counters). An entry whose id and tuple match an open flow
// but that started later is a new incarnation: it is in the first two
// lists. reconcile does not change the open set.
func (t *tracker) reconcile(dump []Flow, now time.Time) (starts, gone, due []Flow) {
	seen := make(map[flowKey]struct{}, len(dump))
	for _, f := range dump {
		k := keyOf(&f)
		if o, ok := t.open[k]; ok && !laterIncarnation(o, f.Start) {
			seen[k] = struct{}{}
			if t.due(o, now) {
				u := f
				u.Kind, u.Start = Update, time.Unix(0, o.start)
				due = append(due, u)
			}
			continue
		}
		f.Kind = New
		starts = append(starts, f)
	}
	for k, o := range t.open {
		if _, ok := seen[k]; !ok {
			gone = append(gone, k.flow(o, time.Time{}))
		}
	}
	return starts, gone, due
}

// due reports whether an open flow's next active-timeout update is due by
// now (give or take dueSlack).
func (t *tracker) due(o openFlow, now time.Time) bool {
	return t.activeTimeout > 0 && now.Add(t.dueSlack).Sub(time.Unix(0, o.lastReport)) >= t.activeTimeout
}

// laterIncarnation reports whether a dumped entry that matches an open one
// by id and tuple started after it.
func laterIncarnation(o openFlow, dumpStart time.Time) bool {
	if dumpStart.IsZero() {
		return false
	}
	if o.kernelStart {
		return dumpStart.UnixNano() != o.start
	}
	// Our start is when we read the NEW, after the kernel's start of that
	// same entry; a kernel start after it belongs to a later entry.
	return dumpStart.UnixNano() > o.start
}

// resync applies a dump to the open set: it announces the flows we missed,
// sends the updates that are due, lets drain read what the socket still
// holds (DESTROY events of flows that ended while we were dumping, and the
// dump itself reaps expired entries), and only then declares the flows
// still missing as destroyed, with the last counters known.
func (t *tracker) resync(dump []Flow, drain func() error, emit func(Flow) error) (n resyncCounts, err error) {
	now := wall(t.now())
	st, gone, due := t.reconcile(dump, now)
	replaced := make(map[flowKey]bool, len(st))
	for i := range st {
		replaced[keyOf(&st[i])] = true
	}
	var later []Flow
	for _, g := range gone {
		if !replaced[keyOf(&g)] {
			later = append(later, g)
			continue
		}
		// The old incarnation must end before the new one starts.
		if t.forget(g) {
			if err := t.emitLost(g, now, emit); err != nil {
				return n, err
			}
			n.destroys++
		}
	}
	for _, f := range st {
		kernelStart := !f.Start.IsZero()
		if !kernelStart {
			f.Start = now
		}
		f.Start = wall(f.Start)
		// Announced late, with the counters so far.
		t.set(keyOf(&f), openFlow{start: f.Start.UnixNano(), lastReport: now.UnixNano(), counters: countersOf(&f),
			status: f.Status, kernelStart: kernelStart, fromDump: true})
		if err := emit(f); err != nil {
			return n, err
		}
		n.starts++
	}
	for _, u := range due {
		if err := emit(u); err != nil {
			return n, err
		}
		// Only counters that went out: a Destroy made up from them never
		// reports more than the collector was told.
		k := keyOf(&u)
		o := t.open[k]
		o.counters, o.status, o.lastReport = countersOf(&u), u.Status, now.UnixNano()
		t.set(k, o)
		n.updates++
	}
	if err := drain(); err != nil {
		return n, err
	}
	now = wall(t.now())
	for _, g := range later {
		if t.forget(g) {
			if err := t.emitLost(g, now, emit); err != nil {
				return n, err
			}
			n.destroys++
		}
	}
	return n, nil
}

// resyncCounts is what one resync emitted.
type resyncCounts struct{ starts, updates, destroys int }

// emitLost emits the made-up Destroy of a flow found gone: it ended
// unobserved, now at the latest.
func (t *tracker) emitLost(g Flow, now time.Time, emit func(Flow) error) error {
	g.End = now
	if g.End.Before(g.Start) {
		g.End = g.Start
	}
	g.Status |= flowlog.StatusEndedUnobserved
	t.lost(g)
	return emit(g)
}

// forget drops a flow absent from the dump if it is still the same one
// (its Destroy may have been read since) and reports whether it did.
func (t *tracker) forget(g Flow) bool {
	k := keyOf(&g)
	o, ok := t.open[k]
	if !ok || o.start != g.Start.UnixNano() {
		return false
	}
	t.remove(k)
	return true
}

// reopen puts back a flow whose Destroy was emitted but never delivered
// (the pipeline dropped it: full spool), so that the next resync, finding
// it gone, closes it again, with the Destroy's counters. A flow tracked
// under the same key meanwhile wins.
func (t *tracker) reopen(f Flow) {
	k := keyOf(&f)
	if _, ok := t.open[k]; ok {
		return
	}
	t.set(k, openFlow{start: wall(f.Start).UnixNano(), lastReport: wall(t.now()).UnixNano(), counters: countersOf(&f),
		status: f.Status, kernelStart: true})
}
