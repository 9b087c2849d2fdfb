package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/flowlog/flowlog/agent"
	"github.com/flowlog/flowlog/agent/config"
	"github.com/flowlog/flowlog/agent/conntrack"
	"github.com/flowlog/flowlog/agent/export"
	"github.com/flowlog/flowlog/agent/spool"
)

type agentCmd struct {
	Config    string `help:"Agent config file (host, networks, participants, drops); reloaded when it changes." required:"" type:"existingfile" env:"FLOWLOG_AGENT_CONFIG"`
	Collector string `help:"Collector gRPC address." default:"127.0.0.1:50051" env:"FLOWLOG_COLLECTOR"`
	StateDir  string `help:"State directory: the spool of unacknowledged envelopes and the version clock." default:"/var/lib/flowlog-agent" env:"FLOWLOG_STATE_DIR"`
	Stdout    bool   `help:"Print events as JSON lines instead of streaming them (debugging)." env:"FLOWLOG_STDOUT"`
	NetNS     string `name:"netns" help:"Watch this network namespace's conntrack (a name under /var/run/netns or a path); default: the agent's own." env:"FLOWLOG_NETNS"`

	MetricsAddr string `name:"metrics-addr" help:"Serve /metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9464); empty: off." env:"FLOWLOG_METRICS_ADDR"`

	SpoolMaxBytes int64         `help:"Spool size limit; beyond it new events are dropped (and counted)." default:"268435456" env:"FLOWLOG_SPOOL_MAX_BYTES"`
	BatchEvents   int           `help:"Events per envelope." default:"500" env:"FLOWLOG_BATCH_EVENTS"`
	BatchInterval time.Duration `help:"Seal an envelope at least this often." default:"1s" env:"FLOWLOG_BATCH_INTERVAL"`
	Window        int           `help:"Envelopes in flight before waiting for acks." default:"8" env:"FLOWLOG_WINDOW"`
	ReadBuffer    int           `help:"Conntrack netlink receive buffer, bytes." default:"8388608" env:"FLOWLOG_CONNTRACK_READ_BUFFER"`
	BackoffMax    time.Duration `help:"Longest wait between reconnects to the collector (exponential backoff with jitter)." default:"30s" env:"FLOWLOG_BACKOFF_MAX"`
	DrainTimeout  time.Duration `help:"On SIGTERM, how long to keep sending what is spooled before exiting (the rest stays spooled)." default:"5s" env:"FLOWLOG_DRAIN_TIMEOUT"`

	TLSCA         string `name:"tls-ca" help:"CA certificate file that signs the collector's certificate." env:"FLOWLOG_TLS_CA"`
	TLSCert       string `name:"tls-cert" help:"Client certificate file (mutual TLS)." env:"FLOWLOG_TLS_CERT"`
	TLSKey        string `name:"tls-key" help:"Client key file (mutual TLS)." env:"FLOWLOG_TLS_KEY"`
	TLSServerName string `name:"tls-server-name" help:"Expected name in the collector's certificate (default: the address's host)." env:"FLOWLOG_TLS_SERVER_NAME"`
	Plaintext     bool   `help:"Connect without TLS. Required when no --tls-ca is given." env:"FLOWLOG_PLAINTEXT"`
	Token         string `help:"Bearer token sent with each stream (authorization metadata); the collector's identities file maps its SHA-256 to this host." env:"FLOWLOG_TOKEN"`
	TokenFile     string `name:"token-file" help:"File holding the bearer token (instead of --token)." env:"FLOWLOG_TOKEN_FILE"`
}

func (c *agentCmd) Validate() error {
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

// token is the bearer token of --token or --token-file ("" = none).
func (c *agentCmd) token() (string, error) {
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

func (c *agentCmd) Run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg, err := config.Load(c.Config)
	if err != nil {
		return err
	}
	src, err := conntrack.Open(conntrack.Options{NetNS: c.NetNS, ReadBuffer: c.ReadBuffer, InitialSync: true, LookupStart: true, Log: log})
	if err != nil {
		return err
	}
	defer src.Close()

	if c.Stdout {
		p := agent.NewPipeline(cfg, nil, os.Stdout)
		stopMetrics, err := c.serveMetrics(log, agentParts{src: src, pipe: p})
		if err != nil {
			return err
		}
		defer stopMetrics()
		return c.pump(ctx, log, src, p)
	}

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
	if err := os.MkdirAll(c.StateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	sp, err := spool.Open(filepath.Join(c.StateDir, "spool"), spool.Options{MaxBytes: c.SpoolMaxBytes})
	if err != nil {
		return err
	}
	defer sp.Close()
	if r := sp.Recovered(); !r.Clean() {
		log.Warn("spool recovered after a crash", "recovery", r.String())
	}
	if st := sp.Stats(); st.Entries > 0 {
		log.Info("resuming with spooled envelopes", "envelopes", st.Entries, "bytes", st.Bytes)
	}
	b := export.NewBatcher(sp, c.BatchEvents, log)
	p := agent.NewPipeline(cfg, b, nil)
	if err := p.LoadVersion(c.StateDir); err != nil {
		return err
	}
	exp := export.New(sp, export.Options{Addr: c.Collector, Creds: creds, Window: c.Window, BackoffMax: c.BackoffMax, Log: log})
	stopMetrics, err := c.serveMetrics(log, agentParts{src: src, pipe: p, spool: sp, batch: b, exp: exp})
	if err != nil {
		return err
	}
	defer stopMetrics()
	expCtx, stopExp := context.WithCancel(context.Background())
	if token != "" {
		// Every stream the exporter opens derives from expCtx, so each carries
		// the token (as per-RPC credentials would; export.Options has no dial
		// options to pass them).
		expCtx = metadata.AppendToOutgoingContext(expCtx, "authorization", "Bearer "+token)
	}
	expDone := make(chan error, 1)
	go func() { expDone <- exp.Run(expCtx) }()

	go c.saveVersions(ctx, log, p)
	err = c.pump(ctx, log, src, p)
	if serr := p.SaveVersion(c.StateDir); serr != nil {
		log.Warn("saving version clock", "err", serr)
	}
	c.drain(log, sp)
	stopExp()
	<-expDone
	st := sp.Stats()
	log.Info("agent stopped", "unacked_envelopes", st.Entries, "dropped_events", b.Dropped.Load(),
		"sent", exp.Stats.Sent.Load(), "acked", exp.Stats.Acked.Load())
	return err
}

// pump runs the source into the pipeline until ctx ends, with config reloads.
func (c *agentCmd) pump(ctx context.Context, log *slog.Logger, src *conntrack.Source, p *agent.Pipeline) error {
	go func() {
		if err := config.Watch(ctx, c.Config, log, func(n *config.Config) {
			p.SetConfig(n)
			log.Info("config reloaded", "file", c.Config)
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

// drain gives the exporter a moment to send what is spooled before exit;
// whatever remains is sent by the next start.
func (c *agentCmd) drain(log *slog.Logger, sp *spool.Spool) {
	deadline := time.Now().Add(c.DrainTimeout)
	for sp.Stats().Entries > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *agentCmd) saveVersions(ctx context.Context, log *slog.Logger, p *agent.Pipeline) {
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

// credentials builds the TLS configuration; nil means plaintext.
func (c *agentCmd) credentials() (credentials.TransportCredentials, error) {
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
