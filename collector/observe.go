package collector

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	apipkg "github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/metrics"
	"github.com/flowlog/flowlog/tail"
)

// probeTimeout bounds a readiness probe's store ping: a hung store is as
// unready as a failed one.
const probeTimeout = 5 * time.Second

// observability is what the collector serves beside the API on its HTTP
// listener: GET /metrics (its own registry, the Go runtime and process
// collectors included) and GET /readyz. /healthz (liveness) stays the API's.
type observability struct {
	reg   *prometheus.Registry
	m     *metrics.Collector
	store *metrics.Store // the API's view of the store, counting query and ping errors
	ready readiness
}

func newObservability(st Store, hub *tail.Hub, log *slog.Logger) *observability {
	o := &observability{reg: metrics.NewRegistry()}
	o.m = metrics.NewCollector(o.reg)
	o.store = o.m.InstrumentStore(st, st)
	o.ready = readiness{store: o.store, log: log}
	o.m.TailSubscribers.Set(func() float64 { return float64(hub.Stats().Subscribers) })
	o.m.TailEventsLost.Set(func() float64 { return float64(hub.Stats().Dropped) })
	return o
}

// handler serves /metrics and /readyz, and everything else from api, all
// behind access (bearer tokens, access.go); every request, refused ones
// included, is counted and timed by route.
func (o *observability) handler(api http.Handler, access apipkg.Access, cors apipkg.CORS) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{Registry: o.reg}))
	mux.Handle("GET /readyz", &o.ready)
	mux.Handle("/", api)
	// CORS outside the access guard: a browser's preflight carries no token.
	return o.m.InstrumentHTTP(cors.Handler(access.Handler(mux)))
}

// readiness answers /readyz: 200 only while the store answers, the gRPC
// listener is serving and shutdown has not begun; otherwise 503 with the
// reason. (Liveness is /healthz: the store is open.)
type readiness struct {
	store       interface{ Ping(context.Context) error }
	commits     func() error // nil, or why commits are stuck (ingest.Server.Ready)
	log         *slog.Logger
	grpcServing atomic.Bool
	stopping    atomic.Bool
}

// serveGRPC is g.Serve(ln), marking the listener as serving meanwhile.
func (r *readiness) serveGRPC(g *grpc.Server, ln net.Listener) error {
	r.grpcServing.Store(true)
	defer r.grpcServing.Store(false)
	return g.Serve(ln)
}

// check is nil when ready, else the reason.
func (r *readiness) check(ctx context.Context) error {
	if r.stopping.Load() {
		return errors.New("collector shutting down")
	}
	if !r.grpcServing.Load() {
		return errors.New("gRPC listener not serving")
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := r.store.Ping(ctx); err != nil {
		return errors.New("store not answering: " + err.Error())
	}
	if r.commits != nil {
		return r.commits()
	}
	return nil
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	metrics.Probe(w, req, r.check(req.Context()), r.log)
}
