package collector

import (
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"

	"github.com/flowlog/flowlog/auth/authtest"
)

// An agent's TLS connection costs the collector no 32 KiB read buffer
// (grpc-go's default for a connection it cannot read without one): crypto/tls
// buffers a record itself. 10,000 agents over TLS: 320 MB.
func TestTLSConnectionsHoldNoReadBuffer(t *testing.T) {
	ca, err := authtest.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Localhost()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	if cfg.TLSCert, cfg.TLSKey, err = leaf.Write(t.TempDir(), "server"); err != nil {
		t.Fatal(err)
	}
	col, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := col.grpcCreds(func() {})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	t.Cleanup(g.Stop)

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
	const n = 50
	before := heap()
	for range n {
		// The client reads unbuffered too: what is measured is the server's.
		cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds), grpc.WithReadBufferSize(0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		cc.Connect()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
			if !cc.WaitForStateChange(ctx, s) {
				t.Fatalf("connection %v", s)
			}
		}
		cancel()
	}
	per := (heap() - before) / n
	t.Logf("%d bytes of heap a TLS connection (both ends)", per)
	// ~38 kB without the buffer, ~71 kB with it.
	if per > 54<<10 {
		t.Fatalf("a TLS connection holds %d bytes of heap (both ends), as if with grpc-go's 32 KiB read buffer", per)
	}
}
