package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/flowlog/flowlog/agent/config"
	"github.com/flowlog/flowlog/agent/conntrack"
	"github.com/flowlog/flowlog/agent/export"
	"github.com/flowlog/flowlog/agent/spool"
)

// Config is everything `flowlog agent` can be told. DefaultConfig holds the
// defaults, the flags' included.
type Config struct {
	ConfigFile string // the agent's YAML (host, networks, participants, drops); hot-reloaded
	Collector  string // the collector's gRPC address
	StateDir   string // spool and version clock
	Stdout     bool   // print events as JSON lines instead of streaming them
	NetNS      string // watch this network namespace's conntrack; empty: the agent's own

	MetricsAddr string // serve /metrics, /healthz, /readyz here; empty: off

	SpoolMaxBytes int64
	BatchEvents   int
	BatchInterval time.Duration
	Window        int
	ReadBuffer    int // conntrack netlink receive buffer, bytes
	// ActiveTimeout: open flows are reported again, with their counters so
	// far, this often (0 = off). ResyncInterval: conntrack is dumped this
	// often and announced flows that are gone are closed (0 = only at start
	// and after overruns).
	ActiveTimeout, ResyncInterval time.Duration
	BackoffMax                    time.Duration
	DrainTimeout                  time.Duration // on shutdown, how long to keep sending what is spooled

	TLSCA, TLSCert, TLSKey, TLSServerName string
	Plaintext                             bool // required to send without TLS
	Token, TokenFile                      string

	Log *slog.Logger // nil: slog.Default()
}

// DefaultConfig is the agent as `flowlog agent` runs it without flags.
func DefaultConfig() Config {
	return Config{
		Collector:      "127.0.0.1:50051",
		StateDir:       "/var/lib/flowlog-agent",
		SpoolMaxBytes:  256 << 20,
		BatchEvents:    500,
		BatchInterval:  time.Second,
		Window:         8,
		ReadBuffer:     8 << 20,
		ActiveTimeout:  conntrack.DefaultActiveTimeout,
		ResyncInterval: conntrack.DefaultResyncInterval,
		BackoffMax:     30 * time.Second,
		DrainTimeout:   5 * time.Second,
	}
}

// Validate refuses settings that cannot work, naming the flag.
func (c *Config) Validate() error {
	if c.BatchEvents < 1 || c.Window < 1 || c.SpoolMaxBytes < 1<<20 {
		return errors.New("--batch-events and --window must be at least 1, --spool-max-bytes at least 1 MiB")
	}
	if c.BatchInterval <= 0 {
		return errors.New("--batch-interval must be positive")
	}
	if !c.Stdout && c.TLSCA == "" && !c.Plaintext {
		return errors.New("no TLS configured: give --tls-ca (and --tls-cert/--tls-key for mutual TLS), or --plaintext to send flows unencrypted")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("--token and --token-file: give one")
	}
	return nil
}

// Run runs the agent until ctx ends: conntrack source, pipeline and config
// watch; unless Stdout, also the spool, the exporter and the version-clock
// saver; the metrics server if MetricsAddr. On return what was spooled had
// DrainTimeout to be sent; the rest stays spooled for the next start.
func Run(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	cfg, err := config.Load(c.ConfigFile)
	if err != nil {
		return err
	}
	o := conntrack.Options{NetNS: c.NetNS, ReadBuffer: c.ReadBuffer, InitialSync: true, LookupStart: true, Log: log,
		ActiveTimeout: c.ActiveTimeout, ResyncInterval: c.ResyncInterval}
	if !c.Stdout {
		// The announced-flow set: on restart, flows still open keep their
		// flow_id and those that ended meanwhile are closed. A --stdout
		// run announces nothing to a collector, so it keeps no such set.
		if err := os.MkdirAll(c.StateDir, 0o750); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		o.StateFile = filepath.Join(c.StateDir, "flows")
	}
	src, err := conntrack.Open(o)
	if err != nil {
		return err
	}
	defer src.Close()
	if c.Stdout {
		p := NewPipeline(cfg, nil, os.Stdout)
		stopMetrics, err := serveMetrics(c.MetricsAddr, log, parts{src: src, pipe: p})
		if err != nil {
			return err
		}
		defer stopMetrics()
		return c.pump(ctx, log, src, p)
	}
	return c.stream(ctx, log, cfg, src)
}

// stream is Run's normal mode: flows through the spool to the collector.
func (c *Config) stream(ctx context.Context, log *slog.Logger, cfg *config.Config, src *conntrack.Source) error {
	creds, err := c.credentials()
	if err != nil {
		return err
	}
	token, err := c.token()
	if err != nil {
		return err
	}
	if token != "" && creds == nil {
		log.Warn("sending the bearer token without TLS (--plaintext): anyone on the path can read it")
	}
	sp, err := openSpool(c.StateDir, c.SpoolMaxBytes, log)
	if err != nil {
		return err
	}
	defer sp.Close()
	b := export.NewBatcher(sp, c.BatchEvents, log)
	p := NewPipeline(cfg, b, nil)
	p.Undelivered = src.Undelivered // DESTROYs a full spool dropped are closed again by the next resync
	if err := p.LoadVersion(c.StateDir); err != nil {
		return err
	}
	exp := export.New(sp, export.Options{Addr: c.Collector, Creds: creds, Window: c.Window, BackoffMax: c.BackoffMax, Log: log})
	stopMetrics, err := serveMetrics(c.MetricsAddr, log, parts{src: src, pipe: p, spool: sp, batch: b, exp: exp})
	if err != nil {
		return err
	}
	defer stopMetrics()
	// The exporter outlives ctx by the drain: it has its own.
	expCtx, stopExp := context.WithCancel(context.Background())
	if token != "" {
		// Every stream the exporter opens derives from expCtx, so each carries
		// the token (as per-RPC credentials would; export.Options has no dial
		// options to pass them).
		expCtx = metadata.AppendToOutgoingContext(expCtx, "authorization", "Bearer "+token)
	}
	expDone := make(chan struct{}) // closed when the exporter returned (it only ends with its context)
	go func() { defer close(expDone); exp.Run(expCtx) }()

	go c.saveVersions(ctx, log, p)
	err = c.pump(ctx, log, src, p)
	if serr := p.SaveVersion(c.StateDir); serr != nil {
		log.Warn("saving version clock", "err", serr)
	}
	drain(sp, expDone, c.DrainTimeout)
	stopExp()
	<-expDone
	st := sp.Stats()
	log.Info("agent stopped", "unacked_envelopes", st.Entries, "dropped_events", b.Dropped.Load(),
		"sent", exp.Stats.Sent.Load(), "acked", exp.Stats.Acked.Load())
	return err
}

// openSpool opens the spool under stateDir and says what it recovered.
func openSpool(stateDir string, maxBytes int64, log *slog.Logger) (*spool.Spool, error) {
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	sp, err := spool.Open(filepath.Join(stateDir, "spool"), spool.Options{MaxBytes: maxBytes})
	if err != nil {
		return nil, err
	}
	if r := sp.Recovered(); !r.Clean() {
		log.Warn("spool recovered after a crash", "recovery", r.String())
	}
	if st := sp.Stats(); st.Entries > 0 {
		log.Info("resuming with spooled envelopes", "envelopes", st.Entries, "bytes", st.Bytes)
	}
	return sp, nil
}

// pump runs the source into the pipeline until ctx ends, with config reloads.
func (c *Config) pump(ctx context.Context, log *slog.Logger, src *conntrack.Source, p *Pipeline) error {
	go func() {
		if err := config.Watch(ctx, c.ConfigFile, log, func(n *config.Config) {
			p.SetConfig(n)
			log.Info("config reloaded", "file", c.ConfigFile)
		}); err != nil {
			log.Error("config watch stopped; keeping the current config", "err", err)
		}
	}()
	flows := make(chan conntrack.Flow, 4096)
	srcErr := make(chan error, 1)
	go func() { srcErr <- src.Run(ctx, flows); close(flows) }()
	log.Info("agent running", "collector", c.Collector, "netns", c.NetNS, "stdout", c.Stdout)
	if err := p.Run(ctx, flows, c.BatchInterval); err != nil {
		return err
	}
	if err := <-srcErr; err != nil && ctx.Err() == nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	return nil
}

// drainPoll is how often drain looks at the spool: it has no signal for
// "empty", and acks come at most a round trip apart anyway.
const drainPoll = 20 * time.Millisecond

// drain gives the exporter up to timeout to send what is spooled; it ends
// early when the spool is empty or the exporter stopped. Whatever remains is
// sent by the next start.
func drain(sp *spool.Spool, expDone <-chan struct{}, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for sp.Stats().Entries > 0 {
		select {
		case <-deadline.C:
			return
		case <-expDone:
			return
		case <-tick.C:
		}
	}
}

func (c *Config) saveVersions(ctx context.Context, log *slog.Logger, p *Pipeline) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.SaveVersion(c.StateDir); err != nil {
				log.Warn("saving version clock", "err", err)
			}
		}
	}
}

// token is the bearer token of Token or TokenFile ("" = none).
func (c *Config) token() (string, error) {
	if c.TokenFile == "" {
		return c.Token, nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("--token-file %s is empty", c.TokenFile)
	}
	return t, nil
}

// credentials builds the TLS configuration; nil means plaintext.
func (c *Config) credentials() (credentials.TransportCredentials, error) {
	if c.TLSCA == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", c.TLSCA)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: c.TLSServerName, MinVersion: tls.VersionTLS12}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}
