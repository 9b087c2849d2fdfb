// Command flowlog is the flow-log system's one binary: `flowlog serve` is the
// collector, `flowlog bench` the load benchmark. Every flag has a FLOWLOG_...
// environment twin (see README "Configuration").
package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

type cli struct {
	LogLevel  slog.Level `help:"Log level: debug, info, warn, error." default:"info" env:"FLOWLOG_LOG_LEVEL"`
	LogFormat string     `help:"Log format: text or json." enum:"text,json" default:"text" env:"FLOWLOG_LOG_FORMAT"`

	Serve serveCmd `cmd:"" help:"Run the collector: gRPC ingest, ClickHouse store, HTTP API."`
	Agent agentCmd `cmd:"" help:"Run the agent on a mesh host: conntrack flows to the collector."`
	Bench benchCmd `cmd:"" help:"Load-test a collector with synthetic agents and verify what it stored."`
	Flows flowsCmd `cmd:"" help:"List a collector's flows (HTTP API client); exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx, 4 empty with --fail-empty."`
	Top   topCmd   `cmd:"" help:"Rank a collector's top talkers by bytes, packets or flows; exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx, 4 empty with --fail-empty."`
	Tail  tailCmd  `cmd:"" help:"Follow flows as a collector commits them; exit 0 interrupted or --count reached, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx with --no-reconnect."`
}

func main() {
	var c cli
	ctx := kong.Parse(&c,
		kong.Name("flowlog"),
		kong.Description("Flow logs for WireGuard meshes (Netmaker-compatible)."),
		kong.UsageOnError(),
		// A usage error (unknown flag, missing value) exits 1 like every other
		// bad input, not kong's own 80: scripts rely on the documented codes.
		kong.Exit(func(code int) {
			if code == 80 {
				code = 1
			}
			os.Exit(code)
		}),
	)
	log := newLogger(c.LogLevel, c.LogFormat)
	if err := ctx.Run(log); err != nil {
		log.Error(ctx.Command()+" failed", "err", err)
		os.Exit(1)
	}
}

func newLogger(level slog.Level, format string) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o))
}

// duration is a time.Duration that also accepts whole days ("30d"), the
// natural unit of a retention.
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return fmt.Errorf("invalid duration %q: want a positive number of days like 30d, or a Go duration like 720h", s)
		}
		*d = duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("invalid duration %q: want a positive Go duration like 500ms or 720h, or days like 30d", s)
	}
	*d = duration(v)
	return nil
}
