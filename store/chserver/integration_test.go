package chserver_test

// The integration suite against a real ClickHouse server (or cluster):
// FLOWLOG_TEST_CLICKHOUSE_URL (and FLOWLOG_TEST_CLICKHOUSE_CLUSTER). Without
// them every test here reports SKIPPED with the variable's name; nothing
// stands in for the server. The store's and the ingest's own suites run
// against the same server with the same variables (testutil.OpenEngine).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
	"github.com/flowlog/flowlog/store"
	"github.com/flowlog/flowlog/store/chserver"
)

// openStore opens a fresh database on the test server, dropped afterwards.
func openStore(t *testing.T) (*store.Store, *chserver.Engine, string) {
	t.Helper()
	url, cluster := testutil.Server(t)
	ctx := context.Background()
	eng, err := chserver.Open(ctx, chserver.Config{URL: url, Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("flowlog_test_%s_%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")), time.Now().UnixNano())
	st, err := store.OpenEngine(ctx, eng, store.Options{Database: db, Cluster: cluster})
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		on := ""
		if cluster != "" {
			on = " ON CLUSTER `" + cluster + "`"
		}
		eng.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`"+on+" SYNC")
		st.Close()
	})
	return st, eng, cluster
}

func count(t *testing.T, st *store.Store, final string) uint64 {
	t.Helper()
	var rows []struct {
		N uint64 `json:"n"`
	}
	if err := st.QueryRows(context.Background(), "SELECT count() AS n FROM "+st.Database()+".flows "+final, &rows); err != nil {
		t.Fatal(err)
	}
	return rows[0].N
}

// End to end: an agent's envelopes over gRPC into the server, START and
// DESTROY merged, a retried envelope not double-counted, aggregates and the
// rollups exact, the live tail's follower seeing the rows.
func TestServerIngestAndQuery(t *testing.T) {
	st, _, _ := openStore(t)
	ctx := context.Background()
	srv := ingest.New(st, ingest.Options{FlushInterval: 50 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g := srv.GRPCServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	defer srv.Shutdown(ctx, g)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := pb.NewFlowServiceClient(conn).StreamFlows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var followed []flowlog.Event
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go st.Follow(fctx, store.FollowOptions{Every: 50 * time.Millisecond}, func(evs []flowlog.Event) {
		mu.Lock()
		followed = append(followed, evs...)
		mu.Unlock()
	})

	start := time.Now().Add(-time.Minute).UnixMilli()
	var starts, destroys []*pb.FlowEvent
	for i := range 100 {
		e := &pb.FlowEvent{
			Type: pb.EventType_EVENT_START, FlowId: fmt.Sprintf("f%d", i), HostId: fmt.Sprintf("h%d", i%7), NetworkId: "mesh1",
			Protocol: 6, SrcPort: 40000, DstPort: 443,
			Src:       &pb.FlowParticipant{Ip: "10.1.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n1"},
			Dst:       &pb.FlowParticipant{Ip: "10.1.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n2"},
			StartTsMs: start, Version: 1,
		}
		starts = append(starts, e)
		if i%2 == 0 {
			d := proto.Clone(e).(*pb.FlowEvent)
			d.Type, d.EndTsMs, d.Version, d.BytesSent, d.BytesRecv = pb.EventType_EVENT_DESTROY, start+1000, 2, 100, 50
			destroys = append(destroys, d)
		}
	}
	for _, env := range [][]*pb.FlowEvent{starts, destroys, destroys} { // the last: a retry
		if err := stream.Send(&pb.FlowEnvelope{Events: env}); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil || !r.Success {
			t.Fatalf("ack: %v %v", r, err)
		}
	}
	if n := count(t, st, "FINAL"); n != 100 {
		t.Errorf("%d flows stored, want 100", n)
	}
	flows, err := st.Flows(ctx, flowlog.Filter{NetworkID: "mesh1", State: flowlog.StateActive}, flowlog.Page{PerPage: 1000})
	if err != nil || len(flows) != 50 {
		t.Errorf("active flows: %d %v, want 50", len(flows), err)
	}
	// Exact read raw, and again once the rollup job recomputed the day.
	for _, pass := range []string{"before the rollup", "after the rollup"} {
		top, err := st.Top(ctx, flowlog.TopQuery{Limit: 1})
		if err != nil || len(top) != 1 || top[0].Bytes != 50*150 || top[0].Flows != 100 {
			t.Errorf("top %s: %+v %v, want 7500 bytes over 100 flows", pass, top, err)
		}
		if _, err := st.Rollup(ctx); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 0, "the follower to publish the 150 events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(followed) >= 150
	})
	mu.Lock()
	defer mu.Unlock()
	if len(followed) != 150 {
		t.Errorf("the follower published %d events, want 150 (the retry once)", len(followed))
	}
}

// A batch inserted twice with its token (a retry after a lost answer) is
// stored once, before any merge: replicated tables drop the second block.
func TestServerRetriedInsertIsDeduplicated(t *testing.T) {
	st, _, cluster := openStore(t)
	if cluster == "" {
		t.Skip("SKIPPED: insert deduplication tokens apply to replicated tables: set " + testutil.ClusterEnv)
	}
	ctx := context.Background()
	b := &flowlog.Batch{Events: []flowlog.Event{{
		Type: flowlog.EventStart, FlowID: "f1", HostID: "h1", NetworkID: "n", Protocol: 6,
		Start: time.Now().Add(-time.Minute), Version: 1,
	}}}
	for range 2 {
		if err := st.Insert(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, st, ""); n != 1 {
		t.Errorf("%d rows before any merge, want 1 (the retry deduplicated)", n)
	}
}

// Queries cannot take the ingest's share of the pool: with every read slot
// held by slow queries, a statement of the ingest still runs at once.
func TestServerQueriesCannotTakeTheIngestsConnections(t *testing.T) {
	url, cluster := testutil.Server(t)
	ctx := context.Background()
	eng, err := chserver.Open(ctx, chserver.Config{URL: url, Cluster: cluster, Conns: 2}) // one for reads
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	slow := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := eng.QueryJSON(ctx, "SELECT sleepEachRow(1) FROM numbers(2) SETTINGS max_block_size = 1")
			slow <- err
		}()
	}
	time.Sleep(200 * time.Millisecond) // both slow queries sent (one waits for the read slot)
	if _, err := eng.QueryJSON(flowlog.IngestContext(ctx), "SELECT 1"); err != nil {
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
