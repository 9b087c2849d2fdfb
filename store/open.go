package store

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/flowlog/flowlog/store/chdb"
	"github.com/flowlog/flowlog/store/chserver"
)

// Config says which engine holds the flows and how to open it. The engine is
// picked here and nowhere else: the embedded chDB engine in DataDir, unless
// ClickHouseURL names a ClickHouse server.
type Config struct {
	Options

	DataDir string // the embedded engine's data directory (one process per directory)
	ChdbLib string // path of libchdb.so; empty: chdb.FindLib's search ($FLOWLOG_CHDB_LIB, the cache)
	// Conns is how many statements may run at once: each connection runs
	// one at a time, so the insert writers and the API's queries each need
	// their own. Default 4. The embedded engine reserves Conns-2 of them
	// for the ingest (flowlog.IngestContext), which queries cannot take.
	Conns int
	// EngineCacheBytes bounds the embedded engine's caches together
	// (chdb.Settings.CacheBytes); zero: the engine's defaults, sized for
	// a database server (half the RAM for marks alone).
	EngineCacheBytes int64

	// ClickHouseURL selects a ClickHouse server instead of the embedded
	// engine (package store/chserver; Options.Cluster for cluster mode).
	// Empty: embedded. ClickHouseCA is the PEM file of the CA that signed
	// the servers' certificates (https URLs; empty: the system's roots).
	ClickHouseURL, ClickHouseCA string
}

// DefaultEngineCacheBytes is the collector's bound on the embedded engine's
// caches: twice what the marks of a billion flows take, a fraction of the
// engine's own defaults (which assume a machine of its own).
const DefaultEngineCacheBytes = 128 << 20

// Open opens the engine c selects and the flowlog schema in it.
func Open(ctx context.Context, c Config) (*Store, error) {
	eng, where, err := openEngine(ctx, c)
	if err != nil {
		return nil, err
	}
	st, err := OpenEngine(ctx, eng, c.Options)
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("opening store in %s: %w", where, err)
	}
	if db, ok := eng.(*chdb.DB); ok {
		releaseStartupPages(db, c.Logger)
	}
	return st, nil
}

// releaseStartupPages gives back the embedded engine's start-up code pages
// once the engine has started and the schema is in place (about 100 MiB of
// RSS, chdb.ReleaseStartupPages). It only saves memory: a failure is
// logged, and the collector runs as it would have.
func releaseStartupPages(db *chdb.DB, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	n, err := db.ReleaseStartupPages()
	if err != nil {
		log.Warn("could not release the engine's start-up pages", "err", err)
		return
	}
	log.Debug("released the engine's start-up pages", "bytes", n)
}

// openEngine is the one switch between engines; where names the engine's
// data for messages.
func openEngine(ctx context.Context, c Config) (eng Engine, where string, err error) {
	if c.Conns < 1 {
		c.Conns = 4
	}
	if c.ClickHouseURL != "" {
		e, err := chserver.Open(ctx, chserver.Config{URL: c.ClickHouseURL, Cluster: c.Cluster, CAFile: c.ClickHouseCA, Conns: c.Conns})
		if err != nil {
			return nil, "", err
		}
		return e, "the ClickHouse server", nil
	}
	lib, err := chdb.FindLib(c.ChdbLib)
	if err != nil {
		return nil, "", err
	}
	db, err := chdb.Open(lib, c.DataDir, c.Conns, chdb.Settings{CacheBytes: c.EngineCacheBytes})
	if err != nil {
		return nil, "", err
	}
	return db, c.DataDir, nil
}
