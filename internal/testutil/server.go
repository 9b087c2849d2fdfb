package testutil

import (
	"context"
	"os"
	"testing"

	"github.com/flowlog/flowlog/store"
	"github.com/flowlog/flowlog/store/chdb"
	"github.com/flowlog/flowlog/store/chserver"
)

// The integration suite's switches: the store and ingest tests run against
// this ClickHouse server (an http(s) URL, chserver.Config.URL) instead of
// the embedded engine when it is set, in cluster mode when the cluster is
// named too. No test stands in for a server when they are not set.
const (
	ServerEnv  = "FLOWLOG_TEST_CLICKHOUSE_URL"
	ClusterEnv = "FLOWLOG_TEST_CLICKHOUSE_CLUSTER"
)

// Server returns the test server's URL and cluster (empty: single server),
// or skips, saying which variable to set. It skips under CI too: CI has no
// server, and the skip names what did not run.
func Server(t testing.TB) (url, cluster string) {
	t.Helper()
	url = os.Getenv(ServerEnv)
	if url == "" {
		t.Skipf("SKIPPED: needs a ClickHouse server: set %s (e.g. http://default:@127.0.0.1:8123) and, for cluster mode, %s",
			ServerEnv, ClusterEnv)
	}
	return url, os.Getenv(ClusterEnv)
}

// OpenEngine opens the engine a test binary's tests share: the server of
// FLOWLOG_TEST_CLICKHOUSE_URL when set (cluster is then
// FLOWLOG_TEST_CLICKHOUSE_CLUSTER, to put in store.Options.Cluster), else
// the embedded engine in dir with conns connections.
func OpenEngine(lib, dir string, conns int) (eng store.Engine, cluster string, err error) {
	if url := os.Getenv(ServerEnv); url != "" {
		cluster = os.Getenv(ClusterEnv)
		e, err := chserver.Open(context.Background(), chserver.Config{URL: url, Cluster: cluster})
		return e, cluster, err
	}
	db, err := chdb.Open(lib, dir, conns)
	return db, "", err
}
