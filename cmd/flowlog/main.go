// Command flowlog is the flow-log system's one binary: `flowlog serve` is the
// collector (package collector), `flowlog agent` the agent (agent.Run),
// `flowlog flows|top|tail` the API's command-line client, `flowlog bench` the
// load benchmark (package bench). This package only maps flags onto those
// packages' configurations and prints; every flag has a FLOWLOG_...
// environment twin, and its default comes from the package's DefaultConfig
// (README "Configuration" lists them; readme_test.go keeps it honest).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/flowlog/flowlog"
)

type cli struct {
	LogLevel  slog.Level       `help:"Log level: debug, info, warn, error." default:"info" env:"FLOWLOG_LOG_LEVEL"`
	LogFormat string           `help:"Log format: text or json." enum:"text,json" default:"text" env:"FLOWLOG_LOG_FORMAT"`
	Version   kong.VersionFlag `help:"Print the version and exit."`

	Serve serveCmd `cmd:"" help:"Run the collector: gRPC ingest, ClickHouse store, HTTP API."`
	Agent agentCmd `cmd:"" help:"Run the agent on a mesh host: conntrack flows to the collector."`
	Bench benchCmd `cmd:"" help:"Load-test a collector with synthetic agents and verify what it stored."`
	Flows flowsCmd `cmd:"" help:"List a collector's flows (HTTP API client); exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx, 4 empty with --fail-empty."`
	Top   topCmd   `cmd:"" help:"Rank a collector's top talkers by bytes, packets or flows; exit 0 ok, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx, 4 empty with --fail-empty."`
	Tail  tailCmd  `cmd:"" help:"Follow flows as a collector commits them; exit 0 interrupted or --count reached, 1 bad flag, 2 refused (4xx), 3 unreachable/5xx with --no-reconnect."`
}

// options are kong's settings, shared by main and the tests that parse
// flags as main does.
func options() []kong.Option {
	vars := kong.Vars{"version": "flowlog " + flowlog.Version()}
	for _, v := range []kong.Vars{serveVars(), agentVars(), benchVars()} {
		for k, s := range v {
			vars[k] = s
		}
	}
	return []kong.Option{
		kong.Name("flowlog"),
		kong.Description("Flow logs for WireGuard meshes (Netmaker-compatible)."),
		kong.UsageOnError(),
		vars,
	}
}

func main() {
	var c cli
	kctx := kong.Parse(&c, append(options(),
		// A usage error (unknown flag, missing value) exits 1 like every other
		// bad input, not kong's own 80: scripts rely on the documented codes.
		kong.Exit(func(code int) {
			if code == 80 {
				code = 1
			}
			os.Exit(code)
		}))...)
	log := newLogger(c.LogLevel, c.LogFormat)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	kctx.BindTo(ctx, (*context.Context)(nil))
	err := kctx.Run(log)
	stop()
	os.Exit(exitStatus(err, kctx.Command(), log))
}

// exitStatus is the status the process exits with after err: the code an
// exitError carries (printed already if the command said so), else 1.
func exitStatus(err error, cmd string, log *slog.Logger) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		if !e.printed {
			log.Error(cmd+" failed", "err", err)
		}
		return e.code
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
