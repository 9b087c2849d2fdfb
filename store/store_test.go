package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/store"
)

// One chDB directory per process: every test here shares it and isolates
// itself by database name. With FLOWLOG_TEST_CLICKHOUSE_URL set, a
// ClickHouse server instead (testutil.OpenEngine), in cluster mode with
// FLOWLOG_TEST_CLICKHOUSE_CLUSTER.
var (
	engine  store.Engine
	cluster string
)

// FLOWLOG_STORE_TEST_DIR keeps the data between runs (TestQueryCosts then
// loads its flows once).
func TestMain(m *testing.M) {
	os.Exit(testutil.RunWithEngine(m, os.Getenv("FLOWLOG_STORE_TEST_DIR"), 2, &engine, &cluster))
}

func open(t testing.TB, o store.Options) *store.Store {
	t.Helper()
	testutil.NeedEngine(t)
	if o.Database == "" {
		o.Database = strings.ReplaceAll(t.Name(), "/", "_")
	}
	o.Cluster = cluster
	s, err := store.OpenEngine(context.Background(), engine, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sharedEngine is the tests' engine behind a wrapper (a fault or a gate):
// the store a test opens on it may close, the engine shared by every test
// may not.
type sharedEngine struct{ store.Engine }

func (sharedEngine) Close() error { return nil }

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func ev(id string, typ flowlog.EventType, start time.Time, version int64) flowlog.Event {
	e := flowlog.Event{
		Type: typ, FlowID: id, HostID: "h1", HostName: "host-1", NetworkID: "net1",
		Protocol: 6, SrcPort: 40000, DstPort: 443, Direction: flowlog.DirEgress,
		Src:   flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1"), Type: flowlog.ParticipantNode, ID: "n1", Name: "node-1"},
		Dst:   flowlog.Participant{IP: netip.MustParseAddr("fd00::2"), Type: flowlog.ParticipantUser, ID: "u1", Name: "alice"},
		Start: start, Version: version,
	}
	if typ == flowlog.EventDestroy {
		e.End = start.Add(2 * time.Second)
		e.BytesSent, e.BytesRecv, e.PacketsSent, e.PacketsRecv = 1000, 2000, 10, 20
	}
	return e
}

func TestStartAndDestroyMergeToOneFlowAndRetriesDoNotDoubleCount(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	start := ev("f1", flowlog.EventStart, t0, 1)
	active := ev("f2", flowlog.EventStart, t0.Add(time.Second), 1)
	destroy := ev("f1", flowlog.EventDestroy, t0, 2)
	for i := 0; i < 2; i++ { // the second round is an agent's retry
		if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{start, active}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{destroy}}); err != nil {
			t.Fatal(err)
		}
	}
	flows, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 2 {
		t.Fatalf("want 2 flows, got %d: %+v", len(flows), flows)
	}
	// newest start first: f2 (active), then f1 (finished)
	if flows[0].FlowID != "f2" || !flows[0].Active || !flows[0].End.IsZero() {
		t.Errorf("first flow: want active f2, got %+v", flows[0])
	}
	got := flows[1]
	if got.FlowID != "f1" || got.Active || got.BytesRecv != 2000 || got.Version != 2 || !got.End.Equal(t0.Add(2*time.Second)) {
		t.Errorf("second flow: want finished f1 with DESTROY values, got %+v", got)
	}
	if got.Src.IP.String() != "10.0.0.1" || got.Dst.IP.String() != "fd00::2" || got.Dst.Type != flowlog.ParticipantUser {
		t.Errorf("participants not round-tripped: %+v %+v", got.Src, got.Dst)
	}
	var sum []struct {
		B uint64 `json:"b"`
	}
	if err := s.QueryRows(ctx, "SELECT sum(bytes_recv) AS b FROM "+s.Database()+".flows FINAL", &sum); err != nil {
		t.Fatal(err)
	}
	if sum[0].B != 2000 {
		t.Errorf("retries double-counted: sum(bytes_recv) = %d, want 2000", sum[0].B)
	}
}

func TestFiltersAndState(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	a := ev("a", flowlog.EventDestroy, t0, 2)
	b := ev("b", flowlog.EventStart, t0.Add(time.Minute), 1)
	b.Protocol, b.HostID, b.NetworkID = 17, "h2", "net2"
	b.Src.Type, b.Src.ID = flowlog.ParticipantExternal, ""
	c := ev("c", flowlog.EventStart, t0.Add(2*time.Minute), 1)
	c.Dst.Type, c.Dst.ID, c.Dst.Name = flowlog.ParticipantEgressRoute, "eg1", "egress"
	if err := s.Insert(ctx, &flowlog.Batch{Events: []flowlog.Event{a, b, c}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		f    flowlog.Filter
		want string
	}{
		{"all", flowlog.Filter{}, "c b a"},
		{"network", flowlog.Filter{NetworkID: "net2"}, "b"},
		{"host", flowlog.Filter{HostID: "h1"}, "c a"},
		{"protocol", flowlog.Filter{Protocols: []uint8{17}}, "b"},
		{"from", flowlog.Filter{From: t0.Add(time.Minute)}, "c b"},
		{"to", flowlog.Filter{To: t0.Add(time.Minute)}, "a"},
		{"src type", flowlog.Filter{SrcTypes: []flowlog.ParticipantType{flowlog.ParticipantExternal}}, "b"},
		{"dst type", flowlog.Filter{DstTypes: []flowlog.ParticipantType{flowlog.ParticipantEgressRoute, flowlog.ParticipantNode}}, "c"},
		{"src entity", flowlog.Filter{SrcEntityID: "n1"}, "c a"},
		{"dst entity", flowlog.Filter{DstEntityID: "eg1"}, "c"},
		{"username by name", flowlog.Filter{Username: "alice"}, "b a"},
		{"username by id", flowlog.Filter{Username: "u1"}, "b a"},
		{"active", flowlog.Filter{State: flowlog.StateActive}, "c b"},
		{"finished", flowlog.Filter{State: flowlog.StateFinished}, "a"},
		{"quote in value is data", flowlog.Filter{NetworkID: "x' OR 1=1 --"}, ""},
	}
	for _, tc := range cases {
		flows, err := s.Flows(ctx, tc.f, flowlog.Page{})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, f := range flows {
			ids = append(ids, f.FlowID)
		}
		if got := strings.Join(ids, " "); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	page2, err := s.Flows(ctx, flowlog.Filter{}, flowlog.Page{Number: 2, PerPage: 2})
	if err != nil || len(page2) != 1 || page2[0].FlowID != "a" {
		t.Errorf("page 2 of 2: got %+v, %v", page2, err)
	}
}

func TestRejectedEventsAreKeptOnce(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	r := flowlog.Rejected{Received: t0, Peer: "127.0.0.1:1", HostID: "h1", Index: 3, Reason: "protocol 300 > 255", Event: `{"protocol":300}`}
	for i := 0; i < 2; i++ {
		r.Received = r.Received.Add(time.Second) // a retry arrives later
		if err := s.Insert(ctx, &flowlog.Batch{Rejected: []flowlog.Rejected{r}}); err != nil {
			t.Fatal(err)
		}
	}
	var rows []struct {
		Reason string `json:"reason"`
		Idx    uint32 `json:"idx"`
		Event  string `json:"event"`
	}
	if err := s.QueryRows(ctx, "SELECT reason, idx, event FROM "+s.Database()+".rejected_events FINAL", &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Reason != r.Reason || rows[0].Idx != 3 || rows[0].Event != r.Event {
		t.Fatalf("want the rejected event once, got %+v", rows)
	}
}

func TestOpenIsIdempotentAndAppliesRetention(t *testing.T) {
	ctx := context.Background()
	db := "reopen"
	open(t, store.Options{Database: db})
	s := open(t, store.Options{Database: db, Retention: 7 * 24 * time.Hour})
	var rows []struct {
		V uint32 `json:"v"`
		N uint64 `json:"n"`
	}
	if err := s.QueryRows(ctx, "SELECT max(version) AS v, count() AS n FROM reopen.schema_migrations FINAL", &rows); err != nil {
		t.Fatal(err)
	}
	if rows[0].V != uint32(store.SchemaVersion()) || rows[0].N != uint64(store.SchemaSteps) {
		t.Errorf("migrations: got %+v, want each of %d steps once, up to %d", rows[0], store.SchemaSteps, store.SchemaVersion())
	}
	var tables []struct {
		E string `json:"engine_full"`
	}
	storage := "flows" // the table holding the parts: in cluster mode, the local one
	if cluster != "" {
		storage = "flows_local"
	}
	if err := s.QueryRows(ctx, "SELECT engine_full FROM system.tables WHERE database = 'reopen' AND name = '"+storage+"'", &tables); err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || !strings.Contains(tables[0].E, "toIntervalSecond(604800)") {
		t.Errorf("retention not applied: %+v", tables)
	}
}

// A time range reads only the partitions (days) it covers.
func TestTimeRangesPrunePartitions(t *testing.T) {
	ctx := context.Background()
	s := open(t, store.Options{})
	var evs []flowlog.Event
	for d := 0; d < 3; d++ {
		evs = append(evs, ev(fmt.Sprint("d", d), flowlog.EventStart, t0.Add(time.Duration(d)*24*time.Hour), 1))
	}
	if err := s.Insert(ctx, &flowlog.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Explain string `json:"explain"`
	}
	midnight := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC) // t0 is 2026-11-24 10:00
	day2 := flowlog.Filter{From: midnight, To: midnight.Add(24 * time.Hour)}
	q := "EXPLAIN indexes = 1 " + store.FlowsSQL(s, day2, flowlog.Page{PerPage: 10, Number: 1})
	if err := s.QueryRows(ctx, q, &plan); err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, l := range plan {
		text = append(text, strings.TrimSpace(l.Explain))
	}
	got := strings.Join(text, "\n")
	// The reading step must start from 1 of the 3 parts (one per day).
	if strings.Contains(got, "Parts: 3/3") || !strings.Contains(got, "Parts: 1/1") {
		t.Fatalf("partitions not pruned:\n%s", got)
	}
	flows, err := s.Flows(ctx, day2, flowlog.Page{})
	if err != nil || len(flows) != 1 || flows[0].FlowID != "d1" {
		t.Fatalf("range query: %+v %v", flows, err)
	}
}

// partsRead is EXPLAIN ESTIMATE of q: the parts it reads, table by table.
type partsRead struct {
	Table string `json:"table"`
	Parts uint64 `json:"parts"`
}

func estimate(t *testing.T, s *store.Store, q string) []partsRead {
	t.Helper()
	var est []partsRead
	if err := s.QueryRows(context.Background(), "EXPLAIN ESTIMATE "+q, &est); err != nil {
		t.Fatal(err)
	}
	return est
}
