package collector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/testutil"
)

type pingStore struct {
	flowlog.Store
	err error
}

func (s *pingStore) Ping(context.Context) error { return s.err }

// /readyz is 200 only while the store answers, the gRPC listener serves and
// shutdown has not begun; each refusal names its reason.
func TestMetricsReadinessRules(t *testing.T) {
	st := &pingStore{}
	r := &readiness{store: st, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	probe := func(wantCode int, wantBody string) {
		t.Helper()
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		if w.Code != wantCode || !strings.Contains(w.Body.String(), wantBody) {
			t.Fatalf("/readyz: %d %s, want %d with %q", w.Code, w.Body.String(), wantCode, wantBody)
		}
	}
	probe(503, "gRPC listener not serving")

	srv := ingest.New(st, ingest.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g := srv.GRPCServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.serveGRPC(g, ln) }()

	testutil.WaitFor(t, 0, "the gRPC listener serving", r.grpcServing.Load)
	probe(200, `"ok"`)
	st.err = errors.New("engine gone")
	probe(503, "store not answering: engine gone")
	st.err = nil
	r.stopping.Store(true)
	probe(503, "collector shutting down")
	r.stopping.Store(false)
	g.Stop()
	<-served
	probe(503, "gRPC listener not serving")
}
