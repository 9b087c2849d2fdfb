package collector

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/flowlog/flowlog/store"
)

// --debug-addr serves the profiler on loopback, and a collector told to
// serve it anywhere else does not start.
func TestDebugAddrServesTheProfilerOnLoopbackOnly(t *testing.T) {
	cfg := testConfig(t)
	cfg.DebugAddr = "0.0.0.0:0"
	col, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	col.openStore = func(context.Context, store.Config) (Store, error) {
		t.Error("the store was opened although the debug address is refused")
		return newFakeStore(), nil
	}
	if err := col.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("--debug-addr 0.0.0.0:0: Run returned %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free loopback port
	if err != nil {
		t.Fatal(err)
	}
	cfg = testConfig(t)
	cfg.DebugAddr = ln.Addr().String()
	ln.Close()
	st := newFakeStore()
	close(st.release)
	_, cancel, done := start(t, cfg, st)
	resp, err := http.Get("http://" + cfg.DebugAddr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "heap profile") {
		t.Errorf("heap profile: %d %.200s", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
