package e2e

// End-to-end test of a long connection (issue 10): with --active-timeout,
// the agent reports an open flow's bytes so far while it runs, and once it
// ends the time series shows its bytes where they flowed, not all at its
// start.

import (
	"fmt"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/internal/testutil"
)

// A 3-minute connection at a steady rate, agent --active-timeout 20s:
// while it runs, its flow shows growing bytes; afterwards the time series
// spreads its bytes over the three minutes, not into its first bucket.
func TestLongConnectionGrowsWhileOpenAndSpreadsOverItsLifetime(t *testing.T) {
	needBinary(t)
	m := newMesh(t)
	c := serve(t, t.TempDir())
	startAgent(t, m, c.grpc, t.TempDir(), "--active-timeout", "20s")
	started := time.Now()

	// A → B: 2 KiB every 100 ms for 3 minutes, drained by B.
	const lasting, every, chunk, port = 3 * time.Minute, 100 * time.Millisecond, 2048, 9990
	ln, accepted := listenOpen(t, m.b, m.bIP, port)
	o := dialOpen(t, m.a, ln, accepted, chunk)
	go io.Copy(io.Discard, o.server)
	sent := make(chan error, 1)
	go func() {
		tick := time.NewTicker(every) // the traffic's pace, not a wait for a condition
		defer tick.Stop()
		end := time.After(lasting)
		for {
			select {
			case <-end:
				sent <- nil
				return
			case <-tick.C:
				if _, err := o.client.Write(make([]byte, chunk)); err != nil {
					sent <- err
					return
				}
			}
		}
	}()

	// While it runs: the flow is listed active, with bytes_sent growing
	// from one active-timeout update to the next.
	const q = "network_id=mesh1&port=9990"
	seen := map[uint64]bool{}
	var rows []api.FlowRow
	testutil.WaitFor(t, 90*time.Second, "two different byte counts of the open connection", func() bool {
		rows = all(t, c.http, q)
		if len(rows) == 1 && rows[0].Active && rows[0].BytesSent > 0 {
			seen[rows[0].BytesSent] = true
		}
		return len(seen) >= 2
	})
	select {
	case err := <-sent:
		t.Fatalf("the connection ended before its flow was seen growing twice (%v): %v", err, seen)
	default:
	}
	t.Logf("bytes_sent seen while open: %v", seen)

	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	o.close()
	ended := time.Now()
	var f api.FlowRow
	testutil.WaitFor(t, 60*time.Second, "the connection's DESTROY stored", func() bool {
		exec.Command("ip", "netns", "exec", m.a, "conntrack", "-L").Run() // evicts expired entries now
		rows = all(t, c.http, q)
		if len(rows) != 1 || rows[0].Active || rows[0].State != "finished" {
			return false
		}
		f = rows[0]
		return true
	})
	total := f.BytesSent + f.BytesRecv
	if f.BytesSent < uint64(lasting/every)*chunk*9/10 {
		t.Fatalf("the finished flow counts %d bytes sent, want about %d", f.BytesSent, uint64(lasting/every)*chunk)
	}

	// Minutes covering the connection: its bytes, exactly, spread over at
	// least three of them, none holding more than half.
	var series struct {
		StepSeconds int64 `json:"step_seconds"`
		Points      []struct {
			T     string
			Bytes uint64
		}
	}
	tq := fmt.Sprintf("%s&from=%s&to=%s&step=1m", q, started.Add(-time.Minute).UTC().Format(time.RFC3339),
		ended.Add(time.Minute).UTC().Format(time.RFC3339))
	if err := getResponse(apiClient(t, c.http), "/api/v1/aggregates/timeseries", tq, &series); err != nil {
		t.Fatal(err)
	}
	var sum, most uint64
	filled := 0
	for _, p := range series.Points {
		sum += p.Bytes
		most = max(most, p.Bytes)
		if p.Bytes > 0 {
			filled++
		}
	}
	t.Logf("flow %d bytes; series (step %ds): %+v", total, series.StepSeconds, series.Points)
	if series.StepSeconds != 60 || sum != total || filled < 3 || most > total/2 {
		t.Fatalf("time series of a 3-minute flow of %d bytes: step %ds, %d bytes in %d buckets, the largest %d; "+
			"want step 60s, exactly the flow's bytes, in at least 3 buckets, none over half:\n%+v",
			total, series.StepSeconds, sum, filled, most, series.Points)
	}
}
