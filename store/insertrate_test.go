package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// TestInsertRate measures Store.Insert alone (BENCHMARKS.md, "Flow identity
// and one count per connection"): batches of 50,000 STARTs plus the
// DESTROYs of the batch before, one inserter. Skipped unless
// FLOWLOG_INSERT_RATE_BATCHES is set:
//
//	FLOWLOG_INSERT_RATE_BATCHES=10 go test -count=1 -run TestInsertRate -v ./store/
func TestInsertRate(t *testing.T) {
	batches, _ := strconv.Atoi(os.Getenv("FLOWLOG_INSERT_RATE_BATCHES"))
	if batches <= 0 {
		t.Skip("set FLOWLOG_INSERT_RATE_BATCHES=N to measure Store.Insert")
	}
	ctx := context.Background()
	s := open(t, store.Options{Database: fmt.Sprint("insertrate_", time.Now().UnixNano())})
	base := time.Now().Add(-48 * time.Hour).Truncate(time.Millisecond)
	event := func(i int, typ flowlog.EventType) flowlog.Event {
		e := flowlog.Event{Type: typ, FlowID: fmt.Sprintf("synth%032x", i*7919), HostID: fmt.Sprintf("host-%02d", i%50),
			NetworkID: fmt.Sprint("net", i%3), Protocol: 6, SrcPort: uint16(i), DstPort: 443, Direction: flowlog.DirEgress,
			Src: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1")}, Dst: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.2")},
			Start: base.Add(time.Duration(i) * 300 * time.Millisecond), Version: 1}
		if typ == flowlog.EventDestroy {
			e.Version, e.End = 2, e.Start.Add(time.Second)
			e.BytesSent, e.PacketsSent = 1000, 10
		}
		return e
	}
	const per = 50000
	rows := 0
	var took time.Duration
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b := 0; b < batches; b++ {
		var evs []flowlog.Event
		for i := b * per; i < (b+1)*per; i++ {
			evs = append(evs, event(i, flowlog.EventStart))
			if b > 0 {
				evs = append(evs, event(i-per, flowlog.EventDestroy))
			}
		}
		t0 := time.Now()
		if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
			t.Fatal(err)
		}
		took += time.Since(t0)
		rows += len(evs)
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	t.Logf("%d rows in %s: %.0f rows/s; process CPU %s, %.2f µs a row", rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(),
		cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(rows))
}
