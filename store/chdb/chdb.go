// Package chdb binds the embedded ClickHouse engine (libchdb.so) with purego,
// so the binary needs no cgo toolchain and does not fail before main when the
// library is absent (chdb-go loads it in init() and panics).
//
// Facts of the engine this package is built around (measured, docs/design.md):
//   - one data directory per process: a second path in the same process fails,
//     several connections to the same path work and run in parallel, one
//     connection serializes its queries;
//   - chdb_connect replaces the Go runtime's handlers of synchronous signals
//     (SIGSEGV, ...), after which a Go nil dereference hangs for minutes
//     instead of panicking; we save every handler before loading and
//     connecting, and put them back afterwards;
//   - query text is passed with its length (chdb_query_n), so NUL bytes
//     survive;
//   - the engine starts the task that finally removes dropped tables only
//     when <dir>/metadata exists as it starts (chdb-io/chdb-core#173, fixed
//     after 26.5.3): on a fresh directory a DROP TABLE ... SYNC (the
//     cluster form of the store's drops) waited forever, and dropped tables
//     stayed on disk until the next start. Open creates the directory
//     first.
package chdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/flowlog/flowlog"
)

// LibEnv names the environment variable that points at libchdb.so.
const LibEnv = "FLOWLOG_CHDB_LIB"

// LibVersion is the pinned engine version fetched by scripts/fetch-chdb.sh.
const LibVersion = "26.5.3"

// DefaultLibPath is where scripts/fetch-chdb.sh caches the library:
// $XDG_CACHE_HOME/flowlog/chdb/<version>/libchdb.so (or ~/.cache/...).
func DefaultLibPath() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), "cache")
	}
	return filepath.Join(dir, "flowlog", "chdb", LibVersion, "libchdb.so")
}

// FindLib returns the library path: explicit, else $FLOWLOG_CHDB_LIB, else
// the default cache location. It fails with a message that says how to get it.
func FindLib(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv(LibEnv), DefaultLibPath()} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			if p == explicit || p == os.Getenv(LibEnv) {
				return "", fmt.Errorf("chDB library %s: %w (run `make setup` to fetch it)", p, err)
			}
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("chDB library not found: set %s or run `make setup`, which caches it at %s",
		LibEnv, DefaultLibPath())
}

// api holds the library's functions we call.
type api struct {
	setSignalHandlersEnabled func(enabled int32)
	connect                  func(argc int32, argv unsafe.Pointer) unsafe.Pointer
	closeConn                func(conn unsafe.Pointer)
	queryN                   func(conn unsafe.Pointer, q unsafe.Pointer, qlen uintptr, f unsafe.Pointer, flen uintptr) unsafe.Pointer
	resultBuffer             func(res unsafe.Pointer) unsafe.Pointer
	resultLength             func(res unsafe.Pointer) uintptr
	resultError              func(res unsafe.Pointer) unsafe.Pointer
	destroyResult            func(res unsafe.Pointer)
}

// process is the one engine this process may have (one data directory).
var process struct {
	sync.Mutex
	lib     *api
	libPath string
	dir     string
}

// DB is a pool of connections to the process's engine on one directory.
type DB struct {
	lib   *api
	dir   string
	args  []string            // server settings given to the engine at connect (Settings.args)
	conns chan unsafe.Pointer // chdb_connection* values; each serializes its queries
	// ingest holds the connections reserved for statements whose context
	// is flowlog.IngestContext (group commits): queries, however many and
	// slow, cannot take them. With one connection it is conns.
	ingest chan unsafe.Pointer
	all    []unsafe.Pointer
}

// Open loads the library (once per process) and opens n connections to the
// data directory dir. A process can hold one directory only. The engine
// starts with the first connection of the process, so set applies then;
// later Opens in the same process get the engine as it was started.
//
// With n >= 2, n-2 connections (at least one) are reserved for the ingest
// (flowlog.IngestContext: one per insert writer) and the others serve
// everything else, which bounds how many queries run at once.
func Open(libPath, dir string, n int, set Settings) (*DB, error) {
	if n < 1 {
		n = 1
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("chDB data directory: %w", err)
	}
	process.Lock()
	defer process.Unlock()
	if process.dir != "" && process.dir != abs {
		return nil, fmt.Errorf("chDB: this process already has %s open; the engine allows one data directory per process", process.dir)
	}
	if process.lib == nil {
		if err := checkNotLocked(abs); err != nil {
			return nil, err
		}
		// No other process holds the directory and this one has not begun:
		// insert files left here were orphaned by a kill -9.
		if err := removeInsertLeftovers(abs); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(abs, "metadata"), 0o750); err != nil {
			return nil, fmt.Errorf("chDB data directory: %w", err)
		}
		lib, err := load(libPath)
		if err != nil {
			return nil, err
		}
		process.lib, process.libPath = lib, libPath
	}
	reserved := 0
	if n >= 2 {
		reserved = max(1, n-2)
	}
	db := &DB{lib: process.lib, dir: abs, args: set.args(), conns: make(chan unsafe.Pointer, n-reserved)}
	db.ingest = db.conns
	if reserved > 0 {
		db.ingest = make(chan unsafe.Pointer, reserved)
	}
	for i := 0; i < n; i++ {
		c, err := db.connect()
		if err != nil {
			db.Close()
			return nil, err
		}
		db.all = append(db.all, c)
		if i < reserved {
			db.ingest <- c
		} else {
			db.conns <- c
		}
	}
	process.dir = abs
	return db, nil
}

// checkNotLocked turns the engine's silent NULL on a held directory into a
// clear error: ClickHouse holds an flock on <dir>/status while it runs.
func checkNotLocked(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "status"), os.O_RDONLY, 0)
	if err != nil {
		return nil // fresh directory
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("chDB data directory %s is in use by another process (%v); a directory can be open in one process only", dir, err)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

func load(path string) (*api, error) {
	saved := saveSignalHandlers()
	defer saved.restore()
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("loading chDB library %s: %w", path, err)
	}
	var a api
	for name, fn := range map[string]any{
		"chdb_set_signal_handlers_enabled": &a.setSignalHandlersEnabled,
		"chdb_connect":                     &a.connect,
		"chdb_close_conn":                  &a.closeConn,
		"chdb_query_n":                     &a.queryN,
		"chdb_result_buffer":               &a.resultBuffer,
		"chdb_result_length":               &a.resultLength,
		"chdb_result_error":                &a.resultError,
		"chdb_destroy_query_result":        &a.destroyResult,
	} {
		sym, err := purego.Dlsym(h, name)
		if err != nil {
			return nil, fmt.Errorf("chDB library %s lacks %s: %w", path, name, err)
		}
		purego.RegisterFunc(fn, sym)
	}
	a.setSignalHandlersEnabled(0)
	return &a, nil
}

func (db *DB) connect() (unsafe.Pointer, error) {
	args := append([]string{"flowlog", "--path=" + db.dir}, db.args...)
	cargs := make([][]byte, len(args))
	argv := make([]unsafe.Pointer, len(args))
	for i, s := range args {
		cargs[i] = append([]byte(s), 0)
		argv[i] = unsafe.Pointer(&cargs[i][0])
	}
	saved := saveSignalHandlers()
	c := db.lib.connect(int32(len(argv)), unsafe.Pointer(&argv[0]))
	saved.restore()
	runtime.KeepAlive(cargs)
	runtime.KeepAlive(argv)
	if c == nil {
		return nil, fmt.Errorf("chDB could not open data directory %s (see the engine's messages above)", db.dir)
	}
	return c, nil
}

// Dir is the absolute data directory.
func (db *DB) Dir() string { return db.dir }

// Close closes every connection. The engine itself stays loaded: the library
// cannot be unloaded, and reopening the same directory later works.
func (db *DB) Close() error {
	for _, c := range db.all {
		db.lib.closeConn(c)
	}
	db.all = nil
	return nil
}

// ErrQuery marks an error the engine reported for a statement (as opposed to
// a context cancellation).
var ErrQuery = errors.New("chDB query failed")

// Query runs one statement and returns its output in the given format. The
// call itself cannot be interrupted; when ctx ends first Query returns and
// the connection goes back to the pool once the statement finishes.
func (db *DB) Query(ctx context.Context, query, format string) ([]byte, error) {
	pool := db.conns
	if flowlog.IsIngest(ctx) {
		pool = db.ingest
	}
	var conn unsafe.Pointer
	select {
	case conn = <-pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := db.run(conn, query, format)
		pool <- conn
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (db *DB) run(connPtr unsafe.Pointer, query, format string) ([]byte, error) {
	q := []byte(query)
	f := []byte(format)
	if len(q) == 0 || len(f) == 0 {
		return nil, errors.New("chDB: empty query or format")
	}
	conn := *(*unsafe.Pointer)(connPtr)
	res := db.lib.queryN(conn, unsafe.Pointer(&q[0]), uintptr(len(q)), unsafe.Pointer(&f[0]), uintptr(len(f)))
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	if res == nil {
		return nil, fmt.Errorf("%w: no result from engine", ErrQuery)
	}
	defer db.lib.destroyResult(res)
	if e := db.lib.resultError(res); e != nil {
		return nil, fmt.Errorf("%w: %s", ErrQuery, cString(e))
	}
	n := db.lib.resultLength(res)
	buf := db.lib.resultBuffer(res)
	if n == 0 || buf == nil {
		return nil, nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(buf), n)...), nil
}

func cString(p unsafe.Pointer) string {
	var n int
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(p), n))
}

// Exec runs a statement whose output is not needed.
func (db *DB) Exec(ctx context.Context, sql string) error {
	_, err := db.Query(ctx, sql, "TabSeparated")
	return err
}

// QueryJSON runs a SELECT and returns its rows as JSONEachRow lines.
func (db *DB) QueryJSON(ctx context.Context, sql string) ([]byte, error) {
	return db.Query(ctx, sql, "JSONEachRow")
}

// insertDir is where Insert writes its files, inside the data directory.
func insertDir(dataDir string) string { return filepath.Join(dataDir, "flowlog-inserts") }

// insertPrefix begins the names of Insert's files ("batch-*.rowbinary",
// "batch-*.native").
const insertPrefix = "batch-"

// removeInsertLeftovers deletes the insert files a killed process left
// behind (each up to the size of a group commit), which nothing else would.
func removeInsertLeftovers(dataDir string) error {
	left, err := filepath.Glob(filepath.Join(insertDir(dataDir), insertPrefix+"*"))
	if err != nil {
		return err
	}
	for _, f := range left {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("chDB: removing a leftover insert file: %w", err)
		}
	}
	return nil
}

// Insert inserts data in an input format (Native, RowBinary). The engine
// ends inline binary INSERT data at the first blank line, so the data goes
// through a file (page cache, removed afterwards): FROM INFILE reads it at
// full speed.
func (db *DB) Insert(ctx context.Context, table, columns, format string, data []byte) error {
	dir := insertDir(db.dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, insertPrefix+"*."+strings.ToLower(format))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing insert file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing insert file: %w", err)
	}
	// Not collapsed on insert: the store's reads merge (store.Engine).
	return db.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) FROM INFILE '%s' SETTINGS optimize_on_insert = 0 FORMAT %s",
		table, columns, f.Name(), format))
}
