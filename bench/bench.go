// Package bench is `flowlog bench`: synthetic agents (package loadgen) load a
// collector it starts as a child process (or one already running), then it
// verifies, in this process, that the store holds exactly what was acked
// and measures the store's own insert ceiling. BENCHMARKS.md records runs.
package bench

// `flowlog bench`: many synthetic agents (loadgen) against a collector
// started as a child process of this binary, over real gRPC on loopback.
// It reports what the collector acknowledged (events/s, ack latency), the
// collector's RSS and CPU, then stops the collector, opens its data
// directory in this process and checks that the store holds exactly what
// was acked. Finally it measures the store's own ceiling: the same kind of
// rows inserted directly, without gRPC, in batches like the group commit's.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"

	"github.com/flowlog/flowlog/loadgen"
	pb "github.com/flowlog/flowlog/proto/flow"
	"github.com/flowlog/flowlog/store"
	"github.com/flowlog/flowlog/store/chdb"
)

// Config is a benchmark run. DefaultConfig holds the defaults, the flags'
// included.
type Config struct {
	Streams           int           // concurrent agents, one gRPC stream (and connection) each
	Duration          time.Duration // how long the agents send (the last acks are awaited afterwards)
	EventsPerEnvelope int
	Window            int     // envelopes in flight per stream
	Rate              float64 // events per second per stream (paced); 0: as fast as acks allow
	MTLS              bool    // agents connect with mutual TLS (a throwaway PKI made for the run)
	Participants      int     // distinct endpoints in the network, at most 60000
	ActiveFraction    float64 // share of flows that only get a START, 0 to 1
	Seed              int64   // of the synthetic agents

	FlushRows     int           // the collector's group commit (also the ceiling's batch size)
	FlushInterval time.Duration // the collector's group commit

	Data    string // data directory (default: a temporary one, removed unless Keep)
	Keep    bool
	Addr    string // bench this running collector instead of starting one (no RSS, CPU or verification)
	ChdbLib string // libchdb.so (default: chdb.FindLib's search)

	CeilingEvents int // events inserted straight into the store for its ceiling; 0 skips

	// Queries measures the query table over a synthetic data set of Flows
	// flows (RunQueries) instead of ingest; each query Runs times.
	Queries    bool
	Flows      int
	Runs       int
	JSON       bool   // print the report as JSON
	CPUProfile string // CPU profile of the load generator, to this file

	// Binary is the flowlog executable whose `serve` is benched (default:
	// this process's own); Command is how the run was invoked, for the report.
	Binary, Command string
	Stdout          io.Writer // the report (default os.Stdout)
}

// The targets on a 2-core machine, load generator included.
const (
	targetEventsPerSec = 150_000
	targetP99          = 2 * time.Second
	targetRSS          = 1 << 30
)

// benchDatabase is where the collector writes; benchCeilingDatabase is the
// ceiling's own database in the same data directory (one directory per
// process, so the same engine serves both).
const (
	benchDatabase        = "flowlog"
	benchCeilingDatabase = "bench_ceiling"
)

// DefaultConfig is the run `make bench` records, but 30s long.
func DefaultConfig() Config {
	return Config{
		Streams: 100, Duration: 30 * time.Second, EventsPerEnvelope: 500, Window: 2,
		Participants: 500, ActiveFraction: 0.1,
		FlushRows: 50_000, FlushInterval: 500 * time.Millisecond,
		CeilingEvents: 1_000_000,
		Flows:         10_000_000, Runs: 5,
	}
}

// Validate refuses settings that cannot work, naming the flag.
func (c *Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"--streams", c.Streams}, {"--events-per-envelope", c.EventsPerEnvelope}, {"--window", c.Window},
		{"--participants", c.Participants}, {"--flush-rows", c.FlushRows},
	} {
		if f.v < 1 {
			return fmt.Errorf("%s must be at least 1, got %d", f.name, f.v)
		}
	}
	if c.Participants > 60_000 {
		return fmt.Errorf("--participants must be at most 60000, got %d", c.Participants)
	}
	if c.ActiveFraction < 0 || c.ActiveFraction > 1 {
		return fmt.Errorf("--active-fraction must be between 0 and 1, got %g", c.ActiveFraction)
	}
	if c.FlushInterval <= 0 {
		return errors.New("--flush-interval must be positive")
	}
	if c.Queries && c.Flows < 1000 {
		return fmt.Errorf("--flows must be at least 1000, got %d", c.Flows)
	}
	if c.Queries && c.Runs < 1 {
		return fmt.Errorf("--runs must be at least 1, got %d", c.Runs)
	}
	if c.CeilingEvents < 0 {
		return fmt.Errorf("--ceiling-events must be 0 (skip) or more, got %d", c.CeilingEvents)
	}
	return nil
}

// Report is everything a run measured; --json prints it as is.
type Report struct {
	Command  string       `json:"command"`
	Machine  benchMachine `json:"machine"`
	Config   benchCfg     `json:"config"`
	External bool         `json:"external_collector"` // --addr: not ours, so no RSS, CPU or verification

	ElapsedSec      float64 `json:"elapsed_s"`
	EventsAcked     int64   `json:"events_acked"`
	EventsPerSec    float64 `json:"events_per_s"`
	EnvelopesSent   int64   `json:"envelopes_sent"`
	EnvelopesAcked  int64   `json:"envelopes_acked"`
	EnvelopesFailed int64   `json:"envelopes_failed"`
	RejectedErrors  int64   `json:"rejected_errors"`
	LatencyP50Ms    float64 `json:"ack_latency_p50_ms"`
	LatencyP99Ms    float64 `json:"ack_latency_p99_ms"`
	LatencyMaxMs    float64 `json:"ack_latency_max_ms"`

	CollectorPID       int     `json:"collector_pid,omitempty"`
	CollectorPeakRSS   int64   `json:"collector_peak_rss_bytes,omitempty"` // highest VmRSS polled every 200ms during the run
	CollectorHWM       int64   `json:"collector_rss_hwm_bytes,omitempty"`  // VmHWM at the end of the run (includes start-up)
	CollectorCPU       float64 `json:"collector_cpu_cores,omitempty"`      // (utime+stime) per wall second during the run
	LoadgenCPU         float64 `json:"loadgen_cpu_cores"`
	MachineBusyCPU     float64 `json:"machine_busy_cores"`  // every process on the machine, from /proc/stat
	MachineStealCPU    float64 `json:"machine_steal_cores"` // taken by the hypervisor: noise if not ~0
	CollectorStopSec   float64 `json:"collector_stop_s,omitempty"`
	CollectorStopRSS   int64   `json:"collector_stop_peak_rss_bytes,omitempty"` // highest VmRSS polled every 200ms from SIGTERM to exit
	LoadgenProfileFile string  `json:"loadgen_cpuprofile,omitempty"`

	Verify  *verifyResult  `json:"verify,omitempty"`
	Ceiling *ceilingResult `json:"ceiling,omitempty"`
	Targets []benchTarget  `json:"targets"`
	Data    string         `json:"data_dir,omitempty"` // when kept
}

type benchMachine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	GOOS     string `json:"goos"`
}

type benchCfg struct {
	Streams           int     `json:"streams"`
	DurationSec       float64 `json:"duration_s"`
	EventsPerEnvelope int     `json:"events_per_envelope"`
	Window            int     `json:"window"`
	Participants      int     `json:"participants"`
	ActiveFraction    float64 `json:"active_fraction"`
	FlushRows         int     `json:"flush_rows"`
	FlushIntervalMs   float64 `json:"flush_interval_ms"`
	NetworkID         string  `json:"network_id"`
}

type verifyResult struct {
	OK         bool         `json:"ok"`
	NetworkID  string       `json:"network_id"`
	Expect     store.Counts `json:"expect"` // from the envelopes acked with success=true
	Final      store.Counts `json:"final"`  // SELECT ... FINAL
	ArgMax     store.Counts `json:"argmax"` // GROUP BY flow_id with argMax(..., version)
	Rows       int64        `json:"rows"`   // unmerged rows of the network (START + DESTROY not yet collapsed)
	FinalMs    float64      `json:"final_query_ms"`
	ArgMaxMs   float64      `json:"argmax_query_ms"`
	Mismatches []string     `json:"mismatches,omitempty"`
}

type ceilingResult struct {
	Events     int     `json:"events"`
	BatchRows  int     `json:"batch_rows"`
	Batches    int     `json:"batches"`
	InsertSec  float64 `json:"insert_s"`
	RowsPerSec float64 `json:"rows_per_s"`
	PrepareSec float64 `json:"prepare_s"`          // generation + conversion, not timed in rows_per_s
	CPU        float64 `json:"cpu_cores"`          // this process (the engine's threads included) during the inserts
	MachineCPU float64 `json:"machine_busy_cores"` // every process, during the inserts
	StoredOK   bool    `json:"stored_ok"`          // the store holds the flows inserted
	Note       string  `json:"note,omitempty"`
}

type benchTarget struct {
	What     string `json:"what"`
	Target   string `json:"target"`
	Achieved string `json:"achieved"`
	Met      bool   `json:"met"`
}

// Run runs the benchmark until done or ctx ends and prints the report.
func Run(ctx context.Context, c Config, log *slog.Logger) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Queries {
		return RunQueries(ctx, c, log)
	}

	cfg, err := loadgen.Config{
		Streams:           c.Streams,
		Duration:          c.Duration,
		EventsPerEnvelope: c.EventsPerEnvelope,
		Window:            c.Window,
		Rate:              c.Rate,
		Participants:      c.Participants,
		ActiveFraction:    c.ActiveFraction,
		Seed:              c.Seed,
	}.WithDefaults()
	if err != nil {
		return err
	}
	if c.ActiveFraction == 0 {
		cfg.ActiveFraction = -1 // loadgen's "none"; its zero means the default
	}

	rep := &Report{
		Command:  c.Command,
		Machine:  machineInfo(),
		External: c.Addr != "",
		Config: benchCfg{
			Streams: cfg.Streams, DurationSec: cfg.Duration.Seconds(), EventsPerEnvelope: cfg.EventsPerEnvelope,
			Window: cfg.Window, Participants: cfg.Participants, ActiveFraction: max(cfg.ActiveFraction, 0),
			FlushRows: c.FlushRows, FlushIntervalMs: float64(c.FlushInterval) / float64(time.Millisecond),
			NetworkID: cfg.NetworkID,
		},
	}

	// The data directory: the collector's, then ours for verification and
	// the ceiling. A temporary one goes away afterwards unless --keep (or
	// verification failed: then it is kept for inspection).
	dataDir, temp := c.Data, false
	if dataDir == "" && (c.Addr == "" || c.CeilingEvents > 0) {
		if dataDir, err = os.MkdirTemp("", "flowlog-bench-"); err != nil {
			return err
		}
		temp = true
	}
	keep := c.Keep
	defer func() {
		if temp && !keep {
			os.RemoveAll(dataDir)
		}
	}()

	var col *childCollector
	addr := c.Addr
	if addr == "" {
		log.Info("starting collector", "data", dataDir)
		var tlsArgs []string
		if c.MTLS {
			if tlsArgs, cfg.Creds, err = benchPKI(dataDir); err != nil {
				return err
			}
		}
		if col, err = c.startCollector(ctx, dataDir, tlsArgs...); err != nil {
			return err
		}
		defer col.kill() // only matters on an early return
		addr = col.grpcAddr
		rep.CollectorPID = col.cmd.Process.Pid
		log.Info("collector serving", "pid", rep.CollectorPID, "grpc", addr)
	}
	cfg.Addr = addr

	// The run. RSS is polled throughout; CPU times are taken around it.
	var rss *rssPoller
	var colCPU0 time.Duration
	if col != nil {
		rss = pollRSS(col.cmd.Process.Pid, 200*time.Millisecond)
		colCPU0, _ = procCPU(col.cmd.Process.Pid)
	}
	self0, mach0 := selfCPU(), machineCPU()
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		rep.LoadgenProfileFile = c.CPUProfile
	}
	log.Info("running", "streams", cfg.Streams, "duration", cfg.Duration, "network", cfg.NetworkID)
	wall0 := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, cfg.Duration+2*time.Minute) // bounded wait for the last acks
	lr, runErr := loadgen.Run(rctx, cfg)
	rcancel()
	wall := time.Since(wall0)
	if c.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	rep.LoadgenCPU = (selfCPU() - self0).Seconds() / wall.Seconds()
	if mach1 := machineCPU(); mach0.ok && mach1.ok {
		rep.MachineBusyCPU = (mach1.busy - mach0.busy).Seconds() / wall.Seconds()
		rep.MachineStealCPU = (mach1.steal - mach0.steal).Seconds() / wall.Seconds()
	}
	if col != nil {
		if cpu, err := procCPU(col.cmd.Process.Pid); err == nil {
			rep.CollectorCPU = (cpu - colCPU0).Seconds() / wall.Seconds()
		}
		peak, hwm := rss.stop()
		rep.CollectorPeakRSS, rep.CollectorHWM = peak, hwm
	}
	rep.fill(lr)
	if runErr != nil {
		if col != nil {
			col.stop(30 * time.Second)
			if tail := col.tail(); tail != "" && ctx.Err() == nil {
				log.Error("collector's last log lines:\n" + tail)
			}
		}
		return fmt.Errorf("load run: %w", runErr)
	}

	if col != nil {
		log.Info("stopping collector (SIGTERM): it answers and commits what it received")
		t0 := time.Now()
		// The stop is polled too: it waits for the statement a rollup
		// pass is running, and the pass's first begins as the load ends.
		stopRSS := pollRSS(col.cmd.Process.Pid, 200*time.Millisecond)
		err := col.stop(90 * time.Second)
		rep.CollectorStopRSS, _ = stopRSS.stop()
		if err != nil {
			return fmt.Errorf("collector did not stop cleanly: %w\n%s", err, col.tail())
		}
		rep.CollectorStopSec = time.Since(t0).Seconds()
	}

	// Verification and ceiling share this process's one engine.
	if col != nil || c.CeilingEvents > 0 {
		if err := c.afterRun(ctx, log, dataDir, col != nil, cfg, lr, rep); err != nil {
			return err
		}
	}
	rep.judge()
	if rep.Verify != nil && !rep.Verify.OK && temp {
		keep = true
	}
	if temp && keep {
		rep.Data = dataDir
	}

	if c.JSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.print(c.Stdout)
	}
	if rep.Verify != nil && !rep.Verify.OK {
		return fmt.Errorf("verification failed: the store does not hold exactly what was acked: %s", strings.Join(rep.Verify.Mismatches, "; "))
	}
	return nil
}

func (r *Report) fill(lr loadgen.Report) {
	r.ElapsedSec = lr.Elapsed.Seconds()
	r.EventsAcked, r.EventsPerSec = lr.EventsAcked, lr.EventsPerSec
	r.EnvelopesSent, r.EnvelopesAcked, r.EnvelopesFailed = lr.EnvelopesSent, lr.EnvelopesAcked, lr.EnvelopesFailed
	r.RejectedErrors = lr.RejectedErrors
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs = ms(lr.LatencyP50), ms(lr.LatencyP99), ms(lr.LatencyMax)
}

// judge compares with the targets.
func (r *Report) judge() {
	r.Targets = []benchTarget{{
		What: "events/s acked", Target: "≥ " + thousands(targetEventsPerSec),
		Achieved: thousands(int64(r.EventsPerSec)), Met: r.EventsPerSec >= targetEventsPerSec,
	}, {
		What: "ack latency p99", Target: "< " + targetP99.String(),
		Achieved: msString(r.LatencyP99Ms), Met: r.LatencyP99Ms < float64(targetP99/time.Millisecond),
	}}
	if !r.External {
		r.Targets = append(r.Targets, benchTarget{
			What: "collector peak RSS", Target: "< 1 GiB",
			Achieved: mib(r.CollectorPeakRSS), Met: r.CollectorPeakRSS > 0 && r.CollectorPeakRSS < targetRSS,
		})
	}
}

// afterRun opens the data directory in this process (the collector has
// exited), checks the run's network, then measures the ceiling.
func (c *Config) afterRun(ctx context.Context, log *slog.Logger, dir string, verify bool, cfg loadgen.Config, lr loadgen.Report, rep *Report) error {
	lib, err := chdb.FindLib(c.ChdbLib)
	if err != nil {
		return err
	}
	db, err := chdb.Open(lib, dir, 2, chdb.Settings{})
	if err != nil {
		return err
	}
	defer db.Close()
	var run *store.Store // the collector's database, when verified
	if verify {
		// No query limits: the API's protect it from its readers, but the
		// verification reads every flow of the run in one GROUP BY (20 M
		// events in a 60 s run took more than the 2 GiB default).
		st, err := store.OpenEngine(ctx, db, store.Options{Database: benchDatabase,
			MaxQueryTime: -1, MaxQueryMemory: -1, MaxQueryRows: -1})
		if err != nil {
			return fmt.Errorf("opening the collector's store for verification: %w", err)
		}
		run = st
		log.Info("verifying the store against the acks")
		if rep.Verify, err = verifyStore(ctx, st, lr); err != nil {
			return fmt.Errorf("verification queries: %w", err)
		}
	}
	if c.CeilingEvents > 0 {
		// The run's table still has merges pending; they would compete with
		// the ceiling's inserts (the collector only ever competed with its
		// own). The ceiling table's merges still run, as the collector's did.
		if run != nil {
			if err := run.StopMerges(ctx); err != nil {
				log.Warn("could not pause merges of the run's table; the ceiling may read low", "err", err)
			}
		}
		if err := store.DropDatabase(ctx, db, benchCeilingDatabase); err != nil {
			return fmt.Errorf("resetting the ceiling database: %w", err)
		}
		st, err := store.OpenEngine(ctx, db, store.Options{Database: benchCeilingDatabase})
		if err != nil {
			return fmt.Errorf("opening the ceiling database: %w", err)
		}
		log.Info("measuring the store's ceiling (direct inserts, no gRPC)", "events", c.CeilingEvents, "batch", c.FlushRows)
		if rep.Ceiling, err = measureCeiling(ctx, st, cfg, c.CeilingEvents, c.FlushRows); err != nil {
			return fmt.Errorf("ceiling: %w", err)
		}
	}
	return nil
}

// verifyStore checks the run's network with both merged reads the API uses
// (FINAL, and argMax by version), so a flow counted twice or a byte counted
// on a retry shows up in either.
func verifyStore(ctx context.Context, st *store.Store, lr loadgen.Report) (*verifyResult, error) {
	exp := lr.Expect
	want := store.Counts{Flows: exp.Flows, Finished: exp.Finished, BytesSent: exp.BytesSent, BytesRecv: exp.BytesRecv}
	v := &verifyResult{NetworkID: exp.NetworkID, Expect: want}
	var err error
	t0 := time.Now()
	if v.Final, err = st.NetworkCounts(ctx, exp.NetworkID); err != nil {
		return nil, err
	}
	v.FinalMs = float64(time.Since(t0)) / float64(time.Millisecond)
	t0 = time.Now()
	if v.ArgMax, err = st.NetworkCountsArgMax(ctx, exp.NetworkID); err != nil {
		return nil, err
	}
	v.ArgMaxMs = float64(time.Since(t0)) / float64(time.Millisecond)
	if v.Rows, err = st.NetworkRows(ctx, exp.NetworkID); err != nil {
		return nil, err
	}

	for _, got := range []struct {
		how string
		c   store.Counts
	}{{"FINAL", v.Final}, {"argMax", v.ArgMax}} {
		for _, f := range []struct {
			name      string
			got, want uint64
		}{
			{"flows", uint64(got.c.Flows), uint64(want.Flows)},
			{"finished flows", uint64(got.c.Finished), uint64(want.Finished)},
			{"bytes_sent of finished flows", got.c.BytesSent, want.BytesSent},
			{"bytes_recv of finished flows", got.c.BytesRecv, want.BytesRecv},
		} {
			if f.got != f.want {
				v.Mismatches = append(v.Mismatches, fmt.Sprintf("%s %s: store %d, acked %d", got.how, f.name, f.got, f.want))
			}
		}
	}
	if lr.RejectedErrors > 0 {
		v.Mismatches = append(v.Mismatches, fmt.Sprintf("%d acks reported rejected events (first: %s)", lr.RejectedErrors, lr.FirstRejected))
	}
	v.OK = len(v.Mismatches) == 0
	return v, nil
}

// ceiling inserts n generated events straight into st in batches of
// batchRows, as the group commit would, and times only the inserts.
func measureCeiling(ctx context.Context, st *store.Store, cfg loadgen.Config, n, batchRows int) (*ceilingResult, error) {
	t0 := time.Now()
	gens := make([]*loadgen.Generator, cfg.Streams)
	for i := range gens {
		gens[i] = loadgen.NewGenerator(cfg, i)
	}
	events := make([]flowlog.Event, 0, n)
	var buf []*pb.FlowEvent
	starts := int64(0)
	now := time.Now()
	for i := 0; len(events) < n; i++ {
		buf = gens[i%len(gens)].Next(buf[:0])
		for _, ev := range buf[:min(len(buf), n-len(events))] {
			e, err := ingest.Convert(ev, now)
			if err != nil {
				return nil, fmt.Errorf("generated event rejected: %w", err)
			}
			if e.Type == flowlog.EventStart {
				starts++
			}
			events = append(events, e)
		}
	}
	r := &ceilingResult{Events: n, BatchRows: batchRows, PrepareSec: time.Since(t0).Seconds()}

	runtime.GC() // the garbage of generation is not the store's cost
	cpu0, mach0 := selfCPU(), machineCPU()
	t0 = time.Now()
	for i := 0; i < len(events); i += batchRows {
		b := flowlog.Batch{Events: events[i:min(i+batchRows, len(events))]}
		if err := st.Insert(ctx, &b); err != nil {
			return nil, err
		}
		r.Batches++
	}
	r.InsertSec = time.Since(t0).Seconds()
	r.RowsPerSec = float64(n) / r.InsertSec
	r.CPU = (selfCPU() - cpu0).Seconds() / r.InsertSec
	if mach1 := machineCPU(); mach0.ok && mach1.ok {
		r.MachineCPU = (mach1.busy - mach0.busy).Seconds() / r.InsertSec
	}

	// A flow whose DESTROY was cut off by n still has its START: one flow per START.
	got, err := st.NetworkCounts(ctx, cfg.NetworkID)
	if err != nil {
		return nil, err
	}
	r.StoredOK = got.Flows == starts
	if !r.StoredOK {
		r.Note = fmt.Sprintf("store holds %d flows, %d were inserted", got.Flows, starts)
	}
	return r, nil
}

// childCollector is `flowlog serve` run by the bench.
type childCollector struct {
	cmd                *exec.Cmd
	grpcAddr, httpAddr string
	exited             chan struct{} // closed when Wait returned
	waitErr            error

	mu   sync.Mutex
	last []string // the last log lines, for error messages
}

// startCollector runs this binary's `serve` on loopback with free ports and
// waits for its --addr-file, which names the bound addresses.
func (c *Config) startCollector(ctx context.Context, dir string, extra ...string) (*childCollector, error) {
	exe := c.Binary
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	args := []string{"--log-format", "json", "--log-level", "info", "serve",
		"--data", dir, "--database", benchDatabase,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--flush-rows", strconv.Itoa(c.FlushRows), "--flush-interval", c.FlushInterval.String(),
		"--ingest-rate", "0"} // every loopback stream is one unauthenticated "host": the rate limit would cap the bench
	// Outside the data directory: this process opens that with the engine later.
	tmp, err := os.MkdirTemp("", "flowlog-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	addrFile := filepath.Join(tmp, "addrs.json")
	args = append(args, "--addr-file", addrFile)
	args = append(args, extra...)
	// Raise the collector's limits only where the load would exceed them.
	if c.FlushRows > 1_000_000 {
		args = append(args, "--max-pending-rows", strconv.Itoa(2*c.FlushRows))
	}
	if c.EventsPerEnvelope > 10_000 {
		args = append(args, "--max-events-per-envelope", strconv.Itoa(c.EventsPerEnvelope))
	}
	if c.Streams > 1000 {
		args = append(args, "--max-streams", strconv.Itoa(c.Streams))
	}
	if c.ChdbLib != "" {
		args = append(args, "--chdb-lib", c.ChdbLib)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // never outlive the bench
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting collector: %w", err)
	}
	col := &childCollector{cmd: cmd, exited: make(chan struct{})}
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		col.readLogs(stderr)
	}()
	go func() {
		<-logsDone // Wait closes the pipe: read it all first
		col.waitErr = cmd.Wait()
		close(col.exited)
	}()
	poll := time.NewTicker(50 * time.Millisecond) // the file has no signal of its own
	defer poll.Stop()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case <-poll.C:
			b, err := os.ReadFile(addrFile)
			if err != nil {
				continue
			}
			var a struct{ GRPC, HTTP string }
			if err := json.Unmarshal(b, &a); err != nil {
				return nil, fmt.Errorf("collector's address file: %w", err)
			}
			col.grpcAddr, col.httpAddr = a.GRPC, a.HTTP
			return col, nil
		case <-col.exited:
			return nil, fmt.Errorf("collector exited before serving (%v):\n%s", col.waitErr, col.tail())
		case <-timeout:
			col.kill()
			return nil, fmt.Errorf("collector not serving after 2 minutes:\n%s", col.tail())
		case <-ctx.Done():
			col.kill()
			return nil, ctx.Err()
		}
	}
}

// readLogs follows the collector's JSON log: warnings and errors are passed
// on; the last lines are kept.
func (col *childCollector) readLogs(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		col.mu.Lock()
		col.last = append(col.last, line)
		if len(col.last) > 30 {
			col.last = col.last[len(col.last)-30:]
		}
		col.mu.Unlock()
		var l struct{ Level string }
		if json.Unmarshal([]byte(line), &l) != nil {
			fmt.Fprintln(os.Stderr, "collector:", line) // the engine's own messages
			continue
		}
		if l.Level == "WARN" || l.Level == "ERROR" {
			fmt.Fprintln(os.Stderr, "collector:", line)
		}
	}
	io.Copy(io.Discard, r)
}

func (col *childCollector) tail() string {
	col.mu.Lock()
	defer col.mu.Unlock()
	return strings.Join(col.last, "\n")
}

// stop sends SIGTERM (the collector answers and commits what it received,
// then exits) and waits up to timeout before killing it.
func (col *childCollector) stop(timeout time.Duration) error {
	select {
	case <-col.exited:
		return col.waitErr
	default:
	}
	if err := col.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-col.exited:
		return col.waitErr
	case <-time.After(timeout):
		col.kill()
		return fmt.Errorf("no exit %s after SIGTERM; killed", timeout)
	}
}

func (col *childCollector) kill() {
	select {
	case <-col.exited:
	default:
		col.cmd.Process.Kill()
		<-col.exited
	}
}

// rssPoller samples a process's VmRSS.
type rssPoller struct {
	pid  int
	done chan struct{}
	wg   sync.WaitGroup
	peak int64
}

func pollRSS(pid int, every time.Duration) *rssPoller {
	p := &rssPoller{pid: pid, done: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if rss, _, err := procMem(pid); err == nil {
				p.peak = max(p.peak, rss)
			}
			select {
			case <-t.C:
			case <-p.done:
				return
			}
		}
	})
	return p
}

// stop ends polling and returns the peak VmRSS seen and the VmHWM now.
func (p *rssPoller) stop() (peak, hwm int64) {
	close(p.done)
	p.wg.Wait()
	rss, hwm, err := procMem(p.pid)
	if err == nil {
		p.peak = max(p.peak, rss)
	}
	return p.peak, hwm
}

// procMem reads VmRSS and VmHWM (bytes) from /proc/<pid>/status.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "123456 kB"
		if len(f) < 1 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, nil
}

// procCPU is a process's user+system CPU time from /proc/<pid>/stat, all
// threads included.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, errors.New("unexpected /proc/pid/stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/pid/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc/pid/stat")
	}
	const clkTck = 100 // USER_HZ: 100 on every Linux ABI Go supports
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

type machineTimes struct {
	busy, steal time.Duration
	ok          bool
}

// machineCPU is the CPU time every process on the machine used (user, nice,
// system, irq, softirq) and the time the hypervisor stole, from /proc/stat.
func machineCPU() machineTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return machineTimes{}
	}
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * time.Second / 100 // USER_HZ
	}
	return machineTimes{busy: tick(1) + tick(2) + tick(3) + tick(6) + tick(7), steal: tick(8), ok: true}
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func machineInfo() benchMachine {
	m := benchMachine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// print writes the report as a table.
func (r *Report) print(out io.Writer) {
	c := r.Config
	fmt.Fprintf(out, "flowlog bench: %d streams × %d events/envelope, window %d, %d participants, %.0f%% of flows stay active, %s\n",
		c.Streams, c.EventsPerEnvelope, c.Window, c.Participants, 100*c.ActiveFraction, time.Duration(c.DurationSec*float64(time.Second)))
	if r.External {
		fmt.Fprintln(out, "collector: external (--addr): its RSS and CPU are not measured and its store is not verified")
	} else {
		fmt.Fprintf(out, "collector: child process pid %d, group commit %d rows / %gms\n", r.CollectorPID, c.FlushRows, c.FlushIntervalMs)
	}
	fmt.Fprintf(out, "machine: %d CPUs, %s (load generator and collector share them)\n\n", r.Machine.CPUs, r.Machine.CPUModel)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	met := map[string]benchTarget{}
	for _, t := range r.Targets {
		met[t.What] = t
	}
	row := func(what, value, detail string) {
		goal := ""
		if t, ok := met[what]; ok {
			goal = "target " + t.Target + ": met"
			if !t.Met {
				goal = "target " + t.Target + ": MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", what, value, goal, detail)
	}
	row("events acked", thousands(r.EventsAcked), fmt.Sprintf("in %.1fs (sending %s, then the last acks)", r.ElapsedSec, time.Duration(c.DurationSec*float64(time.Second))))
	row("events/s acked", thousands(int64(r.EventsPerSec)), "")
	row("envelopes acked / failed", fmt.Sprintf("%s / %s", thousands(r.EnvelopesAcked), thousands(r.EnvelopesFailed)), "failed = success=false, resent")
	row("ack latency p50", msString(r.LatencyP50Ms), "Send → FlowResponse, per envelope")
	row("ack latency p99", msString(r.LatencyP99Ms), "")
	row("ack latency max", msString(r.LatencyMaxMs), "")
	if !r.External {
		row("collector peak RSS", mib(r.CollectorPeakRSS), "VmRSS polled every 200ms")
		row("collector RSS high-water", mib(r.CollectorHWM), "VmHWM, start-up included")
		row("collector CPU", fmt.Sprintf("%.2f cores", r.CollectorCPU), "CPU seconds per second during the run")
	}
	row("load generator CPU", fmt.Sprintf("%.2f cores", r.LoadgenCPU), "this process")
	if r.MachineBusyCPU > 0 {
		row("machine CPU busy", fmt.Sprintf("%.2f of %d cores", r.MachineBusyCPU, r.Machine.CPUs),
			fmt.Sprintf("all processes; hypervisor steal %.2f cores", r.MachineStealCPU))
	}
	if r.CollectorStopSec > 0 {
		row("collector stop", fmt.Sprintf("%.1fs", r.CollectorStopSec), "SIGTERM → exit")
		row("collector peak RSS, stopping", mib(r.CollectorStopRSS), "VmRSS polled every 200ms from SIGTERM to exit")
	}
	if cl := r.Ceiling; cl != nil {
		row("store ceiling (direct insert)", thousands(int64(cl.RowsPerSec))+" rows/s",
			fmt.Sprintf("%s rows in %.2fs, %d insert(s) of up to %s rows, same engine, no gRPC; %.2f cores (machine %.2f)",
				thousands(int64(cl.Events)), cl.InsertSec, cl.Batches, thousands(int64(cl.BatchRows)), cl.CPU, cl.MachineCPU))
	}
	tw.Flush()
	fmt.Fprintln(out)
	if other := r.MachineBusyCPU - r.CollectorCPU - r.LoadgenCPU; !r.External && r.MachineBusyCPU > 0 && other > 0.2 {
		fmt.Fprintf(out, "warning: other processes used %.2f cores during the run: these figures are not clean\n", other)
	}
	if r.MachineStealCPU > 0.1 {
		fmt.Fprintf(out, "warning: the hypervisor stole %.2f cores during the run: these figures are not clean\n", r.MachineStealCPU)
	}

	if v := r.Verify; v != nil {
		if v.OK {
			fmt.Fprintf(out, "verified: the store holds exactly what was acked: %s flows, %s finished, %s bytes sent, %s bytes received "+
				"(FINAL %.0fms, argMax %.0fms; %s unmerged rows)\n",
				thousands(v.Final.Flows), thousands(v.Final.Finished), thousands(int64(v.Final.BytesSent)), thousands(int64(v.Final.BytesRecv)),
				v.FinalMs, v.ArgMaxMs, thousands(v.Rows))
		} else {
			fmt.Fprintln(out, "VERIFICATION FAILED: the store does not hold exactly what was acked:")
			for _, m := range v.Mismatches {
				fmt.Fprintln(out, "  -", m)
			}
		}
	} else if r.External {
		fmt.Fprintln(out, "not verified: the external collector's store is not readable from here")
	}
	if cl := r.Ceiling; cl != nil && !cl.StoredOK {
		fmt.Fprintln(out, "ceiling: stored rows do not match:", cl.Note)
	}
	if r.LoadgenProfileFile != "" {
		fmt.Fprintln(out, "load generator CPU profile:", r.LoadgenProfileFile)
	}
	if r.Data != "" {
		fmt.Fprintln(out, "data kept in", r.Data)
	}
}

func msString(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}

func mib(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// thousands formats n with comma separators.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
