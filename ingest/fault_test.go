package ingest_test

// Faults of the store under load: inserts that fail (the real engine, its
// flows table detached mid-run) and inserts that hang (a store whose Insert
// blocks until released). Whatever happens, success=true is never sent for
// an envelope whose rows are not committed, agents are told to retry, and
// the retries land exactly once.

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

	dto "github.com/prometheus/client_model/go"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/loadgen"
	"github.com/flowlog/flowlog/metrics"
	pb "github.com/flowlog/flowlog/proto/flow"
	"github.com/flowlog/flowlog/store"
)

// totals are what the flows table holds for one network, merged two ways.
type totals struct {
	Flows     int64  `json:"flows"`
	Finished  int64  `json:"finished"`
	BytesSent uint64 `json:"bytes_sent"`
	BytesRecv uint64 `json:"bytes_recv"`
}

func storedTotals(t *testing.T, st *store.Store, network string) (final, argMax totals) {
	t.Helper()
	ctx := context.Background()
	db, net := st.Database(), "'"+network+"'"
	var rows []totals
	if err := st.QueryRows(ctx, `SELECT count() AS flows, countIf(event_type = 'destroy') AS finished,
		sumIf(bytes_sent, event_type = 'destroy') AS bytes_sent, sumIf(bytes_recv, event_type = 'destroy') AS bytes_recv
		FROM `+db+`.flows FINAL WHERE network_id = `+net, &rows); err != nil || len(rows) != 1 {
		t.Fatalf("FINAL totals: %v %v", rows, err)
	}
	final = rows[0]
	rows = nil
	if err := st.QueryRows(ctx, `SELECT count() AS flows, countIf(t = 'destroy') AS finished,
		sumIf(bs, t = 'destroy') AS bytes_sent, sumIf(br, t = 'destroy') AS bytes_recv
		FROM (SELECT flow_id, argMax(event_type, version) AS t, argMax(bytes_sent, version) AS bs, argMax(bytes_recv, version) AS br
		      FROM `+db+`.flows WHERE network_id = `+net+` GROUP BY flow_id)`, &rows); err != nil || len(rows) != 1 {
		t.Fatalf("argMax totals: %v %v", rows, err)
	}
	return final, rows[0]
}

// The flows table disappears (DETACH) for a while under load from several
// streams, then comes back. Every envelope acked with success=true is in the
// store afterwards, and nothing is counted twice: loadgen's Expect is built
// only from success=true acks, and it resends whatever got success=false.
func TestFaultStoreFailsMidInsertUnderLoad(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond, InsertTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	network := "fault-fail"
	type result struct {
		rep loadgen.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := loadgen.Run(ctx, loadgen.Config{Addr: c.addr, Streams: 4, EventsPerEnvelope: 200, Window: 4,
			Duration: 3 * time.Second, NetworkID: network, Participants: 50})
		done <- result{rep, err}
	}()
	time.Sleep(700 * time.Millisecond)
	table := c.st.Database() + ".flows"
	if err := c.st.Exec(ctx, "DETACH TABLE "+table); err != nil {
		t.Fatal(err)
	}
	detached := time.Now()
	time.Sleep(time.Second)
	if err := c.st.Exec(ctx, "ATTACH TABLE "+table); err != nil {
		t.Fatal(err)
	}
	t.Logf("flows table detached for %v", time.Since(detached).Round(time.Millisecond))
	r := <-done
	if r.err != nil {
		t.Fatalf("load: %v", r.err)
	}
	rep := r.rep
	t.Logf("load: %d envelopes acked, %d answered success=false and resent; %d flows, %d finished",
		rep.EnvelopesAcked, rep.EnvelopesFailed, rep.Expect.Flows, rep.Expect.Finished)
	if rep.EnvelopesFailed == 0 {
		t.Fatal("no envelope was answered success=false while the table was detached")
	}
	if rep.EnvelopesAcked == 0 || rep.Expect.Finished == 0 {
		t.Fatalf("nothing acked: %+v", rep)
	}
	want := totals{Flows: rep.Expect.Flows, Finished: rep.Expect.Finished, BytesSent: rep.Expect.BytesSent, BytesRecv: rep.Expect.BytesRecv}
	final, argMax := storedTotals(t, c.st, network)
	if final != want || argMax != want {
		t.Fatalf("store holds FINAL %+v, argMax %+v; the acks promised %+v", final, argMax, want)
	}
}

// gatedStore is the real store whose inserts wait, while the gate is
// closed, until it opens or the insert's deadline passes.
type gatedStore struct {
	*store.Store
	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func (g *gatedStore) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
}

func (g *gatedStore) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

func (g *gatedStore) Insert(ctx context.Context, b *flowlog.Batch) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return fmt.Errorf("insert stalled: %w", ctx.Err())
		}
	}
	return g.Store.Insert(ctx, b)
}

// ackReader reads a stream's acks into a channel.
func ackReader(s pb.FlowService_StreamFlowsClient) <-chan *pb.FlowResponse {
	ch := make(chan *pb.FlowResponse, 1000)
	go func() {
		defer close(ch)
		for {
			r, err := s.Recv()
			if err != nil {
				if err != io.EOF {
					ch <- &pb.FlowResponse{Error: "stream ended: " + err.Error()}
				}
				return
			}
			ch <- r
		}
	}()
	return ch
}

// destroys are n finished flows of one envelope; bytes_sent is 100..100n, so a
// flow counted twice shows in the sum.
func destroys(prefix string, n int) []*pb.FlowEvent {
	evs := events(prefix, n)
	for i, e := range evs {
		e.Type, e.EndTsMs, e.Version = pb.EventType_EVENT_DESTROY, e.StartTsMs+10, e.Version+1
		e.BytesSent, e.PacketsSent = uint64(i+1)*100, 1
	}
	return evs
}

// The store hangs. No stream is answered while its envelopes are not
// committed; once the rows waiting reach the bound, new envelopes are
// refused at once (success=false), so memory stays bounded; an insert hung
// past its timeout is answered success=false. When the store is back, every
// held ack is success=true, and the refused envelopes, resent, land once.
func TestFaultStoreStallsMidInsert(t *testing.T) {
	base := start(t, ingest.Options{}) // for its store; its own server stays idle
	gs := &gatedStore{Store: base.st}
	m := metrics.NewCollector(nil)
	c := startOn(t, gs, ingest.Options{FlushInterval: 20 * time.Millisecond, MaxPendingRows: 1000, InsertTimeout: 2500 * time.Millisecond, Metrics: m})

	gs.close()
	const streams, perStream, perEnv = 3, 3, 100 // 900 rows pending: under the bound
	var held []<-chan *pb.FlowResponse
	for s := range streams {
		st := dial(t, c.addr)
		for e := range perStream {
			if err := st.Send(&pb.FlowEnvelope{Events: destroys(fmt.Sprintf("held-%d-%d", s, e), perEnv)}); err != nil {
				t.Fatal(err)
			}
		}
		held = append(held, ackReader(st))
	}
	// Once the collector holds all 9 (the streams race)...
	for deadline := time.Now().Add(10 * time.Second); ; {
		var d dto.Metric
		if err := m.EnvelopesReceived.Write(&d); err != nil {
			t.Fatal(err)
		}
		if d.GetCounter().GetValue() >= streams*perStream {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector received %v of %d envelopes", d.GetCounter().GetValue(), streams*perStream)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // counted just before being queued for commit
	// ...a fourth stream: 900 + 200 rows pass the bound of 1000: refused at
	// once, although the store is stalled.
	over := dial(t, c.addr)
	overAcks := ackReader(over)
	if err := over.Send(&pb.FlowEnvelope{Events: destroys("over", 2*perEnv)}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-overAcks:
		if r.Success || !strings.Contains(r.Error, "collector overloaded") {
			t.Fatalf("envelope over the pending bound: want success=false overloaded, got %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("envelope over the pending bound: no answer while the store stalls")
	}
	time.Sleep(700 * time.Millisecond) // well within the insert timeout: still stalled
	for i, ch := range held {
		select {
		case r := <-ch:
			t.Fatalf("stream %d answered %+v while its rows are not committed", i, r)
		default:
		}
	}
	gs.open()
	for i, ch := range held {
		for e := range perStream {
			select {
			case r := <-ch:
				if !r.Success || r.Error != "" {
					t.Fatalf("stream %d, envelope %d after the store came back: %+v", i, e, r)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("stream %d, envelope %d: no ack after the store came back", i, e)
			}
		}
	}

	// Hung past the insert timeout: success=false, nothing committed.
	gs.close()
	if err := over.Send(&pb.FlowEnvelope{Events: destroys("over", 2*perEnv)}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-overAcks:
		if r.Success || !strings.Contains(r.Error, "store unavailable, retry: insert stalled: context deadline exceeded") {
			t.Fatalf("insert hung past its timeout: want success=false naming it, got %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("insert hung past its timeout: no answer")
	}
	gs.open()
	// The agent's retry lands.
	if err := over.Send(&pb.FlowEnvelope{Events: destroys("over", 2*perEnv)}); err != nil {
		t.Fatal(err)
	}
	if r := <-overAcks; !r.Success {
		t.Fatalf("retry after the store came back: %+v", r)
	}

	var got []struct {
		N     uint64 `json:"n"`
		Bytes uint64 `json:"bytes"`
	}
	if err := c.st.QueryRows(context.Background(), "SELECT count() AS n, sum(bytes_sent) AS bytes FROM "+c.st.Database()+".flows FINAL", &got); err != nil {
		t.Fatal(err)
	}
	wantN := uint64(streams*perStream*perEnv + 2*perEnv)
	wantBytes := 100 * uint64(streams*perStream*perEnv*(perEnv+1)/2+2*perEnv*(2*perEnv+1)/2)
	if got[0].N != wantN || got[0].Bytes != wantBytes {
		t.Fatalf("store holds %d flows, %d bytes; want %d flows, %d bytes (each once)", got[0].N, got[0].Bytes, wantN, wantBytes)
	}
}

// startOn is start with gs in front of the store: the server inserts
// through it; c.st is the real store, for queries.
func startOn(t *testing.T, gs *gatedStore, o ingest.Options) *collector {
	t.Helper()
	srv := ingest.New(gs, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g := srv.GRPCServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ln)
	c := &collector{st: gs.Store, srv: srv, g: g, addr: ln.Addr().String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx, g)
	})
	return c
}
