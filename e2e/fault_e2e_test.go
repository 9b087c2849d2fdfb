package e2e

// Faults and abuse through the binary: kill -9 under load, the ingest rate
// limit and the HTTP limits as flags.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// killLoad is one stream of the kill -9 test: every envelope it sent, in
// order, and how many of them were acked success=true (acks are in order:
// ack i answers envelope i).
type killLoad struct {
	sent  [][]flowVersion
	acked []bool
	err   error
}

type flowVersion struct {
	id      string
	version int64
}

// runKillLoad streams envelopes of perEnv events until the stream breaks:
// each envelope STARTs new flows and finishes (DESTROY, version+1) the flows
// started two envelopes earlier, so acked and unacked versions interleave.
// successes counts the success=true acks as they come.
func runKillLoad(cc *grpc.ClientConn, network string, stream, perEnv int, successes *atomic.Int64) *killLoad {
	l := &killLoad{}
	s, err := pb.NewFlowServiceClient(cc).StreamFlows(context.Background())
	if err != nil {
		l.err = err
		return l
	}
	var mu sync.Mutex
	window := make(chan struct{}, 16)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			r, err := s.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			l.acked = append(l.acked, r.Success)
			mu.Unlock()
			if r.Success {
				successes.Add(1)
			}
			<-window
		}
	}()
	base := time.Now().Add(-time.Minute).UnixMilli()
	var starts [][]*pb.FlowEvent
	for e := 0; ; e++ {
		var evs []*pb.FlowEvent
		var rec []flowVersion
		var mine []*pb.FlowEvent
		for i := range perEnv / 2 {
			id := fmt.Sprintf("%s-s%d-e%d-%d", network, stream, e, i)
			ev := &pb.FlowEvent{
				Type: pb.EventType_EVENT_START, FlowId: id, HostId: fmt.Sprintf("h%d", stream), NetworkId: network,
				Protocol: 6, SrcPort: uint32(1024 + i), DstPort: 443, Direction: pb.Direction_DIR_EGRESS,
				Src:       &pb.FlowParticipant{Ip: "10.7.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE},
				Dst:       &pb.FlowParticipant{Ip: "10.7.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE},
				StartTsMs: base + int64(e), Version: base + int64(e),
			}
			evs, mine = append(evs, ev), append(mine, ev)
			rec = append(rec, flowVersion{id, ev.Version})
		}
		starts = append(starts, mine)
		if e >= 2 {
			for _, st := range starts[e-2] {
				d := &pb.FlowEvent{Type: pb.EventType_EVENT_DESTROY, FlowId: st.FlowId, HostId: st.HostId, NetworkId: network,
					Protocol: 6, SrcPort: st.SrcPort, DstPort: 443, Direction: pb.Direction_DIR_EGRESS, Src: st.Src, Dst: st.Dst,
					StartTsMs: st.StartTsMs, EndTsMs: st.StartTsMs + 5, Version: st.Version + 1, BytesSent: 100, BytesRecv: 200, PacketsSent: 1, PacketsRecv: 1}
				evs = append(evs, d)
				rec = append(rec, flowVersion{d.FlowId, d.Version})
			}
			starts[e-2] = nil
		}
		select {
		case window <- struct{}{}:
		case <-recvDone: // the stream broke while the window was full
			return l
		}
		mu.Lock()
		l.sent = append(l.sent, rec) // recorded before Send: an envelope may be stored but never acked
		mu.Unlock()
		if err := s.Send(&pb.FlowEnvelope{Events: evs}); err != nil {
			break
		}
	}
	<-recvDone
	return l
}

func (l *killLoad) ackedEnvelopes() int {
	n := 0
	for _, ok := range l.acked {
		if ok {
			n++
		}
	}
	return n
}

// storedVersions pages through the network's flows with the cursor and
// returns each flow's stored (latest) version.
func storedVersions(t *testing.T, base, network string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	cursor := ""
	for {
		q := "/api/v1/flows?per_page=1000&network_id=" + url.QueryEscape(network)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		resp, err := http.Get(base + q)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Response []struct {
				FlowID  string    `json:"flow_id"`
				Version time.Time `json:"version"`
			}
			Next string
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", q, resp.StatusCode, err)
		}
		for _, f := range page.Response {
			if _, dup := got[f.FlowID]; dup {
				t.Fatalf("flow %s listed twice", f.FlowID)
			}
			got[f.FlowID] = f.Version.UnixMilli()
		}
		if page.Next == "" || len(page.Response) == 0 {
			return got
		}
		cursor = page.Next
	}
}

// kill -9 while several streams send: after a restart on the same data
// directory, every event of every envelope acked success=true is there
// (its flow at that version or a later one that was also sent), and nothing
// that was never sent.
func TestKill9UnderLoadKeepsEveryAckedEvent(t *testing.T) {
	data := t.TempDir()
	c := serve(t, data, "--ingest-rate", "0")
	const streams, perEnv, network = 4, 200, "kill9load"
	loads := make([]*killLoad, streams)
	successes := make([]atomic.Int64, streams)
	var wg sync.WaitGroup
	for i := range loads {
		cc, err := grpc.NewClient(c.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		wg.Go(func() { loads[i] = runKillLoad(cc, network, i, perEnv, &successes[i]) })
	}
	// Kill once acks are flowing on every stream (the streams keep sending:
	// inserts are in progress).
	testutil.WaitFor(t, 60*time.Second, "a few acks on every stream", func() bool {
		for i := range successes {
			if successes[i].Load() < 3 {
				return false
			}
		}
		return true
	})
	c.kill9(t)
	loadsDone := make(chan struct{})
	go func() { wg.Wait(); close(loadsDone) }()
	select {
	case <-loadsDone:
	case <-time.After(30 * time.Second):
		t.Fatal("streams did not end after the collector was killed")
	}

	acked := map[string]int64{} // flow -> highest version acked
	sent := map[string]int64{}  // flow -> highest version sent
	var ackedEnvs, sentEnvs int
	for i, l := range loads {
		if l.err != nil {
			t.Fatalf("stream %d: %v", i, l.err)
		}
		if l.ackedEnvelopes() == 0 {
			t.Fatalf("stream %d: no envelope acked before the kill", i)
		}
		ackedEnvs += l.ackedEnvelopes()
		sentEnvs += len(l.sent)
		for e, rec := range l.sent {
			for _, fv := range rec {
				sent[fv.id] = max(sent[fv.id], fv.version)
				if e < len(l.acked) && l.acked[e] {
					acked[fv.id] = max(acked[fv.id], fv.version)
				}
			}
		}
	}
	if sentEnvs == ackedEnvs {
		t.Fatal("every envelope sent was acked: the kill did not happen mid-stream")
	}

	c = serve(t, data, "--ingest-rate", "0")
	stored := storedVersions(t, c.http, network)
	t.Logf("%d envelopes sent, %d acked before kill -9; %d flows acked, %d stored after the restart", sentEnvs, ackedEnvs, len(acked), len(stored))
	missing, older := 0, 0
	for id, v := range acked {
		s, ok := stored[id]
		switch {
		case !ok:
			missing++
		case s < v:
			older++
		}
	}
	if missing > 0 || older > 0 {
		t.Fatalf("after kill -9: %d acked flows missing, %d stored at an older version than acked", missing, older)
	}
	for id, v := range stored {
		if s, ok := sent[id]; !ok || v > s {
			t.Fatalf("stored flow %s at version %d was never sent (sent: %v %d)", id, v, ok, s)
		}
	}
}

// The rate limit as flags: an agent over --ingest-rate is answered
// success=false and gets through once its bucket refilled; a burst smaller
// than an envelope is refused at start.
func TestRateLimitThroughTheBinary(t *testing.T) {
	needBinary(t)
	out, err := exec.Command(binary, "serve", "--ingest-rate", "100", "--ingest-burst", "50", "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--ingest-burst (50) must be at least --max-events-per-envelope (10000)") {
		t.Fatalf("burst below an envelope: want a refusal naming both flags, got %v:\n%s", err, out)
	}

	c := serve(t, t.TempDir(), "--ingest-rate", "100", "--ingest-burst", "200", "--max-events-per-envelope", "200")
	a := connect(t, c.grpc)
	send := func(prefix string) *pb.FlowResponse {
		t.Helper()
		return a.exchange(t, []*pb.FlowEnvelope{{Events: hostFlows(prefix, "h1", "rl", 150)}})[0]
	}
	if r := send("a"); !r.Success {
		t.Fatalf("first envelope, within the burst: %+v", r)
	}
	want := `rate limit: host "h1" (unauthenticated, as its events claim) exceeds 100 events/s, retry later`
	if r := send("b"); r.Success || r.Error != want {
		t.Fatalf("second envelope at once: got %+v, want success=false %q", r, want)
	}
	// The bucket refills at 100 events/s: the refused envelope passes once
	// it holds 100 again.
	var r *pb.FlowResponse
	if !testutil.Eventually(10*time.Second, func() bool { r = send("b"); return r.Success }) {
		t.Fatalf("the refused envelope once the bucket refilled: %+v", r)
	}
	if rows := all(t, c.http, "network_id=rl"); len(rows) != 300 {
		t.Fatalf("want 300 flows stored, got %d", len(rows))
	}
}

// The HTTP limits as flags: bodies refused, slow headers cut off, and the
// live tail outliving --http-write-timeout.
func TestHTTPLimitsThroughTheBinary(t *testing.T) {
	c := serve(t, t.TempDir(), "--http-read-header-timeout", "500ms", "--http-write-timeout", "1s")
	httpAddr := strings.TrimPrefix(c.http, "http://")

	resp, err := http.Post(c.http+"/api/v1/flows", "application/json", strings.NewReader(`{"network_id":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(body), "request bodies are not accepted") {
		t.Fatalf("POST with a body: %d %s", resp.StatusCode, body)
	}

	conn, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and never the blank line
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset") {
		t.Fatalf("unfinished headers: want the connection closed, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("unfinished headers: closed after %v, want ~500ms", d)
	}

	// The tail stays open past the write timeout and still delivers.
	req, _ := http.NewRequest("GET", c.http+"/api/v1/flows/stream?network_id=tailnet", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err = http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	time.Sleep(2500 * time.Millisecond) // > --http-write-timeout
	a := connect(t, c.grpc)
	if r := a.exchange(t, []*pb.FlowEnvelope{{Events: hostFlows("tail", "h1", "tailnet", 1)}})[0]; !r.Success {
		t.Fatalf("send: %+v", r)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"tail-0"`) {
			return
		}
	}
	t.Fatalf("live tail ended without the event after the write timeout: %v", sc.Err())
}
