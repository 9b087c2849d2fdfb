package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/store"
	"github.com/flowlog/flowlog/store/chdb"
	"github.com/flowlog/flowlog/tail"
	"github.com/flowlog/flowlog/web"
)

type serveCmd struct {
	Data          string        `help:"Data directory of the embedded ClickHouse engine." default:"./data" env:"FLOWLOG_DATA"`
	GRPCAddr      string        `name:"grpc-addr" help:"gRPC listen address for agents." default:"127.0.0.1:50051" env:"FLOWLOG_GRPC_ADDR"`
	HTTPAddr      string        `name:"http-addr" help:"HTTP listen address for the API." default:"127.0.0.1:8080" env:"FLOWLOG_HTTP_ADDR"`
	Retention     duration      `help:"How long flows are kept (TTL), e.g. 30d or 720h." default:"30d" env:"FLOWLOG_RETENTION"`
	Database      string        `help:"ClickHouse database name." default:"flowlog" env:"FLOWLOG_DATABASE"`
	GoMemoryLimit int64         `help:"Soft limit of the Go heap in bytes (GC works harder near it); the engine's memory comes on top. GOMEMLIMIT, if set, wins. 0 = none." default:"524288000" env:"FLOWLOG_GO_MEMORY_LIMIT"`
	RollupEvery   time.Duration `help:"How often the 1-minute and 1-hour rollups of changed days are recomputed (0 = never; aggregates then read raw flows)." default:"1m" env:"FLOWLOG_ROLLUP_EVERY"`
	ChdbLib       string        `name:"chdb-lib" help:"Path of libchdb.so (default: the cache of 'make setup')." env:"FLOWLOG_CHDB_LIB"`
	TLSCert       string        `name:"tls-cert" help:"Certificate file for the gRPC listener (TLS); without it agents connect in plaintext (loopback only, unless --grpc-plaintext)." env:"FLOWLOG_TLS_CERT"`
	TLSKey        string        `name:"tls-key" help:"Key file of --tls-cert." env:"FLOWLOG_TLS_KEY"`

	TLSClientCA          string `name:"tls-client-ca" help:"Require agents to present a client certificate signed by this CA (mutual TLS); needs --tls-cert." env:"FLOWLOG_TLS_CLIENT_CA"`
	Identities           string `help:"Identities file (YAML): which client certificate or bearer token may report as which host_id and networks; reloaded when it changes." env:"FLOWLOG_IDENTITIES"`
	AllowUnauthenticated bool   `name:"allow-unauthenticated" help:"Accept agents without an identity (their events may name any host)." env:"FLOWLOG_ALLOW_UNAUTHENTICATED"`
	GRPCPlaintext        bool   `name:"grpc-plaintext" help:"Serve agents without TLS on a non-loopback --grpc-addr (loopback is always allowed)." env:"FLOWLOG_GRPC_PLAINTEXT"`

	FlushRows       int           `help:"Group commit: insert when this many rows wait." default:"50000" env:"FLOWLOG_FLUSH_ROWS"`
	FlushInterval   time.Duration `help:"Group commit: insert when the oldest row waited this long." default:"500ms" env:"FLOWLOG_FLUSH_INTERVAL"`
	MaxPendingRows  int           `help:"Rows waiting for commit beyond which agents are told to retry (overload)." default:"1000000" env:"FLOWLOG_MAX_PENDING_ROWS"`
	InsertWriters   int           `help:"Group commit: inserts running in parallel." default:"2" env:"FLOWLOG_INSERT_WRITERS"`
	MaxEvents       int           `name:"max-events-per-envelope" help:"Largest envelope accepted, in events." default:"10000" env:"FLOWLOG_MAX_EVENTS_PER_ENVELOPE"`
	MaxMessageBytes int           `help:"Largest gRPC message accepted, in bytes." default:"16777216" env:"FLOWLOG_MAX_MESSAGE_BYTES"`
	MaxStreams      int           `help:"Most concurrent agent streams." default:"1000" env:"FLOWLOG_MAX_STREAMS"`
	StreamBuffer    int           `help:"Live tail: events buffered per client; a client reading slower loses events and is told how many." default:"1024" env:"FLOWLOG_STREAM_BUFFER"`
	ShutdownTimeout time.Duration `help:"How long shutdown may take to answer and commit what was received." default:"30s" env:"FLOWLOG_SHUTDOWN_TIMEOUT"`

	Protect protectFlags    `embed:""` // --ingest-rate, --stream-stall-timeout, --http-*-timeout... (protect.go)
	HTTP    httpAccessFlags `embed:""` // --readers, --http-allow-anonymous, --http-tls-cert/key (access.go)
}

// Validate refuses settings that cannot work, naming the flag.
func (c *serveCmd) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"--flush-rows", c.FlushRows}, {"--max-pending-rows", c.MaxPendingRows},
		{"--max-events-per-envelope", c.MaxEvents}, {"--max-message-bytes", c.MaxMessageBytes},
		{"--max-streams", c.MaxStreams}, {"--insert-writers", c.InsertWriters},
		{"--stream-buffer", c.StreamBuffer},
	} {
		if f.v < 1 {
			return fmt.Errorf("%s must be at least 1, got %d", f.name, f.v)
		}
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
	if err := c.listenerPolicy().Check(c.GRPCAddr, !auth.KnownNotLoopback(c.GRPCAddr)); err != nil {
		return err // names are checked again once listening
	}
	if c.MaxPendingRows < c.FlushRows {
		return fmt.Errorf("--max-pending-rows (%d) must be at least --flush-rows (%d)", c.MaxPendingRows, c.FlushRows)
	}
	if err := c.HTTP.validate(c.HTTPAddr); err != nil {
		return err
	}
	return c.Protect.validate(c.MaxEvents)
}

func (c *serveCmd) Run(log *slog.Logger) error {
	// Under load the Go heap (envelopes in flight, batches being encoded)
	// otherwise grows to twice its live size before a GC; with the engine's
	// own memory on top that passed 1 GiB in the benchmark.
	if os.Getenv("GOMEMLIMIT") == "" && c.GoMemoryLimit > 0 {
		debug.SetMemoryLimit(c.GoMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var authn *auth.Authenticator // nil: no identities, agents are not authenticated
	if c.Identities != "" {
		set, err := auth.Load(c.Identities)
		if err != nil {
			return err
		}
		authn = auth.New(set, c.AllowUnauthenticated, log)
		go func() {
			if err := auth.Watch(ctx, c.Identities, log, authn.SetIdentities, nil); err != nil {
				log.Error("identities watch stopped; keeping the current identities", "err", err)
			}
		}()
	}

	st, err := openEmbedded(ctx, c.ChdbLib, c.Data, c.InsertWriters+2, store.Options{
		Database: c.Database, Retention: time.Duration(c.Retention), RollupEvery: c.RollupEvery, Logger: log,
	})
	if err != nil {
		return err
	}
	defer st.Close()

	hub := tail.NewHub() // live tail: committed events fan out to /api/v1/flows/stream clients
	// /metrics, /readyz and request metrics around the API (observe.go)
	obs := newObservability(st, hub, log)
	ing := ingest.New(st, ingest.Options{
		FlushRows: c.FlushRows, FlushInterval: c.FlushInterval, MaxPendingRows: c.MaxPendingRows, Writers: c.InsertWriters,
		MaxEventsPerEnv: c.MaxEvents, MaxMessageBytes: c.MaxMessageBytes, MaxStreams: c.MaxStreams, Auth: authn,
		OnCommit: hub.Publish, Metrics: obs.m, Protect: c.Protect.ingest(),
	}, log)
	grpcLn, err := net.Listen("tcp", c.GRPCAddr)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	if err := c.listenerPolicy().Check(grpcLn.Addr().String(), auth.IsLoopback(grpcLn.Addr())); err != nil {
		grpcLn.Close()
		return err
	}
	httpLn, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	if err := c.HTTP.check(httpLn.Addr().String(), auth.IsLoopback(httpLn.Addr()), log); err != nil {
		httpLn.Close()
		return err
	}
	access, err := c.HTTP.access(ctx, log) // readers' bearer tokens and networks (access.go)
	if err != nil {
		return err
	}
	httpTLS, err := c.HTTP.tlsConfig()
	if err != nil {
		return err
	}
	var opts []grpc.ServerOption
	if c.TLSCert != "" {
		cfg, err := auth.ServerTLS(c.TLSCert, c.TLSKey, c.TLSClientCA)
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	log.Info("agent authentication", "tls", c.TLSCert != "", "client_certificates", c.TLSClientCA != "",
		"identities", c.Identities, "allow_unauthenticated", c.AllowUnauthenticated || c.Identities == "")
	g := ing.GRPCServer(opts...)
	hs := &http.Server{Handler: obs.handler(api.New(api.Deps{Store: obs.store, Agg: obs.store, Hub: hub, Log: log, UI: web.Handler(),
		StreamBuffer: c.StreamBuffer}), access), TLSConfig: httpTLS}
	c.Protect.http().Apply(hs) // timeouts, header and body limits (protect.go)
	// Live-tail streams never go idle; ending them lets Shutdown finish.
	hs.RegisterOnShutdown(hub.Close)

	errc := make(chan error, 2)
	go func() { errc <- obs.ready.serveGRPC(g, grpcLn) }()
	go func() {
		if httpTLS != nil {
			errc <- hs.ServeTLS(httpLn, "", "")
			return
		}
		errc <- hs.Serve(httpLn)
	}()
	// Tests and scripts read the bound addresses from this line (ports may be :0).
	log.Info("serving", "grpc", grpcLn.Addr().String(), "http", httpLn.Addr().String(), "data", c.Data, "tls", c.TLSCert != "", "http_tls", httpTLS != nil)

	select {
	case <-ctx.Done():
		log.Info("shutting down: answering and committing what was received")
	case err := <-errc:
		log.Error("listener failed; shutting down", "err", err)
	}
	obs.ready.stopping.Store(true) // /readyz answers 503 from now on
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	ing.Shutdown(sctx, g)
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("HTTP shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// listenerPolicy is what the gRPC listener may do (auth.ListenerPolicy):
// plaintext and unauthenticated agents are allowed on loopback only, unless
// --grpc-plaintext and --allow-unauthenticated say otherwise.
func (c *serveCmd) listenerPolicy() auth.ListenerPolicy {
	return auth.ListenerPolicy{TLS: c.TLSCert != "", Plaintext: c.GRPCPlaintext, Identities: c.Identities != "", AllowUnauthenticated: c.AllowUnauthenticated}
}

// openEmbedded opens the chDB engine on dir and the flowlog schema in it.
// conns connections are opened: each runs one statement at a time, so the
// insert writers and the API's queries each need their own.
func openEmbedded(ctx context.Context, lib, dir string, conns int, o store.Options) (*store.Store, error) {
	path, err := chdb.FindLib(lib)
	if err != nil {
		return nil, err
	}
	db, err := chdb.Open(path, dir, conns)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, db, o)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	return st, nil
}
