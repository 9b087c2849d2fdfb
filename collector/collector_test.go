package collector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
	"github.com/flowlog/flowlog/store"
)

// fakeStore answers pings and reads from nothing; its inserts and Close
// block until release is closed (a frozen filesystem under the engine).
type fakeStore struct {
	flowlog.Store
	flowlog.Aggregator
	release  chan struct{}
	inserted chan struct{} // gets a value when an insert began
}

func newFakeStore() *fakeStore {
	return &fakeStore{release: make(chan struct{}), inserted: make(chan struct{}, 100)}
}

func (s *fakeStore) Insert(ctx context.Context, b *flowlog.Batch) error {
	s.inserted <- struct{}{}
	<-s.release
	return nil
}
func (s *fakeStore) Ping(context.Context) error { return nil }
func (s *fakeStore) Close() error               { <-s.release; return nil }

// testConfig is the default collector on loopback ports the kernel picks.
func testConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.GRPCAddr, c.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Store.DataDir = t.TempDir()
	c.FlushInterval = time.Millisecond
	c.IPDBDir = t.TempDir() // none: hermetic, and no load time
	c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

// start runs a collector on st until cancel; Run's result arrives on done.
func start(t *testing.T, cfg Config, st Store) (col *Collector, cancel func(), done <-chan error) {
	t.Helper()
	col, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	col.openStore = func(context.Context, store.Config) (Store, error) { return st, nil }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	result := make(chan error, 1)
	go func() { result <- col.Run(ctx) }()
	select {
	case <-col.Ready():
	case err := <-result:
		t.Fatalf("Run ended before serving: %v", err)
	}
	return col, cancel, result
}

// SIGTERM while the store hangs: Run returns ErrShutdownTimeout once
// ShutdownTimeout passed, instead of waiting for the store.
func TestRunHonoursShutdownTimeoutWhenTheStoreHangs(t *testing.T) {
	st := newFakeStore()
	defer close(st.release)
	cfg := testConfig(t)
	cfg.ShutdownTimeout = 100 * time.Millisecond
	col, cancel, done := start(t, cfg, st)

	// An envelope whose insert never finishes: its ack must not come.
	conn, err := grpc.NewClient(col.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := pb.NewFlowServiceClient(conn).StreamFlows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ev := &pb.FlowEvent{Type: pb.EventType_EVENT_START, FlowId: "f1", HostId: "h1", NetworkId: "n1", Protocol: 6,
		Src: &pb.FlowParticipant{Ip: "10.0.0.1"}, Dst: &pb.FlowParticipant{Ip: "10.0.0.2"}, StartTsMs: time.Now().UnixMilli(), Version: 1}
	if err := stream.Send(&pb.FlowEnvelope{Events: []*pb.FlowEvent{ev}}); err != nil {
		t.Fatal(err)
	}
	<-st.inserted
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrShutdownTimeout) {
			t.Fatalf("Run: %v, want ErrShutdownTimeout", err)
		}
	case <-time.After(testutil.DefaultWait):
		t.Fatal("Run still waits for the hung store")
	}
	if r, err := stream.Recv(); err == nil && r.Success {
		t.Fatalf("an envelope whose insert never finished was acked: %+v", r)
	}
}

// A listen address in use ends Run at once with the bind error, before the
// store is opened.
func TestRunFailsWhenAnAddressIsInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, which := range []string{"gRPC", "HTTP"} {
		cfg := testConfig(t)
		if which == "gRPC" {
			cfg.GRPCAddr = ln.Addr().String()
		} else {
			cfg.HTTPAddr = ln.Addr().String()
		}
		col, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		col.openStore = func(context.Context, store.Config) (Store, error) {
			t.Error("the store was opened although a listener failed")
			return newFakeStore(), nil
		}
		err = col.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), which+" listener") || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("%s address in use: Run returned %v", which, err)
		}
	}
}

// The bound addresses are known once Ready, from the accessors and from the
// address file; /readyz and /metrics are on the one HTTP server; Run ends
// with nil on cancel.
func TestRunServesAndReportsItsAddresses(t *testing.T) {
	st := newFakeStore()
	close(st.release)
	cfg := testConfig(t)
	cfg.AddrFile = filepath.Join(t.TempDir(), "addrs.json")
	col, cancel, done := start(t, cfg, st)

	var addrs Addrs
	b, err := os.ReadFile(cfg.AddrFile)
	if err != nil || json.Unmarshal(b, &addrs) != nil {
		t.Fatalf("address file: %v %q", err, b)
	}
	if addrs.GRPC != col.GRPCAddr().String() || addrs.HTTP != col.HTTPAddr().String() || strings.HasSuffix(addrs.GRPC, ":0") {
		t.Fatalf("address file %+v, accessors %s %s", addrs, col.GRPCAddr(), col.HTTPAddr())
	}
	testutil.WaitFor(t, 0, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + addrs.HTTP + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	resp, err := http.Get("http://" + addrs.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(text), "flowlog_build_info{") || !strings.Contains(string(text), `route="GET /readyz"`) {
		t.Errorf("/metrics lacks flowlog_build_info or the /readyz request:\n%.2000s", text)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

// A store that cannot open ends Run with its error, listeners released.
func TestRunFailsWhenTheStoreDoesNotOpen(t *testing.T) {
	cfg := testConfig(t)
	cfg.Store.ChdbLib = "/nonexistent/libchdb.so"
	col, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The real opener: its error must not come back as a nil store.
	err = col.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/libchdb.so") {
		t.Fatalf("Run: %v", err)
	}
	for _, a := range []net.Addr{col.GRPCAddr(), col.HTTPAddr()} {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			t.Fatalf("%s still bound after Run failed: %v", a, err)
		}
		ln.Close()
	}
}
