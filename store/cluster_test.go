package store_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// recorder is an Engine that runs nothing and records the statements: it
// shows the schema statements a mode sends, as text. (Whether a server
// accepts them is for the engine tests and the integration suite.)
type recorder struct {
	mu    sync.Mutex
	stmts []string
}

func (r *recorder) Exec(_ context.Context, sql string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = append(r.stmts, sql)
	return nil
}
func (r *recorder) QueryJSON(context.Context, string) ([]byte, error) { return nil, nil }
func (r *recorder) Insert(context.Context, string, string, string, []byte) error {
	return nil
}
func (r *recorder) Close() error { return nil }

// schemaText is every statement Open sends on an empty database, one per
// paragraph.
func schemaText(t *testing.T, cluster string) (string, []string) {
	t.Helper()
	rec := &recorder{}
	s, err := store.OpenEngine(context.Background(), rec, store.Options{Database: "flowlog", Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var b strings.Builder
	for _, st := range rec.stmts {
		b.WriteString(strings.TrimSpace(st))
		b.WriteString(";\n\n")
	}
	return b.String(), rec.stmts
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./store/ -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("schema statements differ from %s (go test ./store/ -run %s -update, then review the diff):\n%s", path, t.Name(), got)
	}
}

// The schema a single server (and the embedded engine) gets, and its
// cluster form: replicated local tables ON CLUSTER behind Distributed
// tables with their sharding keys, TTL changes on the local tables.
func TestSchemaStatementsSingleServerAndCluster(t *testing.T) {
	single, _ := schemaText(t, "")
	golden(t, "schema-single.sql", single)
	cluster, stmts := schemaText(t, "flows_cluster")
	golden(t, "schema-cluster.sql", cluster)

	// What must hold whatever the golden file says.
	for _, st := range stmts {
		if strings.HasPrefix(st, "CREATE") && !strings.Contains(st, " ON CLUSTER `flows_cluster`") {
			t.Errorf("DDL without ON CLUSTER: %.80s", st)
		}
		if strings.Contains(st, "ENGINE = ReplacingMergeTree") || strings.Contains(st, "ENGINE = MergeTree") {
			t.Errorf("unreplicated table in cluster mode: %.80s", st)
		}
	}
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS `flowlog`.flows ON CLUSTER `flows_cluster` AS `flowlog`.flows_local ENGINE = Distributed(`flows_cluster`, " +
			"`flowlog`, flows_local, cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code))",
		"ALTER TABLE `flowlog`.flows_local ON CLUSTER `flows_cluster` MODIFY TTL",
		"ENGINE = ReplicatedReplacingMergeTree(version)",
	} {
		if !strings.Contains(cluster, want) {
			t.Errorf("cluster schema lacks %q", want)
		}
	}
}

// Every cluster statement parses (EXPLAIN AST on the embedded engine: the
// same parser as the server's; nothing runs, as there is no cluster here).
func TestClusterSchemaParses(t *testing.T) {
	testutil.NeedEngine(t)
	if _, err := engine.QueryJSON(context.Background(), "EXPLAIN AST CREATE TABLE x ON CLUSTER (a UInt8)"); err == nil {
		t.Fatal("EXPLAIN AST accepted a malformed statement: this test would prove nothing")
	}
	_, stmts := schemaText(t, "flows_cluster")
	for _, st := range stmts {
		if _, err := engine.QueryJSON(context.Background(), "EXPLAIN AST "+st); err != nil {
			t.Errorf("%v\n%s", err, st)
		}
	}
}

// A statement without a known cluster form fails the migration (so a new
// migration cannot half-work on a cluster); column changes reach both the
// local and the Distributed table, other changes the local one only.
func TestClusterDDLRewrites(t *testing.T) {
	testutil.NeedEngine(t)
	const flowsKey = "cityHash64(network_id, protocol, src_ip, src_port, dst_ip, dst_port, icmp_type, icmp_code)"
	for _, c := range []struct {
		stmt, want, err string
	}{
		{stmt: "CREATE TABLE IF NOT EXISTS `db`.newtable (a UInt8) ENGINE = MergeTree ORDER BY a", err: "table newtable has no sharding key"},
		{stmt: "CREATE TABLE IF NOT EXISTS `db`.flows (a UInt8) ENGINE = Memory", err: "only *MergeTree engines"},
		{stmt: "CREATE MATERIALIZED VIEW `db`.mv TO `db`.x AS SELECT 1", err: "no cluster form"},
		{stmt: "ALTER TABLE `db`.flows ADD COLUMN IF NOT EXISTS conn_key String",
			want: "ALTER TABLE `db`.flows_local ON CLUSTER `c` ADD COLUMN IF NOT EXISTS conn_key String\n" +
				"ALTER TABLE `db`.flows ON CLUSTER `c` ADD COLUMN IF NOT EXISTS conn_key String"},
		{stmt: "ALTER TABLE `db`.flows MODIFY SETTING merge_with_ttl_timeout = 3600",
			want: "ALTER TABLE `db`.flows_local ON CLUSTER `c` MODIFY SETTING merge_with_ttl_timeout = 3600"},
		{stmt: "ALTER TABLE `db`.flows_1m ADD COLUMN shadowed UInt8 COMMENT 'a, b (c)', MODIFY ORDER BY (bucket, shadowed)",
			want: "ALTER TABLE `db`.flows_1m_local ON CLUSTER `c` ADD COLUMN shadowed UInt8 COMMENT 'a, b (c)', MODIFY ORDER BY (bucket, shadowed)\n" +
				"ALTER TABLE `db`.flows_1m ON CLUSTER `c` ADD COLUMN shadowed UInt8 COMMENT 'a, b (c)'"},
		{stmt: "DROP TABLE IF EXISTS `db`.flows_v3",
			want: "DROP TABLE IF EXISTS `db`.flows_v3 ON CLUSTER `c` SYNC\nDROP TABLE IF EXISTS `db`.flows_v3_local ON CLUSTER `c` SYNC"},
		{stmt: "RENAME TABLE `db`.flows_v3 TO `db`.flows",
			want: "RENAME TABLE `db`.flows_v3_local TO `db`.flows_local ON CLUSTER `c`\n" +
				"DROP TABLE IF EXISTS `db`.flows_v3 ON CLUSTER `c` SYNC\n" +
				"DROP TABLE IF EXISTS `db`.flows ON CLUSTER `c` SYNC\n" +
				"CREATE TABLE `db`.flows ON CLUSTER `c` AS `db`.flows_local ENGINE = Distributed(`c`, `db`, flows_local, " + flowsKey + ")"},
		{stmt: "RENAME TABLE `db`.flows TO `db`.other", err: "table other has no sharding key"},
		{stmt: "INSERT INTO `db`.rollup_dirty (day, marked) VALUES ('2026-01-01', 1)",
			want: "INSERT INTO `db`.rollup_dirty (day, marked) VALUES ('2026-01-01', 1)"},
	} {
		got, err := store.ClusterDDL(c.stmt, "c")
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one saying %q", c.stmt, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.stmt, err)
		case c.err == "" && strings.Join(got, "\n") != c.want:
			t.Errorf("%s:\n got %q\nwant %q", c.stmt, strings.Join(got, "\n"), c.want)
		}
		for _, st := range got { // and the server's parser takes each
			if _, err := engine.QueryJSON(context.Background(), "EXPLAIN AST "+st); err != nil {
				t.Errorf("%v\n%s", err, st)
			}
		}
	}
}

// Collectors starting at once on an empty database both migrate it: every
// step is idempotent (IF NOT EXISTS, marks and records that collapse), so
// both open, and the schema is whole and recorded once per step.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	testutil.NeedEngine(t)
	db := strings.ReplaceAll(t.Name(), "/", "_")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.OpenEngine(context.Background(), engine, store.Options{Database: db, Cluster: cluster})
			if err == nil {
				store.StopJobs(s)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, store.Options{Database: db})
	var rows []struct {
		V uint32 `json:"version"`
	}
	if err := s.QueryRows(context.Background(), "SELECT version FROM "+s.Database()+".schema_migrations FINAL ORDER BY version", &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != store.SchemaSteps || rows[len(rows)-1].V != uint32(store.SchemaVersion()) {
		t.Fatalf("schema_migrations after concurrent opens: %+v, want %d versions up to %d once each", rows, store.SchemaSteps, store.SchemaVersion())
	}
	flowsRebuilt(t, s)
}

// flowsRebuilt fails unless flows has migration 3's shape (what the store
// queries and the table holding the data) and its spare tables are gone.
func flowsRebuilt(t *testing.T, s *store.Store) {
	t.Helper()
	var tables []struct {
		T string `json:"table"`
	}
	if err := s.QueryRows(context.Background(), "SELECT table FROM system.columns WHERE database = '"+strings.Trim(s.Database(), "`")+
		"' AND name = 'rank' ORDER BY table", &tables); err != nil {
		t.Fatal(err)
	}
	want := "flows"
	if cluster != "" {
		want = "flows flows_local"
	}
	var got []string
	for _, r := range tables {
		got = append(got, r.T)
	}
	if strings.Join(got, " ") != want {
		t.Fatalf("tables with migration 3's rank column: %q, want %q (flows rebuilt once, spares dropped)", got, want)
	}
}

// A collector that crashed right after its claim of migration 3 (the old
// flows renamed away, the copy complete) leaves a state the next open
// finishes, with every flow.
func TestMigrationFinishesAClaimOfACrashedCollector(t *testing.T) {
	testutil.NeedEngine(t)
	ctx := context.Background()
	db := strings.ReplaceAll(t.Name(), "/", "_")
	if err := store.OldSchema(ctx, engine, db, cluster, 2); err != nil {
		t.Fatal(err)
	}
	if err := engine.Exec(ctx, "INSERT INTO `"+db+"`.flows (event_type, flow_id, host_id, network_id, start_ts, version) VALUES "+
		"('start', 'a', 'h1', 'n1', '2026-11-24 10:00:00', 1), ('destroy', 'a', 'h1', 'n1', '2026-11-24 10:00:00', 2), "+
		"('start', 'b', 'h1', 'n1', '2026-11-24 11:00:00', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := store.ClaimV3AndCrash(ctx, engine, db, cluster); err != nil {
		t.Fatal(err)
	}
	s := open(t, store.Options{Database: db})
	flowsRebuilt(t, s)
	flowsAAndB(t, s, "after finishing the crashed claim")
}

// Migration 13 stores the flows in time order and keeps every row: those
// of a store at version 12, and those of a collector that crashed after
// its swap, before its copy (the old rows then sit in flows_v12 only).
func TestMigrationSortsFlowsByHourAndKeepsThem(t *testing.T) {
	testutil.NeedEngine(t)
	ctx := context.Background()
	for _, crashed := range []bool{false, true} {
		db := strings.ReplaceAll(t.Name(), "/", "_") + fmt.Sprint("_", crashed)
		if err := store.OldSchema(ctx, engine, db, cluster, 12); err != nil {
			t.Fatal(err)
		}
		if err := engine.Exec(ctx, "INSERT INTO `"+db+"`.flows (event_type, flow_id, host_id, network_id, start_ts, version) VALUES "+
			"('start', 'a', 'h1', 'n1', '2026-11-24 10:00:00', 1), ('destroy', 'a', 'h1', 'n1', '2026-11-24 10:00:00', 2), "+
			"('start', 'b', 'h1', 'n1', '2026-11-24 23:59:59', 1)"); err != nil {
			t.Fatal(err)
		}
		if crashed {
			if err := store.SwapV13AndCrash(ctx, engine, db, cluster); err != nil {
				t.Fatal(err)
			}
		}
		s := open(t, store.Options{Database: db})
		var keys []struct {
			T string `json:"name"`
			K string `json:"sorting_key"`
		}
		if err := s.QueryRows(ctx, "SELECT name, sorting_key FROM system.tables WHERE database = '"+db+"' AND (name LIKE 'flows\\_v%' OR name IN ('flows', 'flows_local')) AND engine LIKE '%MergeTree' ORDER BY name", &keys); err != nil {
			t.Fatal(err)
		}
		want := "flows"
		if cluster != "" {
			want = "flows_local"
		}
		if len(keys) != 1 || keys[0].T != want || keys[0].K != "toStartOfHour(start_ts), network_id, host_id, flow_id, start_ts" {
			t.Fatalf("crashed %v: flows tables after migration 13: %+v, want %s sorted by the hour first, spares dropped", crashed, keys, want)
		}
		flowsAAndB(t, s, fmt.Sprintf("crashed %v: after migration 13", crashed))
	}
}

// ddlCounter passes everything to the shared engine and counts the DDL.
type ddlCounter struct {
	store.Engine
	mu  sync.Mutex
	ddl []string
}

func (d *ddlCounter) Exec(ctx context.Context, sql string) error {
	if s := strings.TrimSpace(sql); strings.HasPrefix(s, "CREATE") || strings.HasPrefix(s, "ALTER") {
		d.mu.Lock()
		d.ddl = append(d.ddl, s)
		d.mu.Unlock()
	}
	return d.Engine.Exec(ctx, sql)
}
func (d *ddlCounter) Close() error { return nil } // the engine is shared

// A collector restarting on an up-to-date schema sends no DDL: on a cluster
// DDL needs Keeper, and a restart must not (reads work without it).
func TestReopenSendsNoDDL(t *testing.T) {
	testutil.NeedEngine(t)
	first := &ddlCounter{Engine: engine}
	db := strings.ReplaceAll(t.Name(), "/", "_")
	s, err := store.OpenEngine(context.Background(), first, store.Options{Database: db, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(first.ddl) == 0 {
		t.Fatal("the first open sent no DDL: this test would prove nothing")
	}
	again := &ddlCounter{Engine: engine}
	if s, err = store.OpenEngine(context.Background(), again, store.Options{Database: db, Cluster: cluster}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(again.ddl) != 0 {
		t.Errorf("reopening sent DDL: %q", again.ddl)
	}
}

// failFirstExec fails the first statement it is given, first recording
// the latest migration as done when record is set (as a collector that
// started at the same time and got there first would), or every time
// when always is set.
type failFirstExec struct {
	sharedEngine
	db             string
	record, always bool
	failed         atomic.Int32
}

func (e *failFirstExec) Exec(ctx context.Context, sql string) error {
	if e.failed.Load() == 0 || e.always && strings.Contains(sql, "CREATE") {
		e.failed.Add(1)
		if e.record {
			if err := e.Engine.Exec(ctx, fmt.Sprintf("INSERT INTO `%s`.schema_migrations (version, name) VALUES (%d, 'by the other collector')",
				e.db, store.SchemaVersion())); err != nil {
				return err
			}
		}
		return errors.New("Code: 60. DB::Exception: Unknown table expression identifier 'flows' (as another collector's swap would cause)")
	}
	return e.Engine.Exec(ctx, sql)
}

// A migration step that fails while a collector started at the same time
// is further on (migration 13's swap leaves no flows table for a moment)
// is done once that collector recorded it; a step that keeps failing is
// an error.
func TestAMigrationStepAnotherCollectorRecordedIsDone(t *testing.T) {
	testutil.NeedEngine(t)
	ctx := context.Background()
	for _, c := range []struct {
		name           string
		record, always bool
	}{{"recorded by another", true, false}, {"failing", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			db := strings.ReplaceAll(t.Name(), "/", "_")
			if err := store.OldSchema(ctx, engine, db, cluster, store.SchemaSteps-1); err != nil {
				t.Fatal(err)
			}
			e := &failFirstExec{sharedEngine: sharedEngine{engine}, db: db, record: c.record, always: c.always}
			s, err := store.OpenEngine(ctx, e, store.Options{Database: db, Cluster: cluster})
			if c.always {
				if err == nil || e.failed.Load() < 2 {
					t.Fatalf("a step failing every time: open %v after %d tries, want an error after retries", err, e.failed.Load())
				}
				return
			}
			if err != nil {
				t.Fatalf("the step another collector recorded: %v, want it done", err)
			}
			store.StopJobs(s)
		})
	}
}

// flowsAAndB fails unless the merged flows are the two a migration test
// wrote: a (ended) and b (open).
func flowsAAndB(t *testing.T, s *store.Store, when string) {
	t.Helper()
	var rows []struct {
		ID string `json:"flow_id"`
		T  string `json:"event_type"`
	}
	if err := s.QueryRows(context.Background(), "SELECT flow_id, event_type FROM "+s.Database()+".flows FINAL ORDER BY flow_id", &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ID != "a" || rows[0].T != "destroy" || rows[1].ID != "b" || rows[1].T != "start" {
		t.Fatalf("flows %s: %+v, want a (destroy), b (start)", when, rows)
	}
}
