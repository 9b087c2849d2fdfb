package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/alecthomas/kong"

	"github.com/flowlog/flowlog/agent"
)

// agentCmd is `flowlog agent`: flags onto agent.Config, whose DefaultConfig
// is where every default comes from (agentVars).
type agentCmd struct {
	Config    string `help:"Agent config file (host, networks, participants, drops); reloaded when it changes." required:"" type:"existingfile" env:"FLOWLOG_AGENT_CONFIG"`
	Collector string `help:"Collector gRPC address." default:"${agent_collector}" env:"FLOWLOG_COLLECTOR"`
	StateDir  string `help:"State directory: the spool of unacknowledged envelopes and the version clock." default:"${agent_state_dir}" env:"FLOWLOG_STATE_DIR"`
	Stdout    bool   `help:"Print events as JSON lines instead of streaming them (debugging)." env:"FLOWLOG_STDOUT"`
	NetNS     string `name:"netns" help:"Watch this network namespace's conntrack (a name under /var/run/netns or a path); default: the agent's own." env:"FLOWLOG_NETNS"`

	MetricsAddr string `name:"metrics-addr" help:"Serve /metrics, /healthz and /readyz on this address (e.g. 127.0.0.1:9464); empty: off." env:"FLOWLOG_METRICS_ADDR"`

	SpoolMaxBytes  int64         `help:"Spool size limit; beyond it new events are dropped (and counted)." default:"${agent_spool_max_bytes}" env:"FLOWLOG_SPOOL_MAX_BYTES"`
	BatchEvents    int           `help:"Events per envelope." default:"${agent_batch_events}" env:"FLOWLOG_BATCH_EVENTS"`
	BatchInterval  time.Duration `help:"Seal an envelope at least this often." default:"${agent_batch_interval}" env:"FLOWLOG_BATCH_INTERVAL"`
	Window         int           `help:"Envelopes in flight before waiting for acks." default:"${agent_window}" env:"FLOWLOG_WINDOW"`
	ReadBuffer     int           `help:"Conntrack netlink receive buffer, bytes." default:"${agent_read_buffer}" env:"FLOWLOG_CONNTRACK_READ_BUFFER"`
	BackoffMax     time.Duration `help:"Longest wait between reconnects to the collector (exponential backoff with jitter)." default:"${agent_backoff_max}" env:"FLOWLOG_BACKOFF_MAX"`
	ActiveTimeout  time.Duration `help:"Report open flows again with their counters so far this often, so bytes land when they flowed (0 = off; a stock Netmaker collector stores each report as one more row)." default:"${agent_active_timeout}" env:"FLOWLOG_AGENT_ACTIVE_TIMEOUT"`
	ResyncInterval time.Duration `help:"Dump conntrack this often and close announced flows that are gone (0 = only at start and after netlink overruns)." default:"${agent_resync_interval}" env:"FLOWLOG_AGENT_RESYNC_INTERVAL"`
	DrainTimeout   time.Duration `help:"On SIGTERM, how long to keep sending what is spooled before exiting (the rest stays spooled)." default:"${agent_drain_timeout}" env:"FLOWLOG_DRAIN_TIMEOUT"`

	TLSCA         string `name:"tls-ca" help:"CA certificate file that signs the collector's certificate." env:"FLOWLOG_AGENT_TLS_CA"`
	TLSCert       string `name:"tls-cert" help:"Client certificate file (mutual TLS)." env:"FLOWLOG_AGENT_TLS_CERT"`
	TLSKey        string `name:"tls-key" help:"Client key file (mutual TLS)." env:"FLOWLOG_AGENT_TLS_KEY"`
	TLSServerName string `name:"tls-server-name" help:"Expected name in the collector's certificate (default: the address's host)." env:"FLOWLOG_AGENT_TLS_SERVER_NAME"`
	Plaintext     bool   `help:"Connect without TLS. Required when no --tls-ca is given." env:"FLOWLOG_PLAINTEXT"`
	Token         string `help:"Bearer token sent with each stream (authorization metadata); the collector's identities file maps its SHA-256 to this host." env:"FLOWLOG_AGENT_TOKEN"`
	TokenFile     string `name:"token-file" help:"File holding the bearer token (instead of --token)." env:"FLOWLOG_AGENT_TOKEN_FILE"`
}

// agentVars are the flags' defaults, from agent.DefaultConfig.
func agentVars() kong.Vars {
	d := agent.DefaultConfig()
	return kong.Vars{
		"agent_collector": d.Collector, "agent_state_dir": d.StateDir,
		"agent_spool_max_bytes": itoa(d.SpoolMaxBytes), "agent_batch_events": itoa(d.BatchEvents),
		"agent_batch_interval": dur(d.BatchInterval), "agent_window": itoa(d.Window),
		"agent_read_buffer": itoa(d.ReadBuffer), "agent_backoff_max": dur(d.BackoffMax),
		"agent_drain_timeout": dur(d.DrainTimeout), "agent_active_timeout": dur(d.ActiveTimeout),
		"agent_resync_interval": dur(d.ResyncInterval),
	}
}

// config maps the flags onto the agent's Config.
func (c *agentCmd) config(log *slog.Logger) agent.Config {
	return agent.Config{
		ConfigFile: c.Config, Collector: c.Collector, StateDir: c.StateDir, Stdout: c.Stdout, NetNS: c.NetNS,
		MetricsAddr: c.MetricsAddr, SpoolMaxBytes: c.SpoolMaxBytes, BatchEvents: c.BatchEvents,
		BatchInterval: c.BatchInterval, Window: c.Window, ReadBuffer: c.ReadBuffer, BackoffMax: c.BackoffMax,
		DrainTimeout: c.DrainTimeout, ActiveTimeout: c.ActiveTimeout, ResyncInterval: c.ResyncInterval, TLSCA: c.TLSCA, TLSCert: c.TLSCert, TLSKey: c.TLSKey,
		TLSServerName: c.TLSServerName, Plaintext: c.Plaintext, Token: c.Token, TokenFile: c.TokenFile, Log: log,
	}
}

func (c *agentCmd) Validate() error {
	cfg := c.config(nil)
	return cfg.Validate()
}

func (c *agentCmd) Run(ctx context.Context, log *slog.Logger) error {
	return agent.Run(ctx, c.config(log))
}
