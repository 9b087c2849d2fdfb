package conntrack

import (
	"net/netip"
	"testing"
	"time"

	ct "github.com/ti-mo/conntrack"

	"github.com/flowlog/flowlog"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// fakeClock returns t0, t0+1ms, t0+2ms, ...
func fakeClock() func() time.Time {
	n := 0
	return func() time.Time { n++; return t0.Add(time.Duration(n) * time.Millisecond) }
}

func testTracker() (*tracker, *[]Flow, func(Flow) error) {
	tr := newTracker()
	tr.now = fakeClock()
	var got []Flow
	return tr, &got, func(f Flow) error { got = append(got, f); return nil }
}

func tcp(id uint32, sport uint16) Flow {
	return Flow{ID: id, Proto: protoTCP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		SrcPort: sport, DstPort: 80}
}

func TestNewDestroyKeepsStart(t *testing.T) {
	tr, got, emit := testTracker()
	n := tcp(7, 1000)
	if err := tr.onNew(n, emit); err != nil {
		t.Fatal(err)
	}
	d := tcp(7, 1000)
	d.Start = t0.Add(-time.Second) // the kernel's, earlier than when we read the NEW
	d.End = t0                     // kernel stop before our start: must be clamped
	d.OrigBytes = 10
	if err := tr.onDestroy(d, emit); err != nil {
		t.Fatal(err)
	}
	if len(*got) != 2 {
		t.Fatalf("got %d flows", len(*got))
	}
	nw, ds := (*got)[0], (*got)[1]
	if nw.Start != ds.Start || nw.Start.IsZero() {
		t.Fatalf("start differs: new %v destroy %v", nw.Start, ds.Start)
	}
	if ds.End.Before(ds.Start) || ds.OrigBytes != 10 {
		t.Fatalf("bad destroy %+v", ds)
	}
	if len(tr.open) != 0 {
		t.Fatalf("open set not emptied: %v", tr.open)
	}
}

func TestKernelStartsKept(t *testing.T) {
	tr, got, emit := testTracker()
	n := tcp(7, 1000)
	n.Start = t0
	_ = tr.onNew(n, emit)
	if !(*got)[0].Start.Equal(t0) {
		t.Fatalf("kernel start replaced: %v", (*got)[0].Start)
	}
	// Destroy of a flow never seen: the kernel's start, or End when unknown.
	d := tcp(8, 1001)
	d.Start, d.End = t0, t0.Add(time.Second)
	_ = tr.onDestroy(d, emit)
	d = tcp(9, 1002)
	_ = tr.onDestroy(d, emit)
	if !(*got)[1].Start.Equal(t0) || (*got)[2].Start.IsZero() || !(*got)[2].Start.Equal((*got)[2].End) {
		t.Fatalf("unseen destroys: %+v %+v", (*got)[1], (*got)[2])
	}
}

func TestReconcile(t *testing.T) {
	tr, _, emit := testTracker()
	a, b, c := tcp(1, 1001), tcp(2, 1002), tcp(3, 1003)
	a.Start, b.Start = t0, t0
	_ = tr.onNew(a, emit)
	_ = tr.onNew(b, emit)
	c.Start = t0.Add(time.Second)
	starts, gone, _ := tr.reconcile([]Flow{b, c}, t0)
	if len(starts) != 1 || starts[0].ID != 3 || starts[0].Kind != New {
		t.Fatalf("starts %+v", starts)
	}
	if len(gone) != 1 || gone[0].ID != 1 || gone[0].Kind != Destroy || !gone[0].Start.Equal(t0) ||
		gone[0].Src != a.Src || gone[0].DstPort != 80 {
		t.Fatalf("gone %+v", gone)
	}
	if len(tr.open) != 2 {
		t.Fatal("reconcile changed the open set")
	}
}

func TestReconcileLaterIncarnation(t *testing.T) {
	tr, _, emit := testTracker()
	a := tcp(1, 1001) // no kernel start: our clock, t0+1ms
	_ = tr.onNew(a, emit)
	same := tcp(1, 1001)
	same.Start = t0 // kernel start before we read the NEW: same entry
	if s, g, _ := tr.reconcile([]Flow{same}, t0); len(s)+len(g) != 0 {
		t.Fatalf("same entry seen as new: %v %v", s, g)
	}
	later := tcp(1, 1001)
	later.Start = t0.Add(time.Hour)
	if s, g, _ := tr.reconcile([]Flow{later}, t0); len(s) != 1 || len(g) != 1 {
		t.Fatalf("later entry not replaced: %v %v", s, g)
	}
}

func TestResync(t *testing.T) {
	tr, got, emit := testTracker()
	gone, ends, stays, replaced := tcp(1, 1001), tcp(2, 1002), tcp(3, 1003), tcp(4, 1004)
	for _, f := range []*Flow{&gone, &ends, &stays, &replaced} {
		f.Start = t0
		_ = tr.onNew(*f, emit)
	}
	var lost []Flow
	tr.lost = func(f Flow) { lost = append(lost, f) }
	missed, again := tcp(5, 1005), replaced
	missed.Start = t0.Add(time.Second)
	again.Start = t0.Add(2 * time.Second)
	*got = nil

	// ends is absent from the dump, but its DESTROY is still in the
	// socket; missed's NEW too.
	drain := func() error {
		d := ends
		d.End = t0.Add(3 * time.Second)
		d.OrigBytes = 99
		if err := tr.onDestroy(d, emit); err != nil {
			return err
		}
		return tr.onNew(missed, emit)
	}
	n, err := tr.resync([]Flow{stays, missed, again}, drain, emit)
	if err != nil {
		t.Fatal(err)
	}
	if n.starts != 2 || n.destroys != 2 || n.updates != 0 || len(lost) != 2 {
		t.Fatalf("resync %+v lost %d", n, len(lost))
	}
	// Order: replaced ends, then starts, then the drain, then the rest.
	want := []struct {
		kind Kind
		id   uint32
	}{{Destroy, 4}, {New, 5}, {New, 4}, {Destroy, 2}, {Destroy, 1}}
	if len(*got) != len(want) {
		t.Fatalf("emitted %+v", *got)
	}
	for i, w := range want {
		g := (*got)[i]
		if g.Kind != w.kind || g.ID != w.id {
			t.Fatalf("emit %d: %v %d, want %v %d", i, g.Kind, g.ID, w.kind, w.id)
		}
	}
	if g := (*got)[3]; g.OrigBytes != 99 {
		t.Fatalf("real destroy lost its counters: %+v", g)
	}
	if g := (*got)[4]; !g.Start.Equal(t0) || g.End.IsZero() || g.OrigBytes != 0 || g.Status&flowlog.StatusEndedUnobserved == 0 {
		t.Fatalf("made-up destroy %+v", g)
	}
	if g := (*got)[2]; !g.Start.Equal(again.Start) {
		t.Fatalf("new incarnation start %v", g.Start)
	}
	if len(tr.open) != 3 { // stays, missed, again
		t.Fatalf("open %d", len(tr.open))
	}
}

func TestNewOverOpenKey(t *testing.T) {
	tr, got, emit := testTracker()
	var lost int
	tr.lost = func(Flow) { lost++ }
	a := tcp(1, 1001)
	_ = tr.onNew(a, emit)
	_ = tr.onNew(a, emit) // the first one's DESTROY never came
	if lost != 1 || len(*got) != 3 || (*got)[1].Kind != Destroy || (*got)[2].Kind != New {
		t.Fatalf("lost %d, emitted %+v", lost, *got)
	}
}

func TestFromKernel(t *testing.T) {
	var f ct.Flow
	f.ID = 42
	f.TupleOrig.IP.SourceAddress = netip.MustParseAddr("::ffff:10.1.2.3")
	f.TupleOrig.IP.DestinationAddress = netip.MustParseAddr("10.1.2.4")
	f.TupleOrig.Proto = ct.ProtoTuple{Protocol: protoICMP, ICMPType: 8, ICMPCode: 0, ICMPID: 77}
	f.Timestamp.Start = time.Unix(0, 0) // an absent start as the library can report it
	f.CountersOrig.Bytes = 5
	g := fromKernel(New, &f)
	if !g.Src.Is4() || g.ICMPType != 8 || g.SrcPort != 0 || !g.Start.IsZero() || g.OrigBytes != 5 { // a dump entry's counters so far
		t.Fatalf("new %+v", g)
	}
	f.TupleOrig.Proto = ct.ProtoTuple{Protocol: protoSCTP, SourcePort: 1, DestinationPort: 2}
	f.Timestamp = ct.Timestamp{Start: t0, Stop: t0.Add(time.Second)}
	g = fromKernel(Destroy, &f)
	if g.SrcPort != 1 || g.DstPort != 2 || !g.Start.Equal(t0) || !g.End.Equal(t0.Add(time.Second)) || g.OrigBytes != 5 {
		t.Fatalf("destroy %+v", g)
	}
}
