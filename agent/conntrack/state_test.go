package conntrack

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// stepClock is a clock tests move by hand.
type stepClock struct{ t time.Time }

func (c *stepClock) now() time.Time      { return c.t }
func (c *stepClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newStepClock() *stepClock           { return &stepClock{t: t0} }
func discardLog() *slog.Logger           { return slog.New(slog.DiscardHandler) }
func collect(got *[]Flow) func(Flow) error {
	return func(f Flow) error { *got = append(*got, f); return nil }
}
func withCounters(f Flow, ob, rb uint64) Flow {
	f.OrigBytes, f.ReplyBytes, f.OrigPackets, f.ReplyPackets = ob, rb, 1, 1
	return f
}

// persistedTracker is a tracker on the state file path, as Source.Open
// builds it: the set loaded from the file, the file rewritten.
func persistedTracker(t *testing.T, path string, clk *stepClock) (*tracker, StateLoad) {
	t.Helper()
	open, res, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStateLog(path, 0, open, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	tr := newTracker()
	tr.now, tr.open, tr.state, tr.saved = clk.now, open, st, len(open)
	return tr, res
}

// An agent restart on the same state file: flows that ended meanwhile are
// closed (ended unobserved, last counters known, original start), flows
// still open keep their start (so their flow_id), also without a kernel
// timestamp, and nothing is announced twice.
func TestStateAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows")
	clk := newStepClock()
	tr, _ := persistedTracker(t, path, clk)
	tr.activeTimeout = time.Minute
	var got []Flow
	emit := collect(&got)
	stamped, unstamped, ends, ended := tcp(1, 1001), tcp(2, 1002), tcp(3, 1003), tcp(4, 1004)
	stamped.Start = t0.Add(-time.Hour)
	_ = tr.onNew(stamped, emit)
	_ = tr.onNew(ends, emit)
	_ = tr.onNew(ended, emit)
	clk.add(time.Second)
	// Found by the first dump, no kernel timestamp: our clock's start.
	if _, err := tr.resync([]Flow{stamped, unstamped, ends, ended}, func() error { return nil }, emit); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute) // an update for each, with counters
	if _, err := tr.resync([]Flow{withCounters(stamped, 100, 10), withCounters(unstamped, 200, 20),
		withCounters(ends, 300, 30), withCounters(ended, 400, 40)}, func() error { return nil }, emit); err != nil {
		t.Fatal(err)
	}
	d := withCounters(ended, 500, 50) // its DESTROY was seen
	_ = tr.onDestroy(d, emit)
	tr.sync()
	starts := map[uint32]time.Time{}
	for _, f := range got {
		if f.Kind == New {
			starts[f.ID] = f.Start
		}
	}
	// kill -9: the tracker is dropped; the file is all that remains.

	clk.add(time.Hour)
	tr2, res := persistedTracker(t, path, clk)
	if res.Flows != 3 || res.Corrupt != 0 {
		t.Fatalf("restored %+v, want 3 flows", res)
	}
	got = nil
	unstampedNow := unstamped // the kernel still has no start for it
	if _, err := tr2.resync([]Flow{stamped, unstampedNow}, func() error { return nil }, collect(&got)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("after restart emitted %+v, want only the Destroy of flow 3", got)
	}
	g := got[0]
	if g.Kind != Destroy || g.ID != 3 || g.Status&flowlog.StatusEndedUnobserved == 0 || g.OrigBytes != 300 || g.ReplyBytes != 30 ||
		!g.Start.Equal(starts[3]) || !g.End.Equal(clk.t) {
		t.Fatalf("ended-unobserved destroy %+v (start %v)", g, starts[3])
	}
	for _, f := range []Flow{stamped, unstamped} {
		o, ok := tr2.open[keyOf(&f)]
		if !ok || o.start != starts[f.ID].UnixNano() {
			t.Fatalf("flow %d: open %v, start %v, want %v", f.ID, ok, time.Unix(0, o.start), starts[f.ID])
		}
	}
	// Their DESTROY, read by the new run, repeats the start of the New.
	got = nil
	_ = tr2.onDestroy(unstamped, collect(&got))
	if !got[0].Start.Equal(starts[2]) {
		t.Fatalf("destroy start %v, new's %v", got[0].Start, starts[2])
	}
}

// Active timeout: a flow open longer than the timeout since its last
// report gets an Update with the dump's counters and its New's start,
// about once per timeout; a DESTROY still ends it.
func TestActiveTimeoutUpdates(t *testing.T) {
	clk := newStepClock()
	tr := newTracker()
	tr.now, tr.activeTimeout, tr.dueSlack = clk.now, 10*time.Second, 2500*time.Millisecond // resyncs every 5 s
	var got []Flow
	emit := collect(&got)
	f := tcp(1, 1001)
	_ = tr.onNew(f, emit)
	start := got[0].Start
	var updates []Flow
	for i := 1; i <= 12; i++ { // 60 s of resyncs every 5 s
		clk.add(5 * time.Second)
		got = nil
		if _, err := tr.resync([]Flow{withCounters(f, uint64(i)*1000, uint64(i)*10)}, func() error { return nil }, emit); err != nil {
			t.Fatal(err)
		}
		updates = append(updates, got...)
	}
	if len(updates) != 6 {
		t.Fatalf("%d updates in 60 s with a 10 s timeout: %+v", len(updates), updates)
	}
	var last uint64
	for _, u := range updates {
		if u.Kind != Update || !u.Start.Equal(start) || u.OrigBytes <= last {
			t.Fatalf("update %+v (start %v, previous bytes %d)", u, start, last)
		}
		last = u.OrigBytes
	}
	tr.activeTimeout = 0
	clk.add(time.Hour)
	got = nil
	_, _ = tr.resync([]Flow{f}, func() error { return nil }, emit)
	if len(got) != 0 {
		t.Fatalf("updates with the timeout off: %+v", got)
	}
}

// A DESTROY the pipeline could not deliver comes back, and the next resync
// closes the flow again with its counters.
func TestReopenUndelivered(t *testing.T) {
	tr, got, emit := testTracker()
	f := tcp(1, 1001)
	f.Start = t0
	_ = tr.onNew(f, emit)
	d := withCounters(f, 900, 90)
	_ = tr.onDestroy(d, emit)
	d = (*got)[1]
	tr.reopen(d)
	*got = nil
	if _, err := tr.resync(nil, func() error { return nil }, emit); err != nil {
		t.Fatal(err)
	}
	if len(*got) != 1 || (*got)[0].Kind != Destroy || (*got)[0].OrigBytes != 900 || !(*got)[0].Start.Equal(t0) ||
		(*got)[0].Status&flowlog.StatusEndedUnobserved == 0 {
		t.Fatalf("got %+v", *got)
	}
}

// The file holds at most max flows; the others are still tracked.
func TestStateBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows")
	clk := newStepClock()
	tr, _ := persistedTracker(t, path, clk)
	tr.state.max = 2
	var got []Flow
	for i := range 3 {
		_ = tr.onNew(tcp(uint32(i), uint16(1000+i)), collect(&got))
	}
	tr.sync()
	if len(tr.open) != 3 || tr.saved != 2 {
		t.Fatalf("open %d saved %d", len(tr.open), tr.saved)
	}
	open, _, _ := loadState(path)
	if len(open) != 2 {
		t.Fatalf("file holds %d flows", len(open))
	}
	_ = tr.onDestroy(tcp(0, 1000), collect(&got)) // room again
	_ = tr.onNew(tcp(9, 1009), collect(&got))
	tr.sync()
	if open, _, _ = loadState(path); len(open) != 2 || tr.saved != 2 {
		t.Fatalf("file holds %d flows, saved %d", len(open), tr.saved)
	}
}

// The journal is compacted once it outgrows the live set: its size stays
// bounded under churn, and what it says is unchanged.
func TestStateCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows")
	clk := newStepClock()
	tr, _ := persistedTracker(t, path, clk)
	keep := tcp(1, 1)
	_ = tr.onNew(keep, func(Flow) error { return nil })
	for i := range 20000 {
		f := tcp(uint32(i+10), uint16(i))
		_ = tr.onNew(f, func(Flow) error { return nil })
		_ = tr.onDestroy(f, func(Flow) error { return nil })
		tr.sync()
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if max := int64(len(stateMagic) + (2*1+4096+2)*recSize); fi.Size() > max {
		t.Fatalf("journal %d bytes after churn, want <= %d", fi.Size(), max)
	}
	open, _, _ := loadState(path)
	if len(open) != 1 {
		t.Fatalf("file holds %d flows, want 1", len(open))
	}
}

// Damage in the state file is reported (where and what), counted, and
// skipped: the good records are kept, a torn tail or a foreign file is
// ignored, and nothing fails.
func TestStateCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows")
	clk := newStepClock()
	tr, _ := persistedTracker(t, path, clk)
	for i := range 3 {
		_ = tr.onNew(tcp(uint32(i), uint16(1000+i)), func(Flow) error { return nil })
	}
	tr.sync()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := bytes.Clone(good)
	flip[len(stateMagic)+recSize+10] ^= 0xff // the second record
	for _, tc := range []struct {
		name    string
		data    []byte
		flows   int
		corrupt int
		msg     string
	}{
		{"intact", good, 3, 0, ""},
		{"flipped byte", flip, 2, 1, "record at offset 119: checksum mismatch"},
		{"torn tail", good[:len(good)-7], 2, 1, "torn record at offset 222"},
		{"foreign file", []byte("{\"not\": \"ours\"}\n" + strings.Repeat("x", 300)), 0, 1, "not a flowlog flow set"},
		{"empty", nil, 0, 1, "not a flowlog flow set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "flows")
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			var logBuf bytes.Buffer
			s := &Source{o: Options{StateFile: p}, log: slog.New(slog.NewTextHandler(&logBuf, nil)), tr: newTracker()}
			if err := s.openState(); err != nil {
				t.Fatalf("a damaged file must not fail: %v", err)
			}
			defer s.closeState()
			st := s.Stats()
			if len(s.tr.open) != tc.flows || st.StateRestored != uint64(tc.flows) || st.StateCorrupt != uint64(tc.corrupt) {
				t.Fatalf("open %d, stats %+v; want %d flows, %d corrupt", len(s.tr.open), st, tc.flows, tc.corrupt)
			}
			if tc.msg != "" && (!strings.Contains(logBuf.String(), tc.msg) || !strings.Contains(logBuf.String(), p) ||
				!strings.Contains(logBuf.String(), "level=WARN")) {
				t.Fatalf("log does not say %q about %s:\n%s", tc.msg, p, logBuf.String())
			}
			// Rewritten clean: the next load finds no damage.
			if _, res, err := loadState(p); err != nil || res.Corrupt != 0 || res.Flows != tc.flows {
				t.Fatalf("after rewrite: %+v, %v", res, err)
			}
		})
	}
}

func TestStateUnreadable(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := loadState(dir); err == nil || !strings.Contains(err.Error(), "state file") {
		t.Fatalf("reading a directory: %v", err)
	}
}

// BenchmarkStateChurn is the state file's cost per flow (New + Destroy,
// synced every 100 flows as after a batch of kernel events), against the
// tracker alone.
func BenchmarkStateChurn(b *testing.B) {
	for _, persisted := range []bool{false, true} {
		b.Run(map[bool]string{false: "memory", true: "persisted"}[persisted], func(b *testing.B) {
			tr := newTracker()
			tr.now = newStepClock().now
			if persisted {
				st, err := openStateLog(filepath.Join(b.TempDir(), "flows"), 0, tr.open, discardLog())
				if err != nil {
					b.Fatal(err)
				}
				defer st.close()
				tr.state = st
			}
			// 10k flows stay open throughout, as on a busy host.
			for i := range 10_000 {
				_ = tr.onNew(tcp(uint32(1_000_000+i), uint16(i)), func(Flow) error { return nil })
			}
			nop := func(Flow) error { return nil }
			b.ResetTimer()
			for i := range b.N {
				f := tcp(uint32(i), uint16(i))
				_ = tr.onNew(f, nop)
				_ = tr.onDestroy(f, nop)
				if i%100 == 99 {
					tr.sync()
				}
			}
		})
	}
}

// BenchmarkUpdatePass is one active-timeout pass over a dump of 100k open
// flows, every one due: reconcile, 100k Updates, their state records.
func BenchmarkUpdatePass(b *testing.B) {
	clk := newStepClock()
	tr := newTracker()
	tr.now, tr.activeTimeout = clk.now, time.Minute
	st, err := openStateLog(filepath.Join(b.TempDir(), "flows"), 0, tr.open, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	tr.state = st
	dump := make([]Flow, 100_000)
	for i := range dump {
		dump[i] = tcp(uint32(i), uint16(i))
		dump[i].Start = t0
		_ = tr.onNew(dump[i], func(Flow) error { return nil })
		dump[i] = withCounters(dump[i], 1000, 100)
	}
	tr.sync()
	nop := func(Flow) error { return nil }
	b.ResetTimer()
	for range b.N {
		clk.add(time.Minute)
		n, err := tr.resync(dump, func() error { return nil }, nop)
		if err != nil || n.updates != len(dump) {
			b.Fatalf("%+v %v", n, err)
		}
		tr.sync()
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, o := range []Options{{ActiveTimeout: -time.Second}, {ActiveTimeout: 10 * time.Millisecond},
		{ResyncInterval: -1}, {MaxStateFlows: -1}} {
		if _, err := Open(o); err == nil || !strings.Contains(err.Error(), "conntrack: ") {
			t.Errorf("Open(%+v): %v", o, err)
		}
	}
}

// FuzzLoadState: whatever the state file holds, loading it neither fails
// nor panics, and the rewritten file loads back clean with the same flows.
func FuzzLoadState(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed")
	st, err := openStateLog(seed, 0, map[flowKey]openFlow{}, discardLog())
	if err != nil {
		f.Fatal(err)
	}
	st.append(opPut, keyOf(new(tcp(1, 1))), openFlow{start: 5, counters: [4]uint64{1, 2, 3, 4}})
	st.append(opPut, keyOf(new(tcp(2, 2))), openFlow{start: 6})
	st.append(opDel, keyOf(new(tcp(1, 1))), openFlow{})
	if err := st.close(); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(seed)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte(stateMagic))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "flows")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		open, _, err := loadState(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := openStateLog(p, 0, open, discardLog())
		if err != nil {
			t.Fatal(err)
		}
		st.close()
		again, res, err := loadState(p)
		if err != nil || res.Corrupt != 0 || len(again) != len(open) {
			t.Fatalf("rewritten file: %d flows, %+v, %v; want %d clean", len(again), res, err, len(open))
		}
	})
}
