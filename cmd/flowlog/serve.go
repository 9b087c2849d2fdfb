package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/alecthomas/kong"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/cli"
	"github.com/flowlog/flowlog/collector"
	"github.com/flowlog/flowlog/store"
)

// serveCmd is `flowlog serve`: flags onto collector.Config, whose
// DefaultConfig is where every default comes from (serveVars).
type serveCmd struct {
	Data              string        `help:"Data directory of the embedded ClickHouse engine." default:"${serve_data}" env:"FLOWLOG_DATA"`
	GRPCAddr          string        `name:"grpc-addr" help:"gRPC listen address for agents." default:"${serve_grpc_addr}" env:"FLOWLOG_GRPC_ADDR"`
	HTTPAddr          string        `name:"http-addr" help:"HTTP listen address for the API." default:"${serve_http_addr}" env:"FLOWLOG_HTTP_ADDR"`
	DebugAddr         string        `name:"debug-addr" help:"Serve Go's profiler (net/http/pprof) on this loopback address; empty = off." env:"FLOWLOG_DEBUG_ADDR"`
	AddrFile          string        `name:"addr-file" help:"Once serving, write the bound addresses to this file as JSON {\"grpc\":\"host:port\",\"http\":\"host:port\"} (for scripts listening on port 0)." env:"FLOWLOG_ADDR_FILE"`
	Retention         cli.Duration  `help:"How long flows are kept (TTL), e.g. 30d or 720h." default:"${serve_retention}" env:"FLOWLOG_RETENTION"`
	Database          string        `help:"ClickHouse database name." default:"${serve_database}" env:"FLOWLOG_DATABASE"`
	GoMemoryLimit     int64         `help:"Soft limit of the Go heap in bytes (GC works harder near it); the engine's memory comes on top. GOMEMLIMIT, if set, wins. 0 = none." default:"${serve_go_memory_limit}" env:"FLOWLOG_GO_MEMORY_LIMIT"`
	GoGCPercent       int           `name:"go-gc-percent" help:"The Go heap grows this many percent over its live size before a collection. GOGC, if set, wins. 0 = Go's default (100)." default:"${serve_go_gc_percent}" env:"FLOWLOG_GO_GC_PERCENT"`
	EngineCacheSize   int64         `name:"engine-cache-size" help:"Memory the embedded engine's caches (marks, indexes, query conditions, compiled expressions) may hold together, bytes; more only helps queries over billions of flows. 0 = the engine's defaults (half the RAM for marks alone)." default:"${serve_engine_cache_size}" env:"FLOWLOG_ENGINE_CACHE_SIZE"`
	StaleAfter        cli.Duration  `name:"stale-after" help:"An open flow with no event for this long is stale: listed as such, not counted as active (its agent is gone or lost its DESTROY); e.g. 6d." default:"${serve_stale_after}" env:"FLOWLOG_STALE_AFTER"`
	PeerSkew          time.Duration `name:"peer-skew" help:"Two hosts' observations of one connection match when their starts are at most this far apart (their clocks differ)." default:"${serve_peer_skew}" env:"FLOWLOG_PEER_SKEW"`
	RollupEvery       time.Duration `help:"How often the 1-minute and 1-hour rollups of changed days are recomputed (0 = never; aggregates then read raw flows)." default:"${serve_rollup_every}" env:"FLOWLOG_ROLLUP_EVERY"`
	ClickHouse        string        `name:"clickhouse" help:"Store flows in this ClickHouse server (its HTTP interface, every replica to fail over to, credentials): https://user:pass@ch1:8443,ch2:8443. Default: the embedded engine." env:"FLOWLOG_CLICKHOUSE"`
	ClickHouseCluster string        `name:"clickhouse-cluster" help:"Cluster mode on --clickhouse: this cluster's Replicated tables behind Distributed ones (DDL ON CLUSTER)." env:"FLOWLOG_CLICKHOUSE_CLUSTER"`
	ClickHouseCA      string        `name:"clickhouse-ca" help:"CA certificate file that signed the ClickHouse servers' certificates (default: the system's roots)." env:"FLOWLOG_CLICKHOUSE_CA"`
	NetmakerDatabase  string        `name:"netmaker-database" help:"With --clickhouse: create, in this database Netmaker's server reads, a flows view over ours (docs/deployment.md)." env:"FLOWLOG_NETMAKER_DATABASE"`
	ChdbLib           string        `name:"chdb-lib" help:"Path of libchdb.so (default: the cache of 'make setup')." env:"FLOWLOG_CHDB_LIB"`
	IPDBDir           string        `name:"ipdb-dir" help:"Directory of the IP databases that name external endpoints by AS and country (default: the cache of 'make setup'; missing files: no naming, logged)." env:"FLOWLOG_IPDB_DIR"`
	TLSCert           string        `name:"tls-cert" help:"Certificate file for the gRPC listener (TLS); without it agents connect in plaintext (loopback only, unless --grpc-plaintext)." env:"FLOWLOG_GRPC_TLS_CERT"`
	TLSKey            string        `name:"tls-key" help:"Key file of --tls-cert." env:"FLOWLOG_GRPC_TLS_KEY"`

	TLSClientCA          string `name:"tls-client-ca" help:"Require agents to present a client certificate signed by this CA (mutual TLS); needs --tls-cert." env:"FLOWLOG_TLS_CLIENT_CA"`
	Identities           string `help:"Identities file (YAML): which client certificate or bearer token may report as which host_id and networks; reloaded when it changes." env:"FLOWLOG_IDENTITIES"`
	AllowUnauthenticated bool   `name:"allow-unauthenticated" help:"Accept agents without an identity (their events may name any host)." env:"FLOWLOG_ALLOW_UNAUTHENTICATED"`
	GRPCPlaintext        bool   `name:"grpc-plaintext" help:"Serve agents without TLS on a non-loopback --grpc-addr (loopback is always allowed)." env:"FLOWLOG_GRPC_PLAINTEXT"`

	FlushRows       int           `help:"Group commit: insert when this many rows wait." default:"${serve_flush_rows}" env:"FLOWLOG_FLUSH_ROWS"`
	FlushInterval   time.Duration `help:"Group commit: insert when the oldest row waited this long." default:"${serve_flush_interval}" env:"FLOWLOG_FLUSH_INTERVAL"`
	MaxPendingRows  int           `help:"Rows waiting for commit beyond which agents are told to retry (overload)." default:"${serve_max_pending_rows}" env:"FLOWLOG_MAX_PENDING_ROWS"`
	InsertWriters   int           `help:"Group commit: inserts running in parallel." default:"${serve_insert_writers}" env:"FLOWLOG_INSERT_WRITERS"`
	MaxEvents       int           `name:"max-events-per-envelope" help:"Largest envelope accepted, in events." default:"${serve_max_events}" env:"FLOWLOG_MAX_EVENTS_PER_ENVELOPE"`
	MaxMessageBytes int           `help:"Largest gRPC message accepted, in bytes." default:"${serve_max_message_bytes}" env:"FLOWLOG_MAX_MESSAGE_BYTES"`
	MaxStreams      int           `help:"Most concurrent agent streams." default:"${serve_max_streams}" env:"FLOWLOG_MAX_STREAMS"`
	StreamBuffer    int           `help:"Live tail: events buffered per client; a client reading slower loses events and is told how many." default:"${serve_stream_buffer}" env:"FLOWLOG_STREAM_BUFFER"`
	ShutdownTimeout time.Duration `help:"How long shutdown may take to answer and commit what was received; past it the collector exits with status 1 and agents resend what was not acknowledged." default:"${serve_shutdown_timeout}" env:"FLOWLOG_SHUTDOWN_TIMEOUT"`

	// Abuse limits (SECURITY.md).
	IngestRate           int           `name:"ingest-rate" help:"Events per second one agent host may send (its authenticated host_id, else its IP address); more is answered success=false, retry later. 0: unlimited." default:"${serve_ingest_rate}" env:"FLOWLOG_INGEST_RATE"`
	IngestBurst          int           `name:"ingest-burst" help:"Events a host may send at once above --ingest-rate (token bucket size); 0: twice the rate. At least --max-events-per-envelope." default:"${serve_ingest_burst}" env:"FLOWLOG_INGEST_BURST"`
	IngestRateBytes      int           `name:"ingest-rate-bytes" help:"Envelope bytes per second one agent host may send (huge events cost as much as many small ones). 0: unlimited." default:"${serve_ingest_rate_bytes}" env:"FLOWLOG_INGEST_RATE_BYTES"`
	IngestBurstBytes     int           `name:"ingest-burst-bytes" help:"Bytes a host may send at once above --ingest-rate-bytes; 0: twice the rate." default:"0" env:"FLOWLOG_INGEST_BURST_BYTES"`
	MaxStreamsPerHost    int           `name:"max-streams-per-host" help:"Streams one agent host may hold (authenticated, or as its events claim); at the cap its longest-idle stream makes room. 0: no cap." default:"${serve_max_streams_per_host}" env:"FLOWLOG_MAX_STREAMS_PER_HOST"`
	MaxStreamsPerAddress int           `name:"max-streams-per-address" help:"Streams one client address may hold. 0: no cap." default:"${serve_max_streams_per_address}" env:"FLOWLOG_MAX_STREAMS_PER_ADDRESS"`
	StreamIdleTimeout    time.Duration `name:"stream-idle-timeout" help:"End an agent stream that sent nothing and is owed nothing this long (leaked streams). 0: never." default:"${serve_stream_idle_timeout}" env:"FLOWLOG_STREAM_IDLE_TIMEOUT"`
	GRPCMaxHeaderBytes   int           `name:"grpc-max-header-bytes" help:"Largest gRPC metadata of a stream, bytes." default:"${serve_grpc_max_header_bytes}" env:"FLOWLOG_GRPC_MAX_HEADER_BYTES"`
	RejectedRateBytes    int           `name:"rejected-rate-bytes" help:"Bytes of rejected events' bodies kept per second per host (each cut to 4 KiB, with its size and SHA-256); past it only reasons. 0: unlimited." default:"${serve_rejected_rate_bytes}" env:"FLOWLOG_REJECTED_RATE_BYTES"`
	RejectedBurstBytes   int           `name:"rejected-burst-bytes" help:"Bucket of --rejected-rate-bytes." default:"${serve_rejected_burst_bytes}" env:"FLOWLOG_REJECTED_BURST_BYTES"`
	TrustedProxies       string        `name:"trusted-proxies" help:"Comma-separated addresses or CIDRs of TLS-terminating proxies in front of the gRPC listener: their X-Forwarded-For (or PROXY protocol header) names the agent." env:"FLOWLOG_TRUSTED_PROXIES"`
	ProxyProtocol        bool          `name:"proxy-protocol" help:"Read a PROXY protocol (v1/v2) header on connections from --trusted-proxies." env:"FLOWLOG_PROXY_PROTOCOL"`
	ReadyMaxCommitStall  time.Duration `name:"ready-max-commit-stall" help:"/readyz fails when received rows waited this long without a commit succeeding." default:"${serve_ready_max_commit_stall}" env:"FLOWLOG_READY_MAX_COMMIT_STALL"`
	MaxTails             int           `name:"max-tails" help:"Live tails open at once; more are answered 429." default:"${serve_max_tails}" env:"FLOWLOG_MAX_TAILS"`
	MaxTailsPerReader    int           `name:"max-tails-per-reader" help:"Live tails of one reader (one client address when the API is open)." default:"${serve_max_tails_per_reader}" env:"FLOWLOG_MAX_TAILS_PER_READER"`
	QueryTimeout         time.Duration `name:"query-timeout" help:"Longest a read query may run (ClickHouse max_execution_time); past it 503. 0: none." default:"${serve_query_timeout}" env:"FLOWLOG_QUERY_TIMEOUT"`
	QueryMaxMemory       int64         `name:"query-max-memory" help:"Memory one read query may use, bytes (max_memory_usage). 0: none." default:"${serve_query_max_memory}" env:"FLOWLOG_QUERY_MAX_MEMORY"`
	QueryMaxRows         int64         `name:"query-max-rows" help:"Rows one read query may read (max_rows_to_read). 0: none." default:"${serve_query_max_rows}" env:"FLOWLOG_QUERY_MAX_ROWS"`
	MaxOffset            int           `name:"max-offset" help:"Deepest offset page (page x per_page) of /api/v1/flows; deeper pages get a 400 pointing to cursor paging. 0: none." default:"${serve_max_offset}" env:"FLOWLOG_MAX_OFFSET"`
	StreamStallTimeout   time.Duration `name:"stream-stall-timeout" help:"End an agent stream whose acks could not be sent this long (the agent stopped reading). 0: never." default:"${serve_stream_stall_timeout}" env:"FLOWLOG_STREAM_STALL_TIMEOUT"`

	HTTPReadHeaderTimeout time.Duration `name:"http-read-header-timeout" help:"HTTP: time to read a request's headers." default:"${serve_http_read_header_timeout}" env:"FLOWLOG_HTTP_READ_HEADER_TIMEOUT"`
	HTTPReadTimeout       time.Duration `name:"http-read-timeout" help:"HTTP: time to read a whole request." default:"${serve_http_read_timeout}" env:"FLOWLOG_HTTP_READ_TIMEOUT"`
	HTTPWriteTimeout      time.Duration `name:"http-write-timeout" help:"HTTP: time to answer a request, its query included (the live tail is exempt)." default:"${serve_http_write_timeout}" env:"FLOWLOG_HTTP_WRITE_TIMEOUT"`
	HTTPIdleTimeout       time.Duration `name:"http-idle-timeout" help:"HTTP: how long a keep-alive connection may wait for its next request." default:"${serve_http_idle_timeout}" env:"FLOWLOG_HTTP_IDLE_TIMEOUT"`
	HTTPMaxHeaderBytes    int           `name:"http-max-header-bytes" help:"HTTP: largest request line and headers, in bytes." default:"${serve_http_max_header_bytes}" env:"FLOWLOG_HTTP_MAX_HEADER_BYTES"`

	// Who may read over HTTP.
	Readers            string `help:"Readers file (YAML): the bearer tokens that may use the HTTP API, each with its networks and role (read, admin); reloaded when it changes. Without it the API is open: loopback only, unless --http-allow-anonymous." env:"FLOWLOG_READERS"`
	HTTPAllowAnonymous bool   `name:"http-allow-anonymous" help:"Serve the HTTP API without tokens (no --readers) on a non-loopback --http-addr." env:"FLOWLOG_HTTP_ALLOW_ANONYMOUS"`
	HTTPTLSCert        string `name:"http-tls-cert" help:"Certificate file for the HTTP listener (HTTPS); without it the API is plain HTTP." env:"FLOWLOG_HTTP_TLS_CERT"`
	HTTPCORSOrigins    string `name:"http-cors-origins" help:"Web pages of these origins may call the API (comma-separated scheme://host[:port], or *), as Netmaker's CORS_ALLOWED_ORIGIN; empty: same origin only." env:"FLOWLOG_HTTP_CORS_ORIGINS"`
	HTTPTLSKey         string `name:"http-tls-key" help:"Key file of --http-tls-cert." env:"FLOWLOG_HTTP_TLS_KEY"`
}

// serveVars are the flags' defaults, from collector.DefaultConfig.
func serveVars() kong.Vars {
	d := collector.DefaultConfig()
	return kong.Vars{
		"serve_data": d.Store.DataDir, "serve_grpc_addr": d.GRPCAddr, "serve_http_addr": d.HTTPAddr,
		"serve_retention": days(d.Store.Retention), "serve_stale_after": days(d.Store.StaleAfter), "serve_peer_skew": dur(d.Store.PeerSkew), "serve_database": d.Store.Database,
		"serve_go_memory_limit": itoa(d.GoMemoryLimit), "serve_go_gc_percent": itoa(d.GoGCPercent), "serve_engine_cache_size": itoa(d.Store.EngineCacheBytes), "serve_rollup_every": dur(d.Store.RollupEvery),
		"serve_flush_rows": itoa(d.FlushRows), "serve_flush_interval": dur(d.FlushInterval),
		"serve_max_pending_rows": itoa(d.MaxPendingRows), "serve_insert_writers": itoa(d.InsertWriters),
		"serve_max_events": itoa(d.MaxEvents), "serve_max_message_bytes": itoa(d.MaxMessageBytes),
		"serve_max_streams": itoa(d.MaxStreams), "serve_stream_buffer": itoa(d.StreamBuffer),
		"serve_shutdown_timeout": dur(d.ShutdownTimeout),
		"serve_ingest_rate":      itoa(d.IngestRate), "serve_ingest_burst": itoa(d.IngestBurst),
		"serve_stream_stall_timeout": dur(d.StreamStallTimeout),
		"serve_ingest_rate_bytes":    itoa(d.IngestRateBytes), "serve_max_streams_per_host": itoa(d.MaxStreamsPerHost),
		"serve_max_streams_per_address": itoa(d.MaxStreamsPerAddress), "serve_stream_idle_timeout": dur(d.StreamIdleTimeout),
		"serve_grpc_max_header_bytes": itoa(d.GRPCMaxHeaderBytes), "serve_rejected_rate_bytes": itoa(d.RejectedRateBytes),
		"serve_rejected_burst_bytes": itoa(d.RejectedBurstBytes), "serve_ready_max_commit_stall": dur(d.ReadyMaxCommitStall),
		"serve_max_tails": itoa(d.MaxTails), "serve_max_tails_per_reader": itoa(d.MaxTailsPerReader),
		"serve_query_timeout": dur(d.Store.MaxQueryTime), "serve_query_max_memory": itoa(d.Store.MaxQueryMemory),
		"serve_query_max_rows": itoa(d.Store.MaxQueryRows), "serve_max_offset": itoa(d.Store.MaxOffset),
		"serve_http_read_header_timeout": dur(d.HTTPLimits.ReadHeaderTimeout), "serve_http_read_timeout": dur(d.HTTPLimits.ReadTimeout),
		"serve_http_write_timeout": dur(d.HTTPLimits.WriteTimeout), "serve_http_idle_timeout": dur(d.HTTPLimits.IdleTimeout),
		"serve_http_max_header_bytes": itoa(d.HTTPLimits.MaxHeaderBytes),
	}
}

// config maps the flags onto the collector's Config.
func (c *serveCmd) config(log *slog.Logger) collector.Config {
	return collector.Config{
		Store: store.Config{DataDir: c.Data, ChdbLib: c.ChdbLib, ClickHouseURL: c.ClickHouse, ClickHouseCA: c.ClickHouseCA, EngineCacheBytes: c.EngineCacheSize,
			Options: store.Options{Database: c.Database, Retention: time.Duration(c.Retention), RollupEvery: c.RollupEvery,
				Cluster: c.ClickHouseCluster, Logger: log, MaxQueryTime: c.QueryTimeout, MaxQueryMemory: c.QueryMaxMemory,
				MaxQueryRows: c.QueryMaxRows, MaxOffset: c.MaxOffset,
				StaleAfter: time.Duration(c.StaleAfter), PeerSkew: c.PeerSkew}},
		NetmakerDatabase: c.NetmakerDatabase,
		GRPCAddr:         c.GRPCAddr, HTTPAddr: c.HTTPAddr, DebugAddr: c.DebugAddr, AddrFile: c.AddrFile, GoMemoryLimit: c.GoMemoryLimit, GoGCPercent: c.GoGCPercent,
		TLSCert: c.TLSCert, TLSKey: c.TLSKey, TLSClientCA: c.TLSClientCA, Identities: c.Identities,
		AllowUnauthenticated: c.AllowUnauthenticated, GRPCPlaintext: c.GRPCPlaintext,
		FlushRows: c.FlushRows, FlushInterval: c.FlushInterval, MaxPendingRows: c.MaxPendingRows, InsertWriters: c.InsertWriters,
		MaxEvents: c.MaxEvents, MaxMessageBytes: c.MaxMessageBytes, MaxStreams: c.MaxStreams,
		IngestRate: c.IngestRate, IngestBurst: c.IngestBurst, StreamStallTimeout: c.StreamStallTimeout,
		IngestRateBytes: c.IngestRateBytes, IngestBurstBytes: c.IngestBurstBytes,
		MaxStreamsPerHost: c.MaxStreamsPerHost, MaxStreamsPerAddress: c.MaxStreamsPerAddress,
		StreamIdleTimeout: c.StreamIdleTimeout, GRPCMaxHeaderBytes: c.GRPCMaxHeaderBytes,
		RejectedRateBytes: c.RejectedRateBytes, RejectedBurstBytes: c.RejectedBurstBytes,
		TrustedProxies: c.TrustedProxies, ProxyProtocol: c.ProxyProtocol, ReadyMaxCommitStall: c.ReadyMaxCommitStall,
		MaxTails: c.MaxTails, MaxTailsPerReader: c.MaxTailsPerReader,
		StreamBuffer: c.StreamBuffer,
		Readers:      c.Readers, HTTPAllowAnonymous: c.HTTPAllowAnonymous, HTTPTLSCert: c.HTTPTLSCert, HTTPTLSKey: c.HTTPTLSKey,
		HTTPCORSOrigins: c.HTTPCORSOrigins,
		HTTPLimits: api.HTTPLimits{
			ReadHeaderTimeout: c.HTTPReadHeaderTimeout, ReadTimeout: c.HTTPReadTimeout, WriteTimeout: c.HTTPWriteTimeout,
			IdleTimeout: c.HTTPIdleTimeout, MaxHeaderBytes: c.HTTPMaxHeaderBytes,
		},
		ShutdownTimeout: c.ShutdownTimeout,
		IPDBDir:         c.IPDBDir,
		Log:             log,
	}
}

// Validate runs before anything starts, so a bad flag is a usage error.
func (c *serveCmd) Validate() error {
	cfg := c.config(nil)
	return cfg.Validate()
}

func (c *serveCmd) Run(ctx context.Context, log *slog.Logger) error {
	if err := collector.ReexecWithSmallStacks(); err != nil { // returns only if it did not re-execute
		log.Warn("could not re-execute with small goroutine stacks; running with the runtime's default", "err", err)
	}
	col, err := collector.New(c.config(log))
	if err != nil {
		return err
	}
	return col.Run(ctx)
}
