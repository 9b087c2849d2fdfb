// Package testutil is what flowlog's tests share: waiting on a condition
// instead of sleeping, and skipping visibly (or failing under CI) when a
// test needs something this machine lacks: the engine library, root, a
// browser. Test code only; nothing in the binary imports it.
package testutil

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/flowlog/flowlog/store"
	"github.com/flowlog/flowlog/store/chdb"
)

// DefaultWait bounds WaitFor when a test does not say otherwise: long
// enough for a loaded 2-core CI machine, short enough to fail a hung test.
const DefaultWait = 20 * time.Second

// WaitFor polls cond until it is true, failing the test with what after
// timeout (DefaultWait when 0). It synchronises on a condition, never on
// the passing of time, so no test asserts a latency.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if timeout == 0 {
		timeout = DefaultWait
	}
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Eventually is WaitFor's non-fatal form for goroutines and helpers that
// must not call t.Fatal: it reports whether cond became true in time.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// inCI is true when the CI variable is set: there, a missing requirement is
// a broken setup, not a reason to skip.
func inCI() bool { return os.Getenv("CI") != "" }

// need skips (or fails under CI) with the requirement and how to get it.
func need(t testing.TB, what string) {
	t.Helper()
	if inCI() {
		t.Fatalf("needs %s (CI is set, so this is a failure, not a skip)", what)
	}
	t.Skipf("SKIPPED: needs %s", what)
}

// Short skips a slow test under `go test -short` (the fast tier).
func Short(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("SKIPPED in -short: %s", what)
	}
}

// EngineLib returns the path of libchdb.so, or skips (fails under CI) when
// the engine is not installed or -short asks for the fast tier.
func EngineLib(t testing.TB) string {
	t.Helper()
	Short(t, "needs the embedded engine")
	lib, err := chdb.FindLib("")
	if err != nil {
		need(t, "the embedded engine (run `make setup`): "+err.Error())
	}
	return lib
}

// EngineLibMain is EngineLib for TestMain, where there is no *testing.T:
// it returns "" and the reason when the package's engine tests should skip.
// Under CI a missing engine is reported as an error instead.
func EngineLibMain() (lib, skip string, err error) {
	if !flag.Parsed() {
		flag.Parse() // TestMain runs before the testing flags are parsed
	}
	if testing.Short() {
		return "", "-short: the embedded engine is not used", nil
	}
	lib, err = chdb.FindLib("")
	if err != nil {
		if inCI() {
			return "", "", err
		}
		return "", "the embedded engine is not installed (run `make setup`): " + err.Error(), nil
	}
	return lib, "", nil
}

// Root skips (fails under CI) unless the test runs as root, and in -short.
func Root(t testing.TB) {
	t.Helper()
	Short(t, "needs root and the kernel's conntrack")
	if os.Geteuid() != 0 {
		need(t, "root (network namespaces, conntrack)")
	}
}

// Tool skips (fails under CI) unless the named program is on PATH.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		need(t, name+" on PATH (make test installs it)")
	}
	return p
}

// engineSkip is why RunWithEngine left the shared engine closed ("" when
// it is open).
var engineSkip string

// RunWithEngine is a TestMain body for packages whose tests share one
// engine (OpenEngine: the embedded one, one data directory per process, or
// the server of FLOWLOG_TEST_CLICKHOUSE_URL): it opens it in dir (a
// temporary one, removed afterwards, when dir is "") into *eng, with the
// cluster the tests must name in store.Options into *cluster, and runs the
// tests. In -short, or without the engine library outside CI, *eng stays
// nil and the tests that need it skip through NeedEngine; the others run.
func RunWithEngine(m *testing.M, dir string, conns int, eng *store.Engine, cluster *string) int {
	var lib string
	if os.Getenv(ServerEnv) == "" {
		var skip string
		var err error
		if lib, skip, err = EngineLibMain(); err != nil {
			fmt.Fprintln(os.Stderr, "the embedded engine is needed (CI is set):", err)
			return 1
		}
		if skip != "" {
			engineSkip = skip
			return m.Run()
		}
	}
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "flowlog-engine-test-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
	}
	e, c, err := OpenEngine(lib, dir, conns)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close()
	*eng, *cluster = e, c
	return m.Run()
}

// NeedEngine skips a test of a RunWithEngine package when the shared
// engine was not opened, saying why.
func NeedEngine(t testing.TB) {
	t.Helper()
	if engineSkip != "" {
		t.Skip("SKIPPED: " + engineSkip)
	}
}
