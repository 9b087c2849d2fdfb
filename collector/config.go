package collector

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/store"
)

// Config is everything `flowlog serve` can be told. DefaultConfig holds the
// defaults, the flags' included (cmd/flowlog reads them from it); a zero
// value means zero: off, none or unlimited where the field says so.
type Config struct {
	// Store is where flows live and which engine runs them.
	Store store.Config

	// NetmakerDatabase, with a ClickHouse server engine, is the database
	// Netmaker's server reads: a view named like Netmaker's flows table is
	// created there over our merged flows (store.NetmakerView). Empty: none.
	NetmakerDatabase string

	GRPCAddr  string // agents connect here
	HTTPAddr  string // the API, the page, /metrics, /readyz
	DebugAddr string // Go's profiler (debug.go), loopback only; empty: off
	// AddrFile, if set, receives the bound addresses once both listeners
	// serve, as JSON {"grpc":"host:port","http":"host:port"}: scripts and
	// tests that listen on port 0 learn the ports without reading logs.
	AddrFile string

	GoMemoryLimit int64 // soft limit of the Go heap, bytes; GOMEMLIMIT wins; 0: none
	// GoGCPercent: the Go heap grows this many percent over what is live
	// before a collection (GOGC; the environment's wins); 0: Go's 100.
	// Default 25: under the 100-stream bench the live heap is ~240 MB,
	// most of it fixed (the recent flows, the batches and blocks being
	// inserted), and little garbage is made (~11 MB/s: the preparations
	// and inserts reuse their memory), so a collection every few seconds
	// costs ~1% of a core, where Go's 100 let the heap fill the 500 MB
	// limit (BENCHMARKS.md "Go heap under load"). A lower limit would do
	// that too, but not relative to what is live: 10,000 agents' streams
	// hold ~300 MB, and a limit under that collects without end.
	GoGCPercent int

	// Agents: TLS of the gRPC listener and who may report as whom.
	TLSCert, TLSKey      string // the gRPC server certificate; empty: plaintext (loopback only unless GRPCPlaintext)
	TLSClientCA          string // require client certificates this CA signed (mutual TLS)
	Identities           string // identities file (auth.Load), hot-reloaded
	AllowUnauthenticated bool   // accept agents without an identity too
	GRPCPlaintext        bool   // allow plaintext on a non-loopback GRPCAddr

	// Ingest: group commit and limits (ingest.Options).
	FlushRows       int
	FlushInterval   time.Duration
	MaxPendingRows  int
	InsertWriters   int
	MaxEvents       int // per envelope
	MaxMessageBytes int
	MaxStreams      int
	// Protection against abusive agents: rate (events/s per host, 0 =
	// unlimited), burst (0 = twice the rate), stall timeout (0 = never).
	IngestRate         int
	IngestBurst        int
	StreamStallTimeout time.Duration
	// The same in bytes (0 = unlimited; burst 0 = twice the rate).
	IngestRateBytes, IngestBurstBytes int
	// Streams one host, one client address may hold (0 = no cap); a
	// stream idle this long is ended (0 = never).
	MaxStreamsPerHost, MaxStreamsPerAddress int
	StreamIdleTimeout                       time.Duration
	GRPCMaxHeaderBytes                      int // a stream's metadata, bytes
	// Rejected events' bodies kept per host: bytes per second (0 =
	// unlimited) and bucket; past it only reasons and 128 bytes.
	RejectedRateBytes, RejectedBurstBytes int
	// TrustedProxies: comma-separated CIDRs of TLS-terminating proxies in
	// front of the gRPC listener, whose X-Forwarded-For (or, with
	// ProxyProtocol, PROXY protocol header) names the agent's address.
	TrustedProxies string
	ProxyProtocol  bool
	// ReadyMaxCommitStall: /readyz fails when received rows have waited
	// this long without a commit succeeding.
	ReadyMaxCommitStall time.Duration

	StreamBuffer int // live tail: events buffered per client
	// Live tails open at once, and per reader (client address when the
	// API is open).
	MaxTails, MaxTailsPerReader int

	// IPDBDir holds the IP databases that name external endpoints (AS
	// number and name, country: package ipdb); empty: the cache of make
	// setup (ipdb.DefaultDir). Missing files: no enrichment, logged once.
	IPDBDir string

	// HTTP: readers (bearer tokens), anonymous access, TLS, limits.
	Readers            string // readers file (auth.LoadReaders), hot-reloaded; empty: the API is open
	HTTPAllowAnonymous bool   // allow an open API on a non-loopback HTTPAddr
	HTTPTLSCert        string
	HTTPTLSKey         string
	HTTPLimits         api.HTTPLimits
	// HTTPCORSOrigins: web pages of these origins may call the API
	// (comma-separated scheme://host[:port], or *); empty: same origin only.
	HTTPCORSOrigins string

	// ShutdownTimeout bounds shutdown: answering and committing what was
	// received. Run returns when it passes, whatever still hangs.
	ShutdownTimeout time.Duration

	Log *slog.Logger // nil: slog.Default()
}

// DefaultConfig is the collector as `flowlog serve` runs it without flags.
func DefaultConfig() Config {
	return Config{
		Store: store.Config{DataDir: "./data", EngineCacheBytes: store.DefaultEngineCacheBytes, Options: store.Options{
			Database: "flowlog", Retention: store.DefaultRetention, RollupEvery: store.DefaultRollupEvery,
			MaxQueryTime: store.DefaultMaxQueryTime, MaxQueryMemory: store.DefaultMaxQueryMemory,
			MaxQueryRows: store.DefaultMaxQueryRows, MaxOffset: store.DefaultMaxOffset,
			StaleAfter: store.DefaultStaleAfter, PeerSkew: store.DefaultPeerSkew,
		}},
		GRPCAddr:           "127.0.0.1:50051",
		HTTPAddr:           "127.0.0.1:8080",
		GoMemoryLimit:      500 << 20,
		GoGCPercent:        25,
		FlushRows:          ingest.DefaultFlushRows,
		FlushInterval:      ingest.DefaultFlushInterval,
		MaxPendingRows:     ingest.DefaultMaxPendingRows,
		InsertWriters:      ingest.DefaultWriters,
		MaxEvents:          ingest.DefaultMaxEventsPerEnv,
		MaxMessageBytes:    ingest.DefaultMaxMessageBytes,
		MaxStreams:         ingest.DefaultMaxStreams,
		IngestRate:         50_000,
		StreamStallTimeout: ingest.DefaultStallTimeout,
		IngestRateBytes:    ingest.DefaultRateBytes,
		MaxStreamsPerHost:  ingest.DefaultMaxStreamsPerHost, MaxStreamsPerAddress: ingest.DefaultMaxStreamsPerAddress,
		StreamIdleTimeout:  ingest.DefaultStreamIdleTimeout,
		GRPCMaxHeaderBytes: ingest.DefaultMaxHeaderBytes,
		RejectedRateBytes:  ingest.DefaultRejectedBytesRate, RejectedBurstBytes: ingest.DefaultRejectedBytesBurst,
		ReadyMaxCommitStall: ingest.DefaultMaxCommitStall,
		StreamBuffer:        api.DefaultStreamBuffer,
		MaxTails:            api.DefaultMaxTails, MaxTailsPerReader: api.DefaultMaxTailsPerReader,
		HTTPLimits: api.HTTPLimits{
			ReadHeaderTimeout: api.DefaultReadHeaderTimeout, ReadTimeout: api.DefaultReadTimeout,
			WriteTimeout: api.DefaultWriteTimeout, IdleTimeout: api.DefaultIdleTimeout,
			MaxHeaderBytes: api.DefaultMaxHeaderBytes,
		},
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate refuses settings that cannot work, naming the flag of
// `flowlog serve` that sets them.
func (c *Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"--flush-rows", c.FlushRows}, {"--max-pending-rows", c.MaxPendingRows},
		{"--max-events-per-envelope", c.MaxEvents}, {"--max-message-bytes", c.MaxMessageBytes},
		{"--max-streams", c.MaxStreams}, {"--insert-writers", c.InsertWriters},
		{"--stream-buffer", c.StreamBuffer},
		{"--grpc-max-header-bytes", c.GRPCMaxHeaderBytes},
	} {
		if f.v < 1 {
			return fmt.Errorf("%s must be at least 1, got %d", f.name, f.v)
		}
	}
	if c.Store.Cluster != "" && c.Store.ClickHouseURL == "" {
		return fmt.Errorf("--clickhouse-cluster needs --clickhouse (the embedded engine is one machine)")
	}
	if c.NetmakerDatabase != "" && c.Store.ClickHouseURL == "" {
		return fmt.Errorf("--netmaker-database needs --clickhouse (Netmaker's server reads a ClickHouse server)")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"--ingest-rate-bytes", int64(c.IngestRateBytes)}, {"--ingest-burst-bytes", int64(c.IngestBurstBytes)},
		{"--max-streams-per-host", int64(c.MaxStreamsPerHost)}, {"--max-streams-per-address", int64(c.MaxStreamsPerAddress)},
		{"--rejected-rate-bytes", int64(c.RejectedRateBytes)}, {"--rejected-burst-bytes", int64(c.RejectedBurstBytes)},
		{"--stream-idle-timeout", int64(c.StreamIdleTimeout)}, {"--ready-max-commit-stall", int64(c.ReadyMaxCommitStall)},
		{"--query-timeout", int64(c.Store.MaxQueryTime)}, {"--query-max-memory", c.Store.MaxQueryMemory},
		{"--query-max-rows", c.Store.MaxQueryRows}, {"--max-offset", int64(c.Store.MaxOffset)},
		{"--max-tails", int64(c.MaxTails)}, {"--max-tails-per-reader", int64(c.MaxTailsPerReader)},
		{"--stale-after", int64(c.Store.StaleAfter)}, {"--peer-skew", int64(c.Store.PeerSkew)},
		{"--engine-cache-size", c.Store.EngineCacheBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s must not be negative (0 turns it off)", f.name)
		}
	}
	if _, err := c.trustedProxies(); err != nil {
		return err
	}
	if c.ProxyProtocol && c.TrustedProxies == "" {
		return fmt.Errorf("--proxy-protocol needs --trusted-proxies: only a trusted proxy may say who the agent is")
	}
	if _, err := api.ParseCORSOrigins(c.HTTPCORSOrigins); err != nil {
		return fmt.Errorf("--http-cors-origins: %w", err)
	}
	if c.FlushInterval <= 0 || c.ShutdownTimeout <= 0 {
		return fmt.Errorf("--flush-interval and --shutdown-timeout must be positive")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return fmt.Errorf("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")
	}
	if err := c.grpcPolicy().Check(c.GRPCAddr, !auth.KnownNotLoopback(c.GRPCAddr)); err != nil {
		return err // names are checked again once listening
	}
	if c.MaxPendingRows < c.FlushRows {
		return fmt.Errorf("--max-pending-rows (%d) must be at least --flush-rows (%d)", c.MaxPendingRows, c.FlushRows)
	}
	if err := c.validateHTTP(); err != nil {
		return err
	}
	return c.validateProtection()
}

// validateProtection refuses abuse limits that cannot work.
func (c *Config) validateProtection() error {
	if c.IngestRate < 0 || c.IngestBurst < 0 {
		return fmt.Errorf("--ingest-rate and --ingest-burst must not be negative")
	}
	if c.IngestRate > 0 && c.IngestBurst > 0 && c.IngestBurst < c.MaxEvents {
		return fmt.Errorf("--ingest-burst (%d) must be at least --max-events-per-envelope (%d): a full envelope would never pass", c.IngestBurst, c.MaxEvents)
	}
	if c.StreamStallTimeout < 0 {
		return fmt.Errorf("--stream-stall-timeout must not be negative (0 turns it off)")
	}
	l := c.HTTPLimits
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"--http-read-header-timeout", l.ReadHeaderTimeout}, {"--http-read-timeout", l.ReadTimeout},
		{"--http-write-timeout", l.WriteTimeout}, {"--http-idle-timeout", l.IdleTimeout},
	} {
		if f.d <= 0 {
			return fmt.Errorf("%s must be positive, got %s", f.name, f.d)
		}
	}
	if l.MaxHeaderBytes < 1024 {
		return fmt.Errorf("--http-max-header-bytes must be at least 1024, got %d", l.MaxHeaderBytes)
	}
	return nil
}

// grpcPolicy is what the gRPC listener may do (auth.ListenerPolicy):
// plaintext and unauthenticated agents are allowed on loopback only, unless
// GRPCPlaintext and AllowUnauthenticated say otherwise.
func (c *Config) grpcPolicy() auth.ListenerPolicy {
	return auth.ListenerPolicy{TLS: c.TLSCert != "", Plaintext: c.GRPCPlaintext, Identities: c.Identities != "", AllowUnauthenticated: c.AllowUnauthenticated}
}

// ingestOptions are the ingest service's settings; the hooks (commit,
// metrics, authentication) are added by Run.
func (c *Config) ingestOptions() ingest.Options {
	proxies, _ := c.trustedProxies() // checked by Validate
	return ingest.Options{
		FlushRows: c.FlushRows, FlushInterval: c.FlushInterval, MaxPendingRows: c.MaxPendingRows, Writers: c.InsertWriters,
		MaxEventsPerEnv: c.MaxEvents, MaxMessageBytes: c.MaxMessageBytes, MaxStreams: c.MaxStreams,
		Protect: ingest.Protection{
			Rate: float64(c.IngestRate), Burst: c.IngestBurst, StallTimeout: c.StreamStallTimeout,
			RateBytes: float64(c.IngestRateBytes), BurstBytes: c.IngestBurstBytes,
			MaxStreamsPerHost: off(c.MaxStreamsPerHost), MaxStreamsPerAddress: off(c.MaxStreamsPerAddress),
			StreamIdleTimeout: off(c.StreamIdleTimeout), MaxHeaderBytes: c.GRPCMaxHeaderBytes,
			RejectedBytesRate: float64(off(c.RejectedRateBytes)), RejectedBytesBurst: c.RejectedBurstBytes,
			TrustedProxies: proxies,
		},
	}
}

// off maps this Config's "0 = off" onto the packages' options, where zero
// takes the package's default and a negative value is off.
func off[T int | int64 | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// storeOptions are Store's options with the query limits' "0 = none" mapped.
func (c *Config) storeConfig() store.Config {
	sc := c.Store
	sc.MaxQueryTime, sc.MaxQueryMemory, sc.MaxQueryRows, sc.MaxOffset =
		off(sc.MaxQueryTime), off(sc.MaxQueryMemory), off(sc.MaxQueryRows), off(sc.MaxOffset)
	return sc
}

// trustedProxies parses TrustedProxies.
func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(c.TrustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not an address or a CIDR prefix", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
