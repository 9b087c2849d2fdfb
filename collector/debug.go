package collector

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/flowlog/flowlog/auth"
)

// The debug listener serves Go's profiler (net/http/pprof) for the
// profiles BENCHMARKS.md shows: `go tool pprof
// http://127.0.0.1:6060/debug/pprof/profile?seconds=20` (CPU) or
// `.../heap` (live heap) against a running collector. Off unless
// --debug-addr is given, and loopback only: a profile shows memory
// contents (tokens, flows) and costs CPU, so it is nobody's from the
// network, and there is no flag to make it so.
func (c *Collector) listenDebug() (net.Listener, error) {
	if c.cfg.DebugAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", c.cfg.DebugAddr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	if !auth.IsLoopback(ln.Addr()) {
		ln.Close()
		return nil, fmt.Errorf("--debug-addr %s is not a loopback address: the profiler is served on loopback only", c.cfg.DebugAddr)
	}
	return ln, nil
}

// serveDebug serves the profiler on ln until the listener is closed.
func serveDebug(ln net.Listener) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv
}
