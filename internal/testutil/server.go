package testutil

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
	if os.Getenv(LocalClusterEnv) != "" {
		eng, err := openLocalCluster(lib, dir, conns)
		return eng, localCluster, err
	}
	db, err := chdb.Open(lib, dir, conns, chdb.Settings{})
	return db, "", err
}

// LocalClusterEnv, set to 1, runs the store's and the ingest's suites in
// cluster mode on the embedded engine: a cluster of one shard, this process
// (Distributed tables over local ones, so the store's SQL runs through the
// Distributed layer with the sharding keys), with what needs a server and
// Keeper taken out of the statements: ON CLUSTER and replication.
const LocalClusterEnv = "FLOWLOG_TEST_LOCAL_CLUSTER"

// localCluster is the cluster LocalClusterEnv defines.
const localCluster = "flowlog_local"

// localClusterConfig: the embedded engine reads config.xml from its working
// directory when it connects; the cluster's one replica is this process.
const localClusterConfig = `<clickhouse>
	<tcp_port>9000</tcp_port>
	<remote_servers><` + localCluster + `><shard><replica><host>localhost</host><port>9000</port></replica></shard></` + localCluster + `></remote_servers>
</clickhouse>`

// localClusterEngine strips from each statement what a one-process cluster
// cannot run.
type localClusterEngine struct{ store.Engine }

var localClusterStrip = strings.NewReplacer(" ON CLUSTER `"+localCluster+"`", "", "ENGINE = Replicated", "ENGINE = ")

func (e localClusterEngine) Exec(ctx context.Context, sql string) error {
	return e.Engine.Exec(ctx, localClusterStrip.Replace(sql))
}

func openLocalCluster(lib, dir string, conns int) (store.Engine, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(localClusterConfig), 0o640); err != nil {
		return nil, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if err := os.Chdir(dir); err != nil {
		return nil, err
	}
	db, err := chdb.Open(lib, filepath.Join(dir, "data"), conns, chdb.Settings{})
	if cerr := os.Chdir(wd); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return localClusterEngine{db}, nil
}
