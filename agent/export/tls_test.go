package export

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flowlog/flowlog/agent/spool"
	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/auth/authtest"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// An agent without the client certificate a mutual-TLS collector requires:
// the collector counts and logs the failed handshake (once, however often
// the agent retries), and the agent logs the real cause, not "broken pipe".
func TestFailedTLSHandshakeLeavesATraceOnBothSides(t *testing.T) {
	ca, err := authtest.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.Localhost()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := srvCert.Write(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	caFile, _, err := srvCert.Write(dir, "ca") // any PEM will do for the pool...
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := auth.ServerTLS(certFile, keyFile, caFile) // ...the client sends none
	if err != nil {
		t.Fatal(err)
	}
	var collectorLog syncBuffer
	var failures atomic.Int64
	creds := auth.WatchHandshakes(credentials.NewTLS(cfg), slog.New(slog.NewTextHandler(&collectorLog, nil)), func() { failures.Add(1) })
	g := grpc.NewServer(grpc.Creds(creds))
	pb.RegisterFlowServiceServer(g, &flaky{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go g.Serve(ln)
	defer g.Stop()

	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	var agentLog syncBuffer
	log := slog.New(slog.NewTextHandler(&agentLog, nil))
	b := NewBatcher(sp, 1, log)
	b.Slot().FlowId = "x"
	b.Commit()
	e := New(sp, Options{Addr: ln.Addr().String(), BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Log: log,
		Creds: credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	testutil.WaitFor(t, 20*time.Second, "a few failed attempts", func() bool { return failures.Load() >= 3 && e.Stats.Reconnects.Load() >= 3 })
	cancel()
	<-done

	if n := strings.Count(collectorLog.String(), "TLS handshake with an agent failed"); n != 1 || !strings.Contains(collectorLog.String(), "certificate") {
		t.Fatalf("collector log (want one line naming the certificate):\n%s", collectorLog.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(agentLog.String()), "\n") {
		if !strings.Contains(line, "certificate required") {
			t.Fatalf("agent log line without the cause (a bare broken pipe?):\n%s", line)
		}
	}
}
