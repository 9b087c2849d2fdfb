package e2e

// `flowlog bench` end to end, through the built binary: the bench
// starts its collector as a child process and opens chDB itself afterwards,
// so this test process never loads the engine.

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/bench"
	"github.com/flowlog/flowlog/internal/testutil"
)

// A short run must ack events, verify the store against the acks and
// measure the ceiling; --json must carry the same facts.
func TestBenchVerifiesWhatWasAcked(t *testing.T) {
	testutil.EngineLib(t)
	bin := binary
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"bench", "--duration", "3s", "--streams", "4", "--ceiling-events", "10000"}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("flowlog bench %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, stderr.String())
		}
		return string(out)
	}

	out := run()
	t.Log("\n" + out)
	if !strings.Contains(out, "\nverified: the store holds exactly what was acked") {
		t.Errorf("no verified line in:\n%s", out)
	}
	for _, want := range []string{"events/s acked", "ack latency p99", "collector peak RSS", "store ceiling (direct insert)"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	var rep bench.Report
	if err := json.Unmarshal([]byte(run("--json", "--events-per-envelope", "100")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Verify == nil || !rep.Verify.OK || rep.Verify.Final.Flows == 0 || rep.Verify.Final != rep.Verify.ArgMax {
		t.Errorf("verification %+v", rep.Verify)
	}
	if rep.EventsAcked == 0 || rep.EventsAcked != rep.EnvelopesAcked*100 || rep.EnvelopesFailed != 0 {
		t.Errorf("%d events in %d envelopes acked, %d failed", rep.EventsAcked, rep.EnvelopesAcked, rep.EnvelopesFailed)
	}
	if rep.CollectorPeakRSS <= 0 || rep.CollectorCPU <= 0 || rep.LatencyP99Ms <= 0 {
		t.Errorf("RSS %d, CPU %.2f, p99 %.1fms", rep.CollectorPeakRSS, rep.CollectorCPU, rep.LatencyP99Ms)
	}
	if c := rep.Ceiling; c == nil || c.Events != 10_000 || !c.StoredOK || c.RowsPerSec <= 0 {
		t.Errorf("ceiling %+v", c)
	}
}
