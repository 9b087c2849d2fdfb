package bench

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestIdleStreams is the idle-streams measurement of BENCHMARKS.md, run by
// hand: FLOWLOG_IDLE_STREAMS=10000 go test -run TestIdleStreams -v ./bench/
// (FLOWLOG_IDLE_HOLD=150s: hold the streams past the runtime's periodic
// collection first; FLOWLOG_IDLE_SEND=500: each stream sends an envelope of
// 500 events first, as an agent between two flushes; FLOWLOG_IDLE_MTLS=1:
// the agents connect with mutual TLS). It builds the collector (cmd/flowlog) and measures it
// as a child process.
func TestIdleStreams(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FLOWLOG_IDLE_STREAMS"))
	if n <= 0 {
		t.Skip("set FLOWLOG_IDLE_STREAMS=N to measure N idle streams")
	}
	bin := filepath.Join(t.TempDir(), "flowlog")
	build := exec.Command("go", "build", "-o", bin, "../cmd/flowlog")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("building the collector: %v", err)
	}
	c := DefaultConfig()
	c.Binary, c.Data = bin, t.TempDir()
	hold, _ := time.ParseDuration(os.Getenv("FLOWLOG_IDLE_HOLD"))
	send, _ := strconv.Atoi(os.Getenv("FLOWLOG_IDLE_SEND"))
	c.MTLS = os.Getenv("FLOWLOG_IDLE_MTLS") == "1"
	rep, err := RunIdle(t.Context(), c, n, send, hold, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rep.Print(os.Stdout)
}
