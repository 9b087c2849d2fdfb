package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/flowlog/flowlog/bench"
	"github.com/flowlog/flowlog/cli"
)

// benchCmd is `flowlog bench`: flags onto bench.Config, whose DefaultConfig
// is where every default comes from (benchVars).
type benchCmd struct {
	Streams           int          `help:"Concurrent agents, one gRPC stream (and connection) each." default:"${bench_streams}" env:"FLOWLOG_BENCH_STREAMS"`
	Duration          cli.Duration `help:"How long the agents send (acks of the last envelopes are awaited afterwards)." default:"${bench_duration}" env:"FLOWLOG_BENCH_DURATION"`
	EventsPerEnvelope int          `name:"events-per-envelope" help:"Events per FlowEnvelope." default:"${bench_events_per_envelope}" env:"FLOWLOG_BENCH_EVENTS_PER_ENVELOPE"`
	Window            int          `help:"Envelopes in flight per stream before an agent waits for acks." default:"${bench_window}" env:"FLOWLOG_BENCH_WINDOW"`
	Rate              float64      `help:"Events per second per stream (paced; for ack latency at a light load); 0: as fast as acks allow." default:"0" env:"FLOWLOG_BENCH_RATE"`
	MTLS              bool         `name:"mtls" help:"Agents connect with mutual TLS (a throwaway CA, server and client certificates are made for the run); measures the cost of TLS against the plaintext default." env:"FLOWLOG_BENCH_MTLS"`
	Participants      int          `help:"Distinct participants (endpoints) in the network, at most 60000." default:"${bench_participants}" env:"FLOWLOG_BENCH_PARTICIPANTS"`
	ActiveFraction    float64      `help:"Share of flows that only get a START (stay active), 0 to 1." default:"${bench_active_fraction}" env:"FLOWLOG_BENCH_ACTIVE_FRACTION"`
	Seed              int64        `help:"Seed of the synthetic agents (hosts, participants, ports)." default:"0" env:"FLOWLOG_BENCH_SEED"`

	FlushRows     int           `help:"Collector group commit: insert when this many rows wait (also the ceiling's batch size)." default:"${bench_flush_rows}" env:"FLOWLOG_BENCH_FLUSH_ROWS"`
	FlushInterval time.Duration `help:"Collector group commit: insert when the oldest row waited this long." default:"${bench_flush_interval}" env:"FLOWLOG_BENCH_FLUSH_INTERVAL"`

	Data    string `help:"Data directory of the collector and the ceiling (default: a fresh temporary directory, removed afterwards unless --keep)." env:"FLOWLOG_BENCH_DATA"`
	Keep    bool   `help:"Keep the temporary data directory." env:"FLOWLOG_BENCH_KEEP"`
	Addr    string `help:"Bench an already-running collector at this gRPC address instead of starting one (then no RSS, CPU or store verification; start it with --ingest-rate 0, or the bench's streams, one address, share one rate limit)." env:"FLOWLOG_BENCH_ADDR"`
	ChdbLib string `name:"chdb-lib" help:"Path of libchdb.so (default: the cache of 'make setup')." env:"FLOWLOG_CHDB_LIB"`

	CeilingEvents int    `help:"Events inserted directly into the store to measure its ceiling; 0 skips." default:"${bench_ceiling_events}" env:"FLOWLOG_BENCH_CEILING_EVENTS"`
	Queries       bool   `help:"Measure the query table of BENCHMARKS.md (top talkers, matrix, series, listing pages) over a synthetic data set of --flows flows instead of ingest; the set is built once in --data and reused by later runs." env:"FLOWLOG_BENCH_QUERIES"`
	Flows         int    `help:"--queries: flows in the data set." default:"${bench_flows}" env:"FLOWLOG_BENCH_FLOWS"`
	Runs          int    `help:"--queries: runs of each query (the median is reported)." default:"${bench_runs}" env:"FLOWLOG_BENCH_RUNS"`
	JSON          bool   `name:"json" help:"Print the report as JSON." env:"FLOWLOG_BENCH_JSON"`
	CPUProfile    string `name:"cpuprofile" help:"Write a CPU profile of the load generator (this process) during the run to this file. Profile the collector with perf (BENCHMARKS.md)." env:"FLOWLOG_BENCH_CPUPROFILE"`
}

// benchVars are the flags' defaults, from bench.DefaultConfig.
func benchVars() kong.Vars {
	d := bench.DefaultConfig()
	return kong.Vars{
		"bench_streams": itoa(d.Streams), "bench_duration": dur(d.Duration),
		"bench_events_per_envelope": itoa(d.EventsPerEnvelope), "bench_window": itoa(d.Window),
		"bench_participants": itoa(d.Participants), "bench_active_fraction": ftoa(d.ActiveFraction),
		"bench_flush_rows": itoa(d.FlushRows), "bench_flush_interval": dur(d.FlushInterval),
		"bench_ceiling_events": itoa(d.CeilingEvents), "bench_flows": itoa(d.Flows), "bench_runs": itoa(d.Runs),
	}
}

func (c *benchCmd) config() bench.Config {
	return bench.Config{
		Streams: c.Streams, Duration: time.Duration(c.Duration), EventsPerEnvelope: c.EventsPerEnvelope, Window: c.Window,
		Rate: c.Rate, MTLS: c.MTLS, Participants: c.Participants, ActiveFraction: c.ActiveFraction, Seed: c.Seed,
		FlushRows: c.FlushRows, FlushInterval: c.FlushInterval, Data: c.Data, Keep: c.Keep, Addr: c.Addr, ChdbLib: c.ChdbLib,
		CeilingEvents: c.CeilingEvents, Queries: c.Queries, Flows: c.Flows, Runs: c.Runs, JSON: c.JSON, CPUProfile: c.CPUProfile,
		Command: "flowlog " + strings.Join(os.Args[1:], " "),
	}
}

func (c *benchCmd) Validate() error {
	cfg := c.config()
	return cfg.Validate()
}

func (c *benchCmd) Run(ctx context.Context, log *slog.Logger) error {
	return bench.Run(ctx, c.config(), log)
}
