// Command flowlog is the flow-log system's one binary: `flowlog serve` is the
// collector (package collector), `flowlog agent` the agent (agent.Run),
// `flowlog flows|top|tail|hosts|new|rejected` the API's command-line client
// (package cli), `flowlog bench` the
// load benchmark (package bench). This package only maps flags onto those
// packages' configurations and prints; every flag has a FLOWLOG_...
// environment twin, and its default comes from the package's DefaultConfig
// (README "Configuration" lists them; readme_test.go keeps it honest).
package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/cli"
)

type flags struct {
	LogLevel  slog.Level       `help:"Log level: debug, info, warn, error." default:"info" env:"FLOWLOG_LOG_LEVEL"`
	LogFormat string           `help:"Log format: text or json." enum:"text,json" default:"text" env:"FLOWLOG_LOG_FORMAT"`
	Version   kong.VersionFlag `help:"Print the version and exit."`

	Serve    serveCmd        `cmd:"" help:"Run the collector: gRPC ingest, ClickHouse store, HTTP API."`
	Agent    agentCmd        `cmd:"" help:"Run the agent on a mesh host: conntrack flows to the collector."`
	Bench    benchCmd        `cmd:"" help:"Load-test a collector with synthetic agents and verify what it stored."`
	Flows    cli.FlowsCmd    `cmd:"" help:"List a collector's flows (HTTP API client); exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx, 4 empty with --fail-empty."`
	Top      cli.TopCmd      `cmd:"" help:"Rank a collector's top talkers by bytes, packets or flows; exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx, 4 empty with --fail-empty."`
	Tail     cli.TailCmd     `cmd:"" help:"Follow flows as a collector commits them; exit 0 interrupted or --count reached, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx with --no-reconnect."`
	Hosts    cli.HostsCmd    `cmd:"" help:"List the hosts reporting to a collector, quiet ones marked; exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx, 4 a host quiet with --fail-quiet."`
	New      cli.NewCmd      `cmd:"" help:"List conversations seen for the first time (window against baseline); exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx, 4 some with --fail-new."`
	Rejected cli.RejectedCmd `cmd:"" help:"List the events a collector rejected (admin readers); exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx."`
}

// options are kong's settings, shared by main and the tests that parse
// flags as main does.
func options() []kong.Option {
	vars := kong.Vars{"version": "flowlog " + flowlog.Version()}
	for _, v := range []kong.Vars{serveVars(), agentVars(), benchVars()} {
		maps.Copy(vars, v)
	}
	return []kong.Option{
		kong.Name("flowlog"),
		kong.Description("Flow logs for WireGuard meshes (Netmaker-compatible)."),
		vars,
	}
}

func main() {
	var c flags
	parser := kong.Must(&c, options()...)
	// A usage error (unknown flag, missing value) is one short line and
	// status 1 like every other bad input, not the whole help and kong's
	// own 80: scripts rely on the documented codes.
	kctx, err := parser.Parse(os.Args[1:])
	if err != nil {
		os.Exit(cli.ParseFailed(os.Stderr, err))
	}
	log := newLogger(c.LogLevel, c.LogFormat)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(log)
	stop()
	os.Exit(exitStatus(err, kctx.Command(), log))
}

// exitError is an error that says which status the process exits with,
// and whether its command printed it already (the client commands do).
type exitError interface {
	error
	ExitCode() int
	Printed() bool
}

// exitStatus is the status the process exits with after err: the code an
// exitError carries, else 1.
func exitStatus(err error, cmd string, log *slog.Logger) int {
	if err == nil {
		return 0
	}
	var e exitError
	if errors.As(err, &e) {
		if !e.Printed() {
			log.Error(cmd+" failed", "err", err)
		}
		return e.ExitCode()
	}
	log.Error(cmd+" failed", "err", err)
	return 1
}

func newLogger(level slog.Level, format string) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o))
}

// Defaults as flag text (kong.Vars): what --help and the README show.

func itoa[T int | int64](v T) string { return strconv.FormatInt(int64(v), 10) }

// dur prints a duration the way people write it: 1m, 2m, 500ms, 1h30m (not
// Go's 1m0s).
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// days prints a duration of whole days as days (30d), else as dur.
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return itoa(int64(d/(24*time.Hour))) + "d"
	}
	return dur(d)
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
