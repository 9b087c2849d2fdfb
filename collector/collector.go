// Package collector is the whole collector of `flowlog serve`: listeners,
// probes and metrics, the identities and readers files, the store, gRPC
// ingest, the HTTP API with its live tail and page. Run starts them in that
// order and stops them in reverse; any that fails ends Run with its error.
package collector

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/store"
	"github.com/flowlog/flowlog/tail"
	"github.com/flowlog/flowlog/web"
)

// Collector is one configured collector; Run it once.
type Collector struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{} // closed once both listeners serve
	// openStore opens the store (store.Open; tests put a fake in).
	openStore func(context.Context, store.Config) (Store, error)

	mu               sync.Mutex
	grpcAddr, httpAd net.Addr
}

// New checks cfg; nothing starts until Run.
func New(cfg Config) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Collector{cfg: cfg, log: log, ready: make(chan struct{}), openStore: openStore}, nil
}

// Store is what the collector serves from: ingest inserts, the API reads
// and aggregates.
type Store interface {
	flowlog.Store
	flowlog.Aggregator
}

func openStore(ctx context.Context, c store.Config) (Store, error) {
	st, err := store.Open(ctx, c)
	if err != nil {
		return nil, err // not a nil *store.Store in a non-nil Store
	}
	return st, nil
}

// follower is a store whose commits, by every collector, the live tail can
// follow (*store.Store).
type follower interface {
	Follow(ctx context.Context, o store.FollowOptions, publish func([]flowlog.Event))
}

// netmakerView creates NetmakerDatabase's view over our flows, if asked.
func (c *Collector) netmakerView(ctx context.Context, st Store) error {
	if c.cfg.NetmakerDatabase == "" {
		return nil
	}
	v, ok := st.(interface {
		NetmakerView(ctx context.Context, database string) error
	})
	if !ok {
		return errors.New("--netmaker-database: this store cannot create Netmaker's view")
	}
	if err := v.NetmakerView(ctx, c.cfg.NetmakerDatabase); err != nil {
		return fmt.Errorf("--netmaker-database %s: %w", c.cfg.NetmakerDatabase, err)
	}
	c.log.Info("Netmaker's flows view is over our merged flows", "database", c.cfg.NetmakerDatabase)
	return nil
}

// Ready is closed once both listeners serve (GRPCAddr and HTTPAddr are then
// known). It never closes if Run fails first: wait on Run's result too.
func (c *Collector) Ready() <-chan struct{} { return c.ready }

// GRPCAddr is the bound gRPC address (nil before Run listens).
func (c *Collector) GRPCAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.grpcAddr
}

// HTTPAddr is the bound HTTP address (nil before Run listens).
func (c *Collector) HTTPAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.httpAd
}

// ErrShutdownTimeout ends Run when shutdown did not finish within
// ShutdownTimeout (a hung store, say). What was not committed was not
// acknowledged either: agents send it again.
var ErrShutdownTimeout = errors.New("shutdown did not finish within --shutdown-timeout; unacknowledged events will be resent by their agents")

// parts are the running components, for the reverse-order stop.
type parts struct {
	grpcLn, httpLn net.Listener
	debugLn        net.Listener // nil: no --debug-addr
	debug          *http.Server
	store          Store
	ing            *ingest.Server
	grpc           *grpc.Server
	http           *http.Server
	obs            *observability
}

// Run serves until ctx ends (then shuts down within ShutdownTimeout and
// returns nil) or a component fails (then returns its error).
func (c *Collector) Run(ctx context.Context) error {
	// Under load the Go heap (envelopes in flight, batches being encoded)
	// otherwise grows to twice its live size before a GC; with the engine's
	// own memory on top that passed 1 GiB in the benchmark. GoGCPercent
	// keeps it nearer the live size, the limit caps it (DefaultConfig).
	if os.Getenv("GOMEMLIMIT") == "" && c.cfg.GoMemoryLimit > 0 {
		debug.SetMemoryLimit(c.cfg.GoMemoryLimit)
	}
	if os.Getenv("GOGC") == "" && c.cfg.GoGCPercent > 0 {
		debug.SetGCPercent(c.cfg.GoGCPercent)
	}
	// Watchers of the identities and readers files live as long as Run.
	ctx, stopWatchers := context.WithCancel(ctx)
	defer stopWatchers()

	var p parts
	// Listeners first: an address in use fails in milliseconds, before the
	// engine takes its seconds to load.
	if err := c.listen(&p); err != nil {
		return err
	}
	if err := c.start(ctx, &p); err != nil {
		closeAll(&p)
		return err
	}
	if p.debugLn != nil {
		p.debug = serveDebug(p.debugLn)
		c.log.Info("serving the profiler (net/http/pprof)", "debug", p.debugLn.Addr().String())
	}
	errc := make(chan error, 2)
	httpTLS := p.http.TLSConfig != nil // read before Serve: it writes TLSConfig (HTTP/2 set-up)
	go func() { errc <- p.obs.ready.serveGRPC(p.grpc, p.grpcLn) }()
	go func() {
		if httpTLS {
			errc <- p.http.ServeTLS(p.httpLn, "", "")
			return
		}
		errc <- p.http.Serve(p.httpLn)
	}()
	c.log.Info("serving", "grpc", p.grpcLn.Addr().String(), "http", p.httpLn.Addr().String(), "data", c.cfg.Store.DataDir,
		"tls", c.cfg.TLSCert != "", "http_tls", httpTLS)
	if err := c.writeAddrFile(p.grpcLn.Addr(), p.httpLn.Addr()); err != nil {
		c.log.Error("writing the address file", "err", err)
		return errors.Join(err, c.stop(&p))
	}
	close(c.ready)

	var failed error
	select {
	case <-ctx.Done():
		c.log.Info("shutting down: answering and committing what was received")
	case failed = <-errc:
		failed = fmt.Errorf("listener failed: %w", failed)
		c.log.Error("shutting down", "err", failed)
	}
	return errors.Join(failed, c.stop(&p))
}

// listen binds both listeners and applies their policies to the bound
// addresses (a name given as address is only known to be loopback now).
func (c *Collector) listen(p *parts) error {
	var err error
	if p.grpcLn, err = net.Listen("tcp", c.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	if err := c.cfg.grpcPolicy().Check(p.grpcLn.Addr().String(), auth.IsLoopback(p.grpcLn.Addr())); err != nil {
		p.grpcLn.Close()
		return err
	}
	if c.cfg.ProxyProtocol {
		// Connections from the trusted proxies start with a PROXY
		// protocol header naming the agent's address.
		proxies, _ := c.cfg.trustedProxies() // checked by Validate
		p.grpcLn = ingest.ProxyListener(p.grpcLn, proxies)
	}
	if p.httpLn, err = net.Listen("tcp", c.cfg.HTTPAddr); err != nil {
		p.grpcLn.Close()
		return fmt.Errorf("HTTP listener: %w", err)
	}
	if err := c.checkHTTP(p.httpLn.Addr().String(), auth.IsLoopback(p.httpLn.Addr())); err != nil {
		p.grpcLn.Close()
		p.httpLn.Close()
		return err
	}
	if p.debugLn, err = c.listenDebug(); err != nil {
		p.grpcLn.Close()
		p.httpLn.Close()
		return err
	}
	c.mu.Lock()
	c.grpcAddr, c.httpAd = p.grpcLn.Addr(), p.httpLn.Addr()
	c.mu.Unlock()
	return nil
}

// start builds every component behind the listeners, in order: identities,
// store, metrics and probes, live tail, ingest, readers, API and page.
func (c *Collector) start(ctx context.Context, p *parts) error {
	authn, err := c.authenticator(ctx)
	if err != nil {
		return err
	}
	sc := c.cfg.storeConfig()
	sc.Conns = c.cfg.InsertWriters + 2 // a connection per insert writer, two for the API's queries
	if sc.Logger == nil {
		sc.Logger = c.log
	}
	if p.store, err = c.openStore(ctx, sc); err != nil {
		return err
	}
	if err := c.netmakerView(ctx, p.store); err != nil {
		return err
	}
	hub := tail.NewHub() // live tail: committed events fan out to /api/v1/flows/stream clients
	p.obs = newObservability(p.store, hub, c.log)
	o := c.cfg.ingestOptions()
	o.Auth, o.OnCommit, o.Metrics = authn, hub.Publish, p.obs.m
	o.Enrich = c.enricher()
	if r, ok := p.store.(flowlog.AgentRecorder); ok {
		o.Agents = r // the hosts view: which agent each host runs
	}
	if f, ok := p.store.(follower); ok && c.cfg.Store.ClickHouseURL != "" {
		// A server is shared by every collector: the tail follows the
		// store's commits, its own and the others', instead of only its
		// own (store.Follow; it reads nothing while nobody listens).
		o.OnCommit = nil
		go f.Follow(ctx, store.FollowOptions{Active: func() bool { return hub.Stats().Subscribers > 0 }, Logger: c.log}, hub.Publish)
	}
	p.ing = ingest.New(p.store, o, c.log)

	p.obs.ready.commits = func() error { return p.ing.Ready(c.cfg.ReadyMaxCommitStall) }
	grpcOpts, err := c.grpcCreds(p.obs.m.TLSHandshakeFailures.Inc)
	if err != nil {
		return err
	}
	c.log.Info("agent authentication", "tls", c.cfg.TLSCert != "", "client_certificates", c.cfg.TLSClientCA != "",
		"identities", c.cfg.Identities, "allow_unauthenticated", c.cfg.AllowUnauthenticated || c.cfg.Identities == "")
	p.grpc = p.ing.GRPCServer(grpcOpts...)

	access, err := c.access(ctx) // readers' bearer tokens and networks (access.go)
	if err != nil {
		return err
	}
	httpTLS, err := c.httpTLS()
	if err != nil {
		return err
	}
	deps := api.Deps{Store: p.obs.store, Agg: p.obs.store, Hub: hub, Log: c.log, UI: web.Handler(), StreamBuffer: c.cfg.StreamBuffer,
		MaxTails: off(c.cfg.MaxTails), MaxTailsPerReader: off(c.cfg.MaxTailsPerReader)}
	if r, ok := p.store.(flowlog.RejectedReader); ok {
		deps.Rejected = r // /api/v1/rejected (admin readers)
	}
	origins, _ := api.ParseCORSOrigins(c.cfg.HTTPCORSOrigins) // checked by Validate
	p.http = &http.Server{Handler: p.obs.handler(api.New(deps), access, api.CORS{Origins: origins}), TLSConfig: httpTLS}
	c.cfg.HTTPLimits.Apply(p.http) // timeouts, header and body limits
	// Live-tail streams never go idle; ending them lets Shutdown finish.
	p.http.RegisterOnShutdown(hub.Close)
	// Starting leaves garbage (loading the IP databases alone about 25 MB)
	// that an idle collector would otherwise hold until the runtime's
	// periodic collection, minutes later, and return to the system later
	// still: give it back before serving.
	debug.FreeOSMemory()
	return nil
}

// authenticator loads the identities file and keeps it current until ctx
// ends; nil without one (agents are not authenticated).
func (c *Collector) authenticator(ctx context.Context) (*auth.Authenticator, error) {
	if c.cfg.Identities == "" {
		return nil, nil
	}
	set, err := auth.Load(c.cfg.Identities)
	if err != nil {
		return nil, err
	}
	authn := auth.New(set, c.cfg.AllowUnauthenticated, c.log)
	go func() {
		if err := auth.Watch(ctx, c.cfg.Identities, c.log, authn.SetIdentities, nil); err != nil {
			c.log.Error("identities watch stopped; keeping the current identities", "err", err)
		}
	}()
	return authn, nil
}

// grpcCreds are the gRPC listener's TLS options (none: plaintext).
func (c *Collector) grpcCreds(onHandshakeFailure func()) ([]grpc.ServerOption, error) {
	if c.cfg.TLSCert == "" {
		return nil, nil
	}
	cfg, err := auth.ServerTLS(c.cfg.TLSCert, c.cfg.TLSKey, c.cfg.TLSClientCA)
	if err != nil {
		return nil, err
	}
	// Failed handshakes (no client certificate, wrong CA) are counted and
	// logged: otherwise they leave no trace here.
	creds := grpc.Creds(auth.WatchHandshakes(credentials.NewTLS(cfg), c.log, onHandshakeFailure))
	// grpc-go reads a plain TCP connection through a shared pool, but gives
	// any other (TLS) its own 32 KiB read buffer, held for the connection's
	// life: 320 MB for 10,000 idle agents. crypto/tls reads the socket a
	// record at a time into a buffer of its own, so the framer reads it
	// unbuffered at no cost in system calls.
	return []grpc.ServerOption{creds, grpc.ReadBufferSize(0)}, nil
}

// stop shuts down in reverse order: readiness, then (concurrently) ingest's
// answers and commits and the HTTP server, then the store. A hung store
// must not hold the process past ShutdownTimeout, so the stop runs aside
// and is abandoned when the timeout passes.
func (c *Collector) stop(p *parts) error {
	p.obs.ready.stopping.Store(true) // /readyz answers 503 from now on
	if p.debug != nil {
		p.debug.Close()
	}
	timeout := c.cfg.ShutdownTimeout
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); p.ing.Shutdown(sctx, p.grpc) }()
		if err := p.http.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Warn("HTTP shutdown", "err", err)
		}
		wg.Wait()
		if err := p.store.Close(); err != nil {
			c.log.Warn("closing the store", "err", err)
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		c.log.Info("stopped")
		return nil
	case <-t.C:
		return ErrShutdownTimeout
	}
}

// closeAll releases what start got before it failed.
func closeAll(p *parts) {
	p.grpcLn.Close()
	p.httpLn.Close()
	if p.debugLn != nil {
		p.debugLn.Close()
	}
	if p.store != nil {
		p.store.Close()
	}
}

// writeAddrFile writes the bound addresses to AddrFile (if set) atomically:
// a reader never sees half a file.
func (c *Collector) writeAddrFile(grpcAddr, httpAddr net.Addr) error {
	if c.cfg.AddrFile == "" {
		return nil
	}
	b, _ := json.Marshal(Addrs{GRPC: grpcAddr.String(), HTTP: httpAddr.String()})
	tmp := c.cfg.AddrFile + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.cfg.AddrFile)
}

// Addrs is the content of AddrFile.
type Addrs struct {
	GRPC string `json:"grpc"`
	HTTP string `json:"http"`
}

// httpTLS is the HTTP listener's TLS configuration (nil: plain HTTP).
func (c *Collector) httpTLS() (*tls.Config, error) {
	if c.cfg.HTTPTLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.cfg.HTTPTLSCert, c.cfg.HTTPTLSKey)
	if err != nil {
		return nil, fmt.Errorf("--http-tls-cert/--http-tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
