package chdb

import "strconv"

// Settings are the engine's server settings flowlog chooses at open. A zero
// field keeps the engine's default.
type Settings struct {
	// CacheBytes bounds the engine's caches together: marks, skip-index
	// marks, primary index, query conditions and compiled expressions.
	// The engine sizes each of them to half the machine's RAM or 100 MB+
	// by default, a budget for a database server, not for a collector
	// that shares its host; within the bound each still keeps what the
	// queries use most.
	CacheBytes int64
}

// cacheShares split Settings.CacheBytes among the engine's caches (server
// settings), in eighths. The marks cache gets half: every read of a part
// needs its marks (about 24 bytes per column and 8,192 rows: 64 MiB hold
// the marks of some 500M flows), while the others only serve optional
// features (use_primary_key_cache, skip indexes) or are re-derivable at a
// small cost (query conditions, JIT-compiled expressions).
var cacheShares = []struct {
	setting string
	eighths int64
}{
	{"mark_cache_size", 4},
	{"index_mark_cache_size", 1},
	{"primary_index_cache_size", 1},
	{"query_condition_cache_size", 1},
	{"compiled_expression_cache_size", 1},
}

// args are the command-line arguments that set s: after "--", the engine
// reads --name=value as a server setting (its configuration file's
// top-level elements).
func (s Settings) args() []string {
	if s.CacheBytes <= 0 {
		return nil
	}
	args := []string{"--"}
	for _, c := range cacheShares {
		args = append(args, "--"+c.setting+"="+strconv.FormatInt(s.CacheBytes*c.eighths/8, 10))
	}
	return args
}
