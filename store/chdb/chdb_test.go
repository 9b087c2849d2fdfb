package chdb

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
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
	// What a kill -9 during an insert leaves (TestLeftoverInsertFilesRemoved).
	os.MkdirAll(filepath.Join(dir, "flowlog-inserts"), 0o750)
	os.WriteFile(filepath.Join(dir, "flowlog-inserts", "batch-123.rowbinary"), make([]byte, 1<<20), 0o600)
	os.WriteFile(filepath.Join(dir, "flowlog-inserts", "notes.txt"), []byte("not ours"), 0o600)
	shared, err = Open(lib, dir, 2, testSettings)
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
	_, err := Open(lib, t.TempDir(), 1, Settings{})
	if err == nil || !strings.Contains(err.Error(), "one data directory per process") {
		t.Fatalf("want clear refusal, got %v", err)
	}
}

// Insert files orphaned by a kill -9 (up to a group commit each) are removed
// when the engine opens the directory; other files are left alone.
func TestLeftoverInsertFilesRemoved(t *testing.T) {
	need(t)
	dir := insertDir(shared.dir)
	if _, err := os.Stat(filepath.Join(dir, "batch-123.rowbinary")); !os.IsNotExist(err) {
		t.Fatalf("leftover insert file still there after Open: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("another file was removed: %v", err)
	}
}

// Queries cannot take the ingest's connections: with every query
// connection busy with slow reads, a statement of the ingest still runs
// at once (before any of the reads ends).
func TestIngestHasItsOwnConnections(t *testing.T) {
	need(t)
	ctx := context.Background()
	slow := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := shared.Query(ctx, "SELECT sleepEachRow(1) FROM numbers(2) SETTINGS max_block_size = 1", "TabSeparated")
			slow <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); len(shared.conns) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the slow queries never took the query connections")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := shared.Query(flowlog.IngestContext(ctx), "SELECT 1", "TabSeparated"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-slow:
		t.Fatalf("the ingest's statement waited for a slow query to end (%v)", err)
	default:
	}
	for range 2 {
		if err := <-slow; err != nil {
			t.Fatal(err)
		}
	}
}

// testSettings are the server settings the package's engine starts with
// (TestSettingsReachTheEngine).
var testSettings = Settings{CacheBytes: 64 << 20}

// The cache budget reaches the engine as its server settings, split among
// its caches.
func TestSettingsReachTheEngine(t *testing.T) {
	need(t)
	out, err := shared.Query(context.Background(), `SELECT name, value FROM system.server_settings
		WHERE name IN ('mark_cache_size', 'index_mark_cache_size', 'primary_index_cache_size',
			'query_condition_cache_size', 'compiled_expression_cache_size') ORDER BY name`, "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	want := "compiled_expression_cache_size\t8388608\nindex_mark_cache_size\t8388608\nmark_cache_size\t33554432\n" +
		"primary_index_cache_size\t8388608\nquery_condition_cache_size\t8388608\n"
	if string(out) != want {
		t.Fatalf("engine's cache sizes:\n%s\nwant:\n%s", out, want)
	}
}

// The library's pages the engine only needed to start leave the process's
// RSS, and the engine keeps working: its code faults back in as used.
func TestReleaseStartupPages(t *testing.T) {
	need(t)
	ctx := context.Background()
	lib, _ := filepath.EvalSymlinks(process.libPath)
	resident := func() (clean, all int64) {
		maps, err := libMappings(lib)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range maps {
			all += m.rss
			if m.clean() {
				clean += m.rss
			}
		}
		return clean, all
	}
	before, _ := resident()
	if before == 0 {
		t.Fatal("no page of the library is resident: the engine did not start?")
	}
	released, err := shared.ReleaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after, all := resident()
	if released < before/2 || after > before/2 {
		t.Fatalf("released %d MiB; the library's clean pages went from %d to %d MiB resident (%d MiB with written ones)",
			released>>20, before>>20, after>>20, all>>20)
	}
	for _, q := range []string{
		"CREATE OR REPLACE TABLE release_t (k UInt64, s String) ENGINE = MergeTree ORDER BY k",
		"INSERT INTO release_t SELECT number, toString(number) FROM numbers(100000)",
		"OPTIMIZE TABLE release_t FINAL",
	} {
		if err := shared.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out, err := shared.Query(ctx, "SELECT count(), sum(length(s)) FROM release_t", "TabSeparated")
	if err != nil || string(out) != "100000\t488890\n" {
		t.Fatalf("after the release: %q, %v", out, err)
	}
}

// The engine's directory was fresh when TestMain opened it: a synchronous
// drop, which waits for the table's removal, returns (it waited forever
// before Open created the metadata directory first).
func TestDropSyncReturnsOnAFreshDirectory(t *testing.T) {
	need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard, not a latency bound
	defer cancel()
	for _, q := range []string{
		"CREATE TABLE default.dropped_sync (a UInt8) ENGINE = MergeTree ORDER BY a",
		"INSERT INTO default.dropped_sync VALUES (1)",
		"DROP TABLE default.dropped_sync SYNC",
	} {
		if _, err := shared.Query(ctx, q, "CSV"); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
