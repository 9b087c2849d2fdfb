package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/store"
)

// Recent times, so that every TTL keeps them and the rollups serve them.
var midnight = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)

func insert(t *testing.T, s *store.Store, evs ...flowlog.Event) {
	t.Helper()
	if err := s.Insert(context.Background(), &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
}

func allFlows(t *testing.T, s *store.Store, f flowlog.Filter) []flowlog.Flow {
	t.Helper()
	flows, err := s.Flows(context.Background(), f, flowlog.Page{PerPage: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return flows
}

func describe(flows []flowlog.Flow) string {
	out := ""
	for _, f := range flows {
		out += fmt.Sprintf("[%s start=%s active=%v stale=%v bytes=%d/%d end_approx=%v] ", f.FlowID,
			f.Start.Format("2006-01-02T15:04:05.000"), f.Active, f.Stale, f.BytesSent, f.BytesRecv, f.EndApprox)
	}
	return out
}

// bothPaths runs check on the raw flows, then on the rollups.
func bothPaths(t *testing.T, s *store.Store, check func(t *testing.T)) {
	store.NoClockSlack(s)
	for _, mode := range []string{"raw", "rollup"} {
		t.Run(mode, func(t *testing.T) {
			store.ForceRaw(s, mode == "raw")
			if mode == "rollup" {
				rollupOn(t, s)
			}
			check(t)
		})
	}
}

func totalsOf(t *testing.T, s *store.Store, f flowlog.Filter) flowlog.Totals {
	t.Helper()
	edges, err := s.Matrix(context.Background(), f, 100)
	if err != nil {
		t.Fatal(err)
	}
	var tot flowlog.Totals
	for _, e := range edges {
		tot.Bytes += e.Bytes
		tot.Packets += e.Packets
		tot.Flows += e.Flows
	}
	return tot
}

// A stock agent stamps the START with its clock and the DESTROY with the
// kernel's: 2 ms apart, here on either side of UTC midnight (two day
// partitions). One flow, finished, with the DESTROY's bytes.
// Through the Store that stored the START (its memory), and through a new
// one (a restart: the table).
func TestStartAndDestroyAcrossMidnightAreOneFlow(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) { testAcrossMidnight(t, restart) })
	}
}

func testAcrossMidnight(t *testing.T, restart bool) {
	s := open(t, store.Options{})
	st := ev("f1", flowlog.EventStart, midnight.Add(-time.Millisecond), 1)
	de := ev("f1", flowlog.EventDestroy, midnight.Add(time.Millisecond), 2)
	insert(t, s, st)
	if restart {
		s = open(t, store.Options{})
	}
	insert(t, s, de)
	flows := allFlows(t, s, flowlog.Filter{})
	if len(flows) != 1 || flows[0].Active || !flows[0].Start.Equal(st.Start) || flows[0].BytesSent != 1000 || flows[0].BytesRecv != 2000 {
		t.Fatalf("want one finished flow starting at the START's time with 1000/2000 bytes: %s", describe(flows))
	}
	bothPaths(t, s, func(t *testing.T) {
		if tot := totalsOf(t, s, flowlog.Filter{}); tot.Flows != 1 || tot.Bytes != 3000 {
			t.Fatalf("totals %+v, want 1 flow, 3000 bytes", tot)
		}
		if n, err := s.Active(context.Background(), flowlog.Filter{}); err != nil || n != 0 {
			t.Fatalf("active %d %v, want 0", n, err)
		}
	})
}

// The same pair in one batch, in two parallel batches (the collector's
// insert writers), and DESTROY first: always one flow.
func TestStartAndDestroyCollapseWhateverTheBatching(t *testing.T) {
	s := open(t, store.Options{})
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		st := ev(fmt.Sprint("p", i), flowlog.EventStart, midnight.Add(-time.Millisecond), 1)
		de := ev(fmt.Sprint("p", i), flowlog.EventDestroy, midnight.Add(time.Duration(i%5)*time.Millisecond), 2)
		switch i % 3 {
		case 0:
			insert(t, s, st, de)
		case 1:
			insert(t, s, de)
			insert(t, s, st)
		default:
			wg.Add(2)
			for _, e := range []flowlog.Event{st, de} {
				go func() {
					defer wg.Done()
					if err := s.Insert(context.Background(), &flowlog.Batch{Events: []flowlog.Event{e}}); err != nil {
						t.Error(err)
					}
				}()
			}
		}
	}
	wg.Wait()
	flows := allFlows(t, s, flowlog.Filter{})
	if len(flows) != n {
		t.Fatalf("%d flows, want %d: %s", len(flows), n, describe(flows))
	}
	for _, f := range flows {
		if f.Active || f.BytesSent != 1000 {
			t.Fatalf("not finished with its bytes: %s", describe([]flowlog.Flow{f}))
		}
	}
}

// A START with the version of the stored DESTROY, arriving after it (a
// replay), does not reopen the flow.
func TestDestroyWinsAVersionTie(t *testing.T) {
	s := open(t, store.Options{})
	st := ev("f1", flowlog.EventStart, t0, 7)
	de := ev("f1", flowlog.EventDestroy, t0, 7)
	insert(t, s, de)
	insert(t, s, st)
	insert(t, s, st, de, st)
	if err := store.Optimize(context.Background(), s, "flows"); err != nil {
		t.Fatal(err)
	}
	flows := allFlows(t, s, flowlog.Filter{})
	if len(flows) != 1 || flows[0].Active || flows[0].BytesSent != 1000 {
		t.Fatalf("want the DESTROY: %s", describe(flows))
	}
}

// The kernel reuses conntrack ids, which a stock agent's flow_id is a hash
// of: a START after its flow_id's flow ended is a new flow, both kept with
// their own counters, even when it starts within the start tolerance.
func TestReusedFlowIDIsANewFlow(t *testing.T) {
	s := open(t, store.Options{})
	a := ev("f1", flowlog.EventStart, t0, 1)
	ae := ev("f1", flowlog.EventDestroy, t0, 2)
	ae.End = t0.Add(500 * time.Millisecond)
	b := ev("f1", flowlog.EventStart, t0.Add(time.Second), 3)
	be := ev("f1", flowlog.EventDestroy, t0.Add(time.Second+time.Millisecond), 4)
	be.BytesSent, be.BytesRecv = 7000, 8000
	c := ev("f1", flowlog.EventStart, t0.Add(time.Hour), 5)
	insert(t, s, a)
	insert(t, s, ae)
	insert(t, s, b)
	s = open(t, store.Options{}) // a restart: b's DESTROY finds b in the table
	insert(t, s, be)
	insert(t, s, c)
	flows := allFlows(t, s, flowlog.Filter{})
	if len(flows) != 3 || !flows[0].Active || flows[1].Active || flows[1].BytesSent != 7000 || flows[2].Active || flows[2].BytesSent != 1000 ||
		!flows[1].Start.Equal(b.Start) || !flows[2].Start.Equal(a.Start) {
		t.Fatalf("want 3 flows (active, 7000 B, 1000 B): %s", describe(flows))
	}
	if n, err := s.Active(context.Background(), flowlog.Filter{}); err != nil || n != 1 {
		t.Fatalf("active %d %v, want 1", n, err)
	}
}

// A DESTROY without kernel timestamps (year 1 on the wire: Convert leaves
// Start zero and sets End to the receive time) closes its flow and keeps
// the START's start; a retry changes nothing; one with no START stands
// for a flow of its own.
func TestDestroyWithoutKernelTimestampsClosesItsFlow(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) { testNoKernelTimestamps(t, restart) })
	}
}

func testNoKernelTimestamps(t *testing.T, restart bool) {
	s := open(t, store.Options{})
	st := ev("f1", flowlog.EventStart, midnight.Add(-time.Hour), 1)
	de := ev("f1", flowlog.EventDestroy, time.Time{}, 2)
	de.End, de.EndApprox, de.HostName = midnight.Add(time.Hour), true, ""
	insert(t, s, st)
	if restart {
		s = open(t, store.Options{})
	}
	insert(t, s, de)
	if restart {
		s = open(t, store.Options{})
	}
	retry := de
	retry.End = de.End.Add(time.Minute) // received again, later
	insert(t, s, retry)
	orphan := ev("f2", flowlog.EventDestroy, time.Time{}, 2)
	orphan.End, orphan.EndApprox = midnight.Add(2*time.Hour), true
	insert(t, s, orphan)
	flows := allFlows(t, s, flowlog.Filter{})
	if len(flows) != 2 {
		t.Fatalf("want 2 flows: %s", describe(flows))
	}
	f2, f1 := flows[0], flows[1]
	if f1.FlowID != "f1" || f1.Active || !f1.Start.Equal(st.Start) || !f1.End.Equal(de.End) || !f1.EndApprox || f1.BytesSent != 1000 {
		t.Fatalf("f1: %s end %s", describe(flows), f1.End)
	}
	if f2.Active || !f2.Start.Equal(orphan.End) || !f2.EndApprox {
		t.Fatalf("f2: %s", describe(flows))
	}
	if n, err := s.Active(context.Background(), flowlog.Filter{}); err != nil || n != 0 {
		t.Fatalf("active %d %v, want 0", n, err)
	}
}

// Counters near 2^64 (ingest refuses them; rows stored before it did may
// hold them) never wrap a sum: totals saturate at 2^64-1.
func TestSumsNeverWrap(t *testing.T) {
	s := open(t, store.Options{})
	a := ev("f1", flowlog.EventDestroy, midnight.Add(time.Hour), 2)
	a.BytesSent, a.BytesRecv, a.PacketsSent, a.PacketsRecv = 1<<64-1, 21, 1<<64-1, 1
	b := ev("f2", flowlog.EventDestroy, midnight.Add(time.Hour), 2)
	b.BytesSent, b.BytesRecv = 1<<63, 1<<63
	insert(t, s, a, b)
	bothPaths(t, s, func(t *testing.T) {
		top, err := s.Top(context.Background(), flowlog.TopQuery{Side: flowlog.SideSrc})
		if err != nil || len(top) != 1 || top[0].Bytes != 1<<64-1 || top[0].Packets != 1<<64-1 || top[0].Flows != 2 {
			t.Fatalf("top %+v %v, want saturated bytes and packets", top, err)
		}
		pts, err := s.Series(context.Background(), flowlog.Filter{From: midnight, To: midnight.Add(24 * time.Hour)}, time.Hour)
		if err != nil || len(pts) != 1 || pts[0].Bytes != 1<<64-1 {
			t.Fatalf("series %+v %v", pts, err)
		}
	})
}

// A flow with no event for longer than StaleAfter (its DESTROY was lost) is
// stale: not active, not counted as active, selected by StateStale.
func TestStaleFlows(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := open(t, store.Options{StaleAfter: 6 * 24 * time.Hour, Now: clock})
	insert(t, s, ev("old", flowlog.EventStart, midnight, 1))
	mu.Lock()
	now = now.Add(6*24*time.Hour + time.Minute)
	mu.Unlock()
	insert(t, s, ev("new", flowlog.EventStart, midnight.Add(time.Hour), 1))
	flows := allFlows(t, s, flowlog.Filter{})
	if len(flows) != 2 || flows[0].FlowID != "new" || !flows[0].Active || flows[0].Stale || flows[1].Active || !flows[1].Stale {
		t.Fatalf("want new active, old stale: %s", describe(flows))
	}
	for st, want := range map[flowlog.State]string{flowlog.StateActive: "new", flowlog.StateStale: "old", flowlog.StateFinished: ""} {
		if got := ids(allFlows(t, s, flowlog.Filter{State: st})); got != want {
			t.Errorf("state %d: %q, want %q", st, got, want)
		}
	}
	if n, err := s.Active(context.Background(), flowlog.Filter{}); err != nil || n != 1 {
		t.Fatalf("active %d %v, want 1", n, err)
	}
}

// Flows stored by schema version 2 survive migration 3, and its START and
// DESTROY split across midnight become one flow.
func TestMigrationKeepsFlowsAndJoinsSplitPairs(t *testing.T) {
	testutil.NeedEngine(t)
	ctx := context.Background()
	db := t.Name()
	if err := store.OldSchema(ctx, engine, db, cluster, 2); err != nil {
		t.Fatal(err)
	}
	row := func(typ, id, start, end string, bytes, version int) string {
		return fmt.Sprintf("('%s', '%s', 'h1', 'host-1', 'net1', 6, 1, 2, 0, 0, 'egress', toIPv6('10.0.0.1'), 'node', 'n1', 'node-1', "+
			"toIPv6('10.0.0.2'), 'node', 'n2', 'node-2', '%s', '%s', %d, 0, 1, 0, 0, %d)", typ, id, start, end, bytes, version)
	}
	// An older build run with --retention 40d kept flows of 35 days ago.
	if err := store.SchemaExec(ctx, engine, db, cluster, "ALTER TABLE `"+db+"`.flows MODIFY TTL toDateTime(start_ts) + toIntervalSecond(3456000)"); err != nil {
		t.Fatal(err)
	}
	day := midnight.Format("2006-01-02")
	prev := midnight.Add(-time.Hour).Format("2006-01-02")
	old := midnight.AddDate(0, 0, -35).Format("2006-01-02")
	if err := engine.Exec(ctx, "INSERT INTO `"+db+"`.flows (event_type, flow_id, host_id, host_name, network_id, protocol, src_port, dst_port, "+
		"icmp_type, icmp_code, direction, src_ip, src_type, src_entity_id, src_entity_name, dst_ip, dst_type, dst_entity_id, dst_entity_name, "+
		"start_ts, end_ts, bytes_sent, bytes_recv, packets_sent, packets_recv, status, version) VALUES "+
		row("start", "split", prev+" 23:59:59.999", "1970-01-01 00:00:00", 0, 1)+", "+
		row("destroy", "split", day+" 00:00:00.001", day+" 00:00:01.000", 500, 2)+", "+
		row("start", "open", day+" 01:00:00", "1970-01-01 00:00:00", 0, 1)+", "+
		row("destroy", "old", old+" 12:00:00", old+" 12:00:01", 700, 2)); err != nil {
		t.Fatal(err)
	}
	o := store.Options{Database: db, Retention: 40 * 24 * time.Hour}
	s := open(t, o)
	flows := allFlows(t, s, flowlog.Filter{})
	if len(flows) != 3 || flows[0].FlowID != "open" || !flows[0].Active || flows[1].FlowID != "split" || flows[1].Active || flows[1].BytesSent != 500 ||
		flows[2].FlowID != "old" || flows[2].BytesSent != 700 {
		t.Fatalf("after migration: %s", describe(flows))
	}
	// Opening again (migrated already) changes nothing.
	s2 := open(t, o)
	if got := ids(allFlows(t, s2, flowlog.Filter{})); got != "open split old" {
		t.Fatalf("reopened: %q", got)
	}
}
