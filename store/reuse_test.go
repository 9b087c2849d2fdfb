package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// An insert works in the memory the one before it left: the Native
// block's columns and bytes, and the batch's flow identity map and arrays
// (~380 bytes an event when each insert made its own: under load, most of
// what the collector allocated after the envelopes' decoding). The rows
// stored are still each batch's own.
func TestInsertReusesTheMemoryOfTheOneBefore(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{Database: fmt.Sprint("reuse_", time.Now().UnixNano())})
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	event := func(i int, typ flowlog.EventType) flowlog.Event {
		e := flowlog.Event{Type: typ, FlowID: fmt.Sprintf("reuse%08d", i), HostID: "h1", NetworkID: "n1", Protocol: 6,
			SrcPort: uint16(i), DstPort: 443, Direction: flowlog.DirEgress,
			Src: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1")}, Dst: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.2")},
			Start: base.Add(time.Duration(i) * time.Millisecond), Version: 1}
		if typ == flowlog.EventDestroy {
			e.Version, e.End, e.BytesSent = 2, e.Start.Add(time.Second), 100
		}
		return e
	}
	// Batches of STARTs and the DESTROYs of the batch before, built
	// before measuring.
	const per, warm, measured = 5000, 3, 5
	batches := make([][]flowlog.Event, warm+measured)
	for b := range batches {
		for i := b * per; i < (b+1)*per; i++ {
			batches[b] = append(batches[b], event(i, flowlog.EventStart))
			if b > 0 {
				batches[b] = append(batches[b], event(i-per, flowlog.EventDestroy))
			}
		}
	}
	insert := func(evs []flowlog.Event) {
		runtime.GC() // collections come between inserts under load
		runtime.GC()
		if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
	}
	for _, evs := range batches[:warm] {
		insert(evs)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, evs := range batches[warm:] {
		insert(evs)
	}
	runtime.ReadMemStats(&after)
	if perEvent := float64(after.TotalAlloc-before.TotalAlloc) / (measured * 2 * per); perEvent > 60 {
		t.Errorf("inserting allocated %.0f bytes an event; want under 60", perEvent)
	}
	// Every flow once, each batch's own: all but the last batch's finished,
	// with its own start (the DESTROYs matched their STARTs).
	var got []struct {
		N        uint64 `json:"n"`
		Finished uint64 `json:"finished"`
		Starts   uint64 `json:"starts"`
	}
	q := "SELECT count() AS n, countIf(end_ts > start_ts) AS finished, uniqExact(start_ts) AS starts FROM " + s.Database() + ".flows FINAL"
	if err := s.QueryRows(ctx, q, &got); err != nil {
		t.Fatal(err)
	}
	all := uint64(len(batches) * per)
	if len(got) != 1 || got[0].N != all || got[0].Finished != all-per || got[0].Starts != all {
		t.Fatalf("stored %+v; want %d flows, %d finished, %d starts", got, all, all-per, all)
	}
}
