package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/flowlog/flowlog/store/chdb"
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
	// their own. Default 4.
	Conns int

	// ClickHouseURL selects a ClickHouse server instead of the embedded
	// engine (package store/chserver). Empty: embedded.
	ClickHouseURL string
}

// Open opens the engine c selects and the flowlog schema in it.
func Open(ctx context.Context, c Config) (*Store, error) {
	eng, where, err := openEngine(c)
	if err != nil {
		return nil, err
	}
	st, err := OpenEngine(ctx, eng, c.Options)
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("opening store in %s: %w", where, err)
	}
	return st, nil
}

// openEngine is the one switch between engines; where names the engine's
// data for messages.
func openEngine(c Config) (eng Engine, where string, err error) {
	if c.Conns < 1 {
		c.Conns = 4
	}
	if c.ClickHouseURL != "" {
		// The ClickHouse server engine (store/chserver) plugs in here.
		return nil, "", errors.New("ClickHouse server engine: not available in this build")
	}
	lib, err := chdb.FindLib(c.ChdbLib)
	if err != nil {
		return nil, "", err
	}
	db, err := chdb.Open(lib, c.DataDir, c.Conns)
	if err != nil {
		return nil, "", err
	}
	return db, c.DataDir, nil
}
