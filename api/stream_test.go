package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/tail"
)

// frame is one Server-Sent Event (or a comment).
type frame struct {
	event, data, comment string
}

// sseReader reads frames from a stream.
type sseReader struct {
	r *bufio.Reader
}

func (s *sseReader) next() (frame, error) {
	var f frame
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return f, nil
		case strings.HasPrefix(line, ": "):
			f.comment = line[2:]
		case strings.HasPrefix(line, "event: "):
			f.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			f.data = line[6:]
		default:
			return f, &unexpectedLine{line}
		}
	}
}

type unexpectedLine struct{ line string }

func (e *unexpectedLine) Error() string { return "unexpected line " + strconv.Quote(e.line) }

// streamServer runs the API over a real HTTP server.
func streamServer(t *testing.T, d Deps) (*httptest.Server, *http.Client) {
	t.Helper()
	if d.Store == nil {
		d.Store = &fakeStore{}
	}
	if d.Log == nil {
		d.Log = discardLog()
	}
	srv := httptest.NewServer(New(d))
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
		if d.Hub != nil {
			d.Hub.Close()
		}
	})
	return srv, client
}

// openStream connects; when it returns, the server has subscribed.
func openStream(t *testing.T, ctx context.Context, client *http.Client, url string) (*http.Response, *sseReader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return resp, &sseReader{bufio.NewReader(resp.Body)}
}

func streamEvent(id, network string, typ flowlog.EventType) flowlog.Event {
	e := flowlog.Event{
		Type: typ, FlowID: id, HostID: "h1", HostName: "web-1", NetworkID: network,
		Protocol: 6, SrcPort: 51000, DstPort: 5432, Direction: flowlog.DirEgress,
		Src:     flowlog.Participant{IP: netip.MustParseAddr("::ffff:10.10.0.5"), Type: flowlog.ParticipantNode, ID: "n-5", Name: "web-1"},
		Dst:     flowlog.Participant{IP: netip.MustParseAddr("10.10.0.7"), Type: flowlog.ParticipantNode, ID: "n-7", Name: "db-1"},
		Start:   time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC),
		Version: 1795514400000,
	}
	if typ == flowlog.EventDestroy {
		e.End = time.Date(2026, 11, 24, 10, 0, 2, 500_000_000, time.UTC)
		e.BytesSent, e.BytesRecv, e.PacketsSent, e.PacketsRecv, e.Status = 100, 2000, 3, 4, 14
		e.Version = 1795514402501
	}
	return e
}

func TestStreamDeliversMatchingFlows(t *testing.T) {
	hub := tail.NewHub()
	srv, client := streamServer(t, Deps{Hub: hub})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hub.Publish([]flowlog.Event{streamEvent("early", "a", flowlog.EventStart)}) // before anyone listened
	resp, sse := openStream(t, ctx, client, srv.URL+"/api/v1/flows/stream?network_id=a&protocol=tcp")
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	hub.Publish([]flowlog.Event{
		streamEvent("f1", "a", flowlog.EventStart),
		streamEvent("other-net", "b", flowlog.EventStart),
	})
	udp := streamEvent("udp", "a", flowlog.EventStart)
	udp.Protocol = 17
	hub.Publish([]flowlog.Event{udp, streamEvent("f1", "a", flowlog.EventDestroy)})

	want := []frame{
		{event: "flow", data: `{"flow_id":"f1","host_id":"h1","host_name":"web-1","network_id":"a","protocol":6,` +
			`"src_port":51000,"dst_port":5432,"icmp_type":0,"icmp_code":0,"direction":"egress",` +
			`"src_ip":"10.10.0.5","src_type":"node","src_entity_id":"n-5","src_entity_name":"web-1",` +
			`"dst_ip":"10.10.0.7","dst_type":"node","dst_entity_id":"n-7","dst_entity_name":"db-1",` +
			`"start_ts":"2026-11-24T10:00:00Z","end_ts":"1970-01-01T00:00:00Z","bytes_sent":0,"bytes_recv":0,` +
			`"packets_sent":0,"packets_recv":0,"status":0,"version":"2026-11-24T10:00:00Z","active":true,"state":"active"}`},
		{event: "flow", data: `{"flow_id":"f1","host_id":"h1","host_name":"web-1","network_id":"a","protocol":6,` +
			`"src_port":51000,"dst_port":5432,"icmp_type":0,"icmp_code":0,"direction":"egress",` +
			`"src_ip":"10.10.0.5","src_type":"node","src_entity_id":"n-5","src_entity_name":"web-1",` +
			`"dst_ip":"10.10.0.7","dst_type":"node","dst_entity_id":"n-7","dst_entity_name":"db-1",` +
			`"start_ts":"2026-11-24T10:00:00Z","end_ts":"2026-11-24T10:00:02.5Z","bytes_sent":100,"bytes_recv":2000,` +
			`"packets_sent":3,"packets_recv":4,"status":14,"version":"2026-11-24T10:00:02.501Z","active":false,"state":"finished"}`},
	}
	for i, w := range want {
		f, err := sse.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f != w {
			t.Errorf("frame %d\n got %+v\nwant %+v", i, f, w)
		}
	}

	// The raw bytes, to pin the framing itself.
	hub.Publish([]flowlog.Event{streamEvent("f2", "a", flowlog.EventStart)})
	line, _ := sse.r.ReadString('\n')
	if line != "event: flow\n" {
		t.Errorf("raw line %q", line)
	}
	line, _ = sse.r.ReadString('\n')
	if !strings.HasPrefix(line, `data: {"flow_id":"f2",`) || !strings.HasSuffix(line, `"active":true,"state":"active"}`+"\n") {
		t.Errorf("raw line %q", line)
	}
	if line, _ = sse.r.ReadString('\n'); line != "\n" {
		t.Errorf("raw line %q, want the blank line ending the event", line)
	}
}

// An event whose version cannot be printed as a time (ingest refuses it
// now) reaches the tail anyway, clamped, and the events after it too.
func TestStreamSurvivesAnUnprintableVersion(t *testing.T) {
	hub := tail.NewHub()
	srv, client := streamServer(t, Deps{Hub: hub})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, sse := openStream(t, ctx, client, srv.URL+"/api/v1/flows/stream")
	bad := streamEvent("bad", "a", flowlog.EventStart)
	bad.Version = bad.Start.UnixMicro() // year 58,000 as milliseconds
	hub.Publish([]flowlog.Event{bad, streamEvent("good", "a", flowlog.EventStart)})
	for _, want := range []string{`"flow_id":"bad"`, `"flow_id":"good"`} {
		f, err := sse.next()
		if err != nil || !strings.Contains(f.data, want) {
			t.Fatalf("frame %+v %v, want %s", f, err, want)
		}
		if want == `"flow_id":"bad"` && !strings.Contains(f.data, `"version":"9999-12-31T23:59:59.999Z"`) {
			t.Errorf("version not clamped: %s", f.data)
		}
	}
}

// A client that does not read while events pour in loses some; "lost"
// events account for every one of them, each at the place of its gap.
func TestStreamSlowReaderGetsLost(t *testing.T) {
	hub := tail.NewHub()
	srv, client := streamServer(t, Deps{Hub: hub, StreamBuffer: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, sse := openStream(t, ctx, client, srv.URL+"/api/v1/flows/stream?network_id=a")

	// Large events fill the socket buffers quickly; the reader reads nothing
	// until publishing is over. The pauses let the server write as much as
	// the sockets take, so events are lost because the reader is slow, not
	// only because the publisher is fast.
	big := strings.Repeat("x", 2000)
	published := 0
	for batch := 0; ; batch++ {
		events := make([]flowlog.Event, 4) // what the buffer holds
		for i := range events {
			events[i] = streamEvent(strconv.Itoa(published), "a", flowlog.EventStart)
			events[i].HostName = big
			published++
		}
		events = append(events, streamEvent("filtered-out", "b", flowlog.EventStart))
		hub.Publish(events)
		time.Sleep(50 * time.Microsecond)
		if hub.Stats().Dropped > 1000 {
			break
		}
		if batch > 250_000 {
			t.Fatal("nothing dropped after a million events")
		}
	}

	next, flows, lost, gaps := 0, 0, 0, 0
	for flows+lost < published {
		f, err := sse.next()
		if err != nil {
			t.Fatalf("after %d flows and %d lost of %d: %v", flows, lost, published, err)
		}
		switch f.event {
		case "lost":
			var l struct{ Lost int }
			if err := json.Unmarshal([]byte(f.data), &l); err != nil || l.Lost < 1 || f.data != `{"lost":`+strconv.Itoa(l.Lost)+`}` {
				t.Fatalf("lost data %q", f.data)
			}
			lost += l.Lost
			next += l.Lost
			gaps++
		case "flow":
			var row FlowRow
			if err := json.Unmarshal([]byte(f.data), &row); err != nil {
				t.Fatal(err)
			}
			if row.FlowID != strconv.Itoa(next) {
				t.Fatalf("flow %s where %d was due (a gap not reported in place)", row.FlowID, next)
			}
			next++
			flows++
		case "":
			// keepalive
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
	}
	if flows+lost != published || lost == 0 || uint64(lost) != hub.Stats().Dropped {
		t.Errorf("flows %d + lost %d != published %d, or hub dropped %d", flows, lost, published, hub.Stats().Dropped)
	}
	t.Logf("published %d: %d delivered, %d lost in %d gaps", published, flows, lost, gaps)

	// After the burst, the stream carries on without loss.
	hub.Publish([]flowlog.Event{streamEvent("after", "a", flowlog.EventStart)})
	f, err := sse.next()
	if err != nil || f.event != "flow" || !strings.Contains(f.data, `"flow_id":"after"`) {
		t.Errorf("after the burst: %+v %v", f, err)
	}
}

func TestStreamCloseUnsubscribes(t *testing.T) {
	before := runtime.NumGoroutine()
	hub := tail.NewHub()
	srv := httptest.NewServer(New(Deps{Store: &fakeStore{}, Hub: hub, Log: discardLog()}))
	client := &http.Client{Transport: &http.Transport{}}

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/flows/stream", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if n := hub.Stats().Subscribers; n != 1 {
		t.Fatalf("%d subscribers while connected, want 1", n)
	}
	cancel() // the client goes away
	resp.Body.Close()
	testutil.WaitFor(t, 10*time.Second, "the handler to unsubscribe", func() bool { return hub.Stats().Subscribers == 0 })

	client.CloseIdleConnections()
	srv.Close()
	hub.Close() // its fan-out goroutine
	testutil.WaitFor(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestStreamKeepalive(t *testing.T) {
	hub := tail.NewHub()
	srv, client := streamServer(t, Deps{Hub: hub, Keepalive: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, sse := openStream(t, ctx, client, srv.URL+"/api/v1/flows/stream")
	for i := 0; i < 2; i++ {
		f, err := sse.next()
		if err != nil || f != (frame{comment: "keepalive"}) {
			t.Fatalf("frame %d: %+v %v, want a keepalive comment", i, f, err)
		}
	}
}

func TestStreamEndsWhenHubCloses(t *testing.T) {
	hub := tail.NewHub()
	srv, client := streamServer(t, Deps{Hub: hub})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, sse := openStream(t, ctx, client, srv.URL+"/api/v1/flows/stream")
	hub.Publish([]flowlog.Event{streamEvent("last", "a", flowlog.EventStart)})
	hub.Close() // server shutdown
	if f, err := sse.next(); err != nil || !strings.Contains(f.data, `"flow_id":"last"`) {
		t.Fatalf("%+v %v: the event published before the close must arrive", f, err)
	}
	if f, err := sse.next(); err != io.EOF {
		t.Errorf("after the hub closed: %+v %v, want EOF", f, err)
	}
}

func TestStreamBadParams(t *testing.T) {
	hub := tail.NewHub()
	s := New(Deps{Store: &fakeStore{}, Hub: hub, Log: discardLog()})
	for q, msg := range map[string]string{
		"page=1":       "invalid page: the stream has no pages",
		"per_page=10":  "invalid per_page: the stream has no pages",
		"cursor=abc":   "invalid cursor: the stream has no pages",
		"ip=10.0.0.1/": `invalid ip "10.0.0.1/": must be an IP address or a CIDR prefix such as 10.0.0.0/8 or fd00::/64`,
		"state=open":   `invalid state "open": must be one of all, active, finished, stale`,
		"limit=1": `unknown parameter "limit": known are network_id, from, to, src_entity_id, dst_entity_id, node_id, ` +
			`username, state, ip, src_ip, dst_ip, port, direction, participant, src_type, dst_type, protocol, asn, country`,
	} {
		wantBody(t, serve(t, s, "/api/v1/flows/stream?"+q), 400, mustJSON(t, errorResponse{Code: 400, Message: msg}))
	}
	if n := hub.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers after bad requests", n)
	}
}

func TestStreamFilterReachesHub(t *testing.T) {
	hub := tail.NewHub()
	srv, client := streamServer(t, Deps{Hub: hub})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, sse := openStream(t, ctx, client, srv.URL+"/api/v1/flows/stream?ip=10.10.0.0/24&port=5432&direction=egress&participant=db-1&state=finished")
	other := streamEvent("no", "a", flowlog.EventDestroy)
	other.DstPort = 5433
	hub.Publish([]flowlog.Event{
		streamEvent("start", "a", flowlog.EventStart), // state
		other, // port
		streamEvent("yes", "a", flowlog.EventDestroy),
	})
	if f, err := sse.next(); err != nil || !strings.HasPrefix(f.data, `{"flow_id":"yes",`) {
		t.Errorf("%+v %v", f, err)
	}
}

func TestStreamUnavailable(t *testing.T) {
	wantBody(t, serve(t, New(Deps{Store: &fakeStore{}, Log: discardLog()}), "/api/v1/flows/stream"), 501,
		`{"Code":501,"Message":"live tail is not available","Response":null}`)
}

// Live tails are bounded in all and per reader (per client address when
// the API is open): each holds a connection, a goroutine and a queue.
func TestStreamTailsAreCapped(t *testing.T) {
	get := func(client *http.Client, ctx context.Context, url string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	wantRefused := func(resp *http.Response, msg string) {
		t.Helper()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), msg) {
			t.Fatalf("want 429 with %q, got %d %s", msg, resp.StatusCode, body)
		}
	}
	for _, c := range []struct {
		d   Deps
		msg string
	}{
		{Deps{MaxTails: 5, MaxTailsPerReader: 2}, "too many live tails for this client address: 2 open, the limit is 2 (--max-tails-per-reader)"},
		{Deps{MaxTails: 2, MaxTailsPerReader: 5}, "too many live tails: 2 open, the limit is 2 (--max-tails)"},
	} {
		c.d.Hub = tail.NewHub()
		srv, client := streamServer(t, c.d)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		first, _ := openStream(t, ctx, client, srv.URL+"/api/v1/flows/stream")
		openStream(t, ctx, client, srv.URL+"/api/v1/flows/stream")
		wantRefused(get(client, ctx, srv.URL+"/api/v1/flows/stream"), c.msg)
		first.Body.Close() // a place comes free once its handler ends
		testutil.WaitFor(t, 10*time.Second, "the first tail to end", func() bool { return c.d.Hub.Stats().Subscribers == 1 })
		if resp := get(client, ctx, srv.URL+"/api/v1/flows/stream"); resp.StatusCode != http.StatusOK {
			t.Fatalf("after one closed: %d", resp.StatusCode)
		}
		cancel()
	}
}
