package ingest_test

// Hostile or broken input over real gRPC: bytes that are no protobuf, known
// fields with the wrong wire type, envelopes over the limits. Each gets a
// clear answer and leaves what is stored untouched. (Forged host_ids and
// networks: TestForgedHostAndNetworkAreRejected; unknown, wrong, expired or
// untrusted certificates and tokens: TestTokenAuthentication,
// TestMutualTLS, TestCertificateAndTokenMustAgree in auth_test.go, and
// TestAuthMutualTLSThroughTheBinary in cmd/flowlog.)

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/wiretest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// sendRaw sends b as one message on a new stream and returns the answer or
// the status that ended the stream.
func sendRaw(t *testing.T, addr string, b []byte) (*pb.FlowResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := pb.NewFlowServiceClient(dialConn(t, addr)).StreamFlows(ctx, grpc.ForceCodecV2(wiretest.RawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(wiretest.RawMsg(b)); err != nil && err.Error() != "EOF" {
		return nil, err
	}
	return s.Recv()
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rejectedCount(t *testing.T, c *collector) uint64 {
	t.Helper()
	var rows []struct {
		N uint64 `json:"n"`
	}
	if err := c.st.QueryRows(context.Background(), "SELECT count() AS n FROM "+c.st.Database()+".rejected_events", &rows); err != nil {
		t.Fatal(err)
	}
	return rows[0].N
}

func TestMalformedAndAbusiveMessagesAreRefusedClearly(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond, MaxEventsPerEnv: 100, MaxMessageBytes: 64 << 10})
	good := newStreamOn(t, dialConn(t, c.addr))
	if r, err := good.exchange(&pb.FlowEnvelope{Events: events("before", 10)}); err != nil || !r.Success {
		t.Fatalf("before: %+v %v", r, err)
	}
	flowsBefore, rejectedBefore := count(t, c.st), rejectedCount(t, c)

	valid := marshal(t, events("valid", 1)[0])
	// Field 2 (flow_id) as a varint: the decoder keeps it as an unknown
	// field and leaves flow_id empty.
	noID := events("x", 1)[0]
	noID.FlowId = ""
	flowIDAsVarint := protowire.AppendVarint(protowire.AppendTag(marshal(t, noID), 2, protowire.VarintType), 7)
	// A participant's ip (field 1 of src, field 12) as a fixed32.
	srcIPFixed := events("y", 1)[0]
	srcIPFixed.Src.Ip = ""
	srcBytes := protowire.AppendFixed32(protowire.AppendTag(marshal(t, srcIPFixed.Src), 1, protowire.Fixed32Type), 0x0a000001)
	srcIPFixed.Src = nil
	ipAsFixed := protowire.AppendBytes(protowire.AppendTag(marshal(t, srcIPFixed), 12, protowire.BytesType), srcBytes)

	for _, tc := range []struct {
		name string
		msg  []byte
		code codes.Code
		want string
	}{
		{"field number 0", []byte("\x00garbage"), codes.InvalidArgument, "malformed FlowEnvelope: not decodable as protobuf"},
		{"truncated length", []byte{0x0a, 0x64, 0x01}, codes.InvalidArgument, "malformed FlowEnvelope: not decodable as protobuf"},
		{"random bytes", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, codes.InvalidArgument, "malformed FlowEnvelope: not decodable as protobuf"},
		{"events as a varint", protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 42), codes.InvalidArgument,
			"malformed FlowEnvelope: field 1 (events) has wire type varint, want length-delimited; ending the stream"},
		{"event not a message", wiretest.Envelope([]byte{0xff, 0xff}), codes.InvalidArgument, "malformed FlowEnvelope: not decodable as protobuf"},
		{"over the message size", wiretest.Envelope(make([]byte, 70<<10)), codes.ResourceExhausted, "larger than max"},
		{"over the event count", wiretest.Envelope(func() [][]byte {
			var evs [][]byte
			for range 101 {
				evs = append(evs, valid)
			}
			return evs
		}()...), codes.InvalidArgument, "envelope has 101 events: limit is 100 per envelope"},
	} {
		r, err := sendRaw(t, c.addr, tc.msg)
		if err == nil {
			t.Errorf("%s: answered %+v, want the stream ended with %v", tc.name, r, tc.code)
			continue
		}
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.want) {
			t.Errorf("%s: got %v, want %v containing %q", tc.name, err, tc.code, tc.want)
		}
	}

	// Wrong wire types inside events reject those events, by index and
	// reason, and keep them in rejected_events; the valid neighbour is stored.
	r, err := sendRaw(t, c.addr, wiretest.Envelope(flowIDAsVarint, valid, ipAsFixed))
	want := "rejected 2 of 3 events: [0] fits neither wire generation: as v1.5+ field 2 (flow_id) has wire type varint, want length-delimited (as v1.4 4 fields mismatch); [2] src: field 1 (ip) has wire type fixed32, want length-delimited"
	if err != nil || !r.Success || r.Error != want {
		t.Fatalf("wrong wire types in events: got %+v %v, want success with %q", r, err, want)
	}
	if got := count(t, c.st); got != flowsBefore+1 {
		t.Fatalf("flows: %d before, %d after; want only the valid event added", flowsBefore, got)
	}
	if got := rejectedCount(t, c); got != rejectedBefore+2 {
		t.Fatalf("rejected_events: %d before, %d after; want the 2 added", rejectedBefore, got)
	}
	// Unknown field numbers are a newer agent's, not an error.
	newer := protowire.AppendString(protowire.AppendTag(marshal(t, events("newer", 1)[0]), 99, protowire.BytesType), "future")
	if r, err := sendRaw(t, c.addr, wiretest.Envelope(newer)); err != nil || !r.Success || r.Error != "" {
		t.Fatalf("unknown field 99: want a clean success, got %+v %v", r, err)
	}
	if r, err := good.exchange(&pb.FlowEnvelope{Events: events("after", 10)}); err != nil || !r.Success {
		t.Fatalf("a well-behaved stream after the abuse: %+v %v", r, err)
	}
	if got := count(t, c.st); got != flowsBefore+1+1+10 {
		t.Fatalf("flows: %d before, %d at the end; want +12 (valid, newer, after)", flowsBefore, got)
	}
}

// Invalid UTF-8 in one event's string rejects that event alone, by index
// and field, and keeps it (with U+FFFD for the bad bytes) in
// rejected_events; its valid neighbours are stored and the stream goes on.
func TestInvalidUTF8RejectsOnlyItsEvent(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond})
	// proto.Marshal refuses invalid UTF-8: marshal a marker of the same
	// length, then swap the bytes.
	hostEv := events("bad-host", 1)[0]
	hostEv.HostName = "MARKER"
	badHost := []byte(strings.Replace(string(marshal(t, hostEv)), "MARKER", "\xffbad\xfe!", 1))
	// Deeper: a participant's name (src.name).
	src := events("bad-src", 1)[0]
	srcBytes := protowire.AppendString(protowire.AppendTag(marshal(t, src.Src), 4, protowire.BytesType), "ok")
	srcBytes = append(srcBytes[:len(srcBytes)-2], 0xc3, 0x28) // an invalid 2-byte sequence in place of "ok"
	src.Src = nil
	badSrc := protowire.AppendBytes(protowire.AppendTag(marshal(t, src), 12, protowire.BytesType), srcBytes)

	raw, err := pb.NewFlowServiceClient(dialConn(t, c.addr)).StreamFlows(context.Background(), grpc.ForceCodecV2(wiretest.RawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	send := func(b []byte) *pb.FlowResponse {
		t.Helper()
		if err := raw.SendMsg(wiretest.RawMsg(b)); err != nil {
			t.Fatal(err)
		}
		r, err := raw.Recv()
		if err != nil {
			t.Fatalf("the stream ended: %v", err)
		}
		return r
	}
	r := send(wiretest.Envelope(marshal(t, events("ok-a", 1)[0]), badHost, marshal(t, events("ok-b", 1)[0]), badSrc))
	want := "rejected 2 of 4 events: [1] invalid UTF-8 in host_name (field 4) (shown with U+FFFD); [3] invalid UTF-8 in src.name (field 4) (shown with U+FFFD)"
	if !r.Success || r.Error != want {
		t.Fatalf("got %+v, want success with %q", r, want)
	}
	// The same stream carries on.
	if r := send(wiretest.Envelope(marshal(t, events("ok-c", 1)[0]))); !r.Success || r.Error != "" {
		t.Fatalf("next envelope on the same stream: %+v", r)
	}
	if n := count(t, c.st); n != 3 {
		t.Fatalf("stored %d flows, want the 3 valid ones", n)
	}
	if n := rejectedCount(t, c); n != 2 {
		t.Fatalf("rejected_events holds %d, want 2", n)
	}
	var rows []struct {
		HostID string `json:"host_id"`
		Event  string `json:"event"`
	}
	if err := c.st.QueryRows(context.Background(), "SELECT host_id, event FROM "+c.st.Database()+".rejected_events ORDER BY event", &rows); err != nil {
		t.Fatal(err)
	}
	if rows[0].HostID != "h" || !strings.Contains(rows[0].Event+rows[1].Event, "\ufffdbad\ufffd!") {
		t.Fatalf("kept as %+v: want the host and the event with U+FFFD", rows)
	}
}

// A rejected event is kept bounded (a prefix, its size and hash), and each
// host's rejected bytes have a budget: 20 events with a 1 MiB host_name
// must not grow the rejected table by 20 MiB.
func TestRejectedEventsAreKeptBounded(t *testing.T) {
	c := start(t, ingest.Options{FlushInterval: 10 * time.Millisecond,
		Protect: ingest.Protection{RejectedBytesRate: 1000, RejectedBytesBurst: 10_000}})
	s := newStreamOn(t, dialConn(t, c.addr))
	big := make([]byte, 1<<20)
	for i := range 20 {
		rand.Read(big)
		e := events(fmt.Sprintf("big-%d", i), 1)[0]
		e.HostName = base64.StdEncoding.EncodeToString(big)
		r, err := s.exchange(&pb.FlowEnvelope{Events: []*pb.FlowEvent{e}})
		if err != nil || !r.Success || !strings.HasPrefix(r.Error, "rejected 1 of 1 events: [0] host_name") {
			t.Fatalf("envelope %d: %+v %v", i, r, err)
		}
	}
	var rows []struct {
		Event string `json:"event"`
	}
	if err := c.st.QueryRows(context.Background(), "SELECT event FROM "+c.st.Database()+".rejected_events ORDER BY received_at", &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 20 {
		t.Fatalf("%d rejected rows, want 20 (each reason kept)", len(rows))
	}
	kept := 0
	for _, r := range rows {
		switch {
		case strings.Contains(r.Event, "bytes, sha256 ") && len(r.Event) > 4<<10 && len(r.Event) < 5<<10:
			kept++
		case strings.Contains(r.Event, "bytes, sha256 ") && len(r.Event) < 300:
		default:
			t.Fatalf("rejected event kept as %d bytes: %.200s", len(r.Event), r.Event)
		}
	}
	if kept == 0 || kept > 3 {
		t.Fatalf("%d bodies kept, want the first few within the 10 kB budget", kept)
	}
	var size []struct {
		B uint64 `json:"b"`
	}
	if err := c.st.QueryRows(context.Background(), "SELECT sum(length(event)) AS b FROM "+c.st.Database()+".rejected_events", &size); err != nil {
		t.Fatal(err)
	}
	t.Logf("20 events with 1.4 MB host_names: %d bytes kept in rejected_events (%d bodies)", size[0].B, kept)
}
