package chdb

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

// testDB opens the package's one engine for this test binary.
var shared *DB

// skipAll is why the engine was not opened ("" when it was). This package
// cannot use internal/testutil (which imports it), so it repeats its rule:
// skip visibly in -short and without the library, fail under CI.
var skipAll string

func need(t *testing.T) {
	t.Helper()
	if skipAll != "" {
		t.Skip("SKIPPED: " + skipAll)
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	lib, err := FindLib("")
	switch {
	case testing.Short():
		skipAll = "-short: the embedded engine is not used"
	case err != nil && os.Getenv("CI") == "":
		skipAll = "the embedded engine is not installed (run `make setup`): " + err.Error()
	case err != nil:
		println(err.Error())
		os.Exit(1)
	}
	if skipAll != "" {
		os.Exit(m.Run())
	}
	dir, _ := os.MkdirTemp("", "chdb-test-")
	shared, err = Open(lib, dir, 2)
	if err != nil {
		println(err.Error())
		os.Exit(1)
	}
	code := m.Run()
	shared.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestQueryRoundTrip(t *testing.T) {
	need(t)
	out, err := shared.Query(context.Background(), "SELECT 1+1 AS x, 'a\x00b' AS s", "JSONEachRow")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "{\"x\":2,\"s\":\"a\\u0000b\"}\n" {
		t.Fatalf("got %q", got)
	}
}

func TestQueryErrorIsReported(t *testing.T) {
	need(t)
	_, err := shared.Query(context.Background(), "SELECT * FROM no_such_table", "JSONEachRow")
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("want error naming the table, got %v", err)
	}
}

// After the engine connected, a Go nil dereference must still be a
// recoverable panic (chDB's own SIGSEGV handler would hang for minutes).
func TestGoPanicsStillWorkAfterConnect(t *testing.T) {
	need(t)
	if _, err := shared.Query(context.Background(), "SELECT 1", "CSV"); err != nil {
		t.Fatal(err)
	}
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		var p *int
		_ = *p
	}()
	select {
	case r := <-done:
		if r == nil {
			t.Fatal("nil dereference did not panic")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nil dereference did not panic within 10s: signal handlers were replaced")
	}
}

func TestSecondDirectoryInProcessIsRefused(t *testing.T) {
	need(t)
	lib, _ := FindLib("")
	_, err := Open(lib, t.TempDir(), 1)
	if err == nil || !strings.Contains(err.Error(), "one data directory per process") {
		t.Fatalf("want clear refusal, got %v", err)
	}
}
