package collector

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ipdb/ipdbtest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// recordingStore keeps what was inserted.
type recordingStore struct {
	flowlog.Store
	flowlog.Aggregator
	mu     sync.Mutex
	events []flowlog.Event
}

func (s *recordingStore) Insert(_ context.Context, b *flowlog.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, b.Events...)
	return nil
}
func (s *recordingStore) Ping(context.Context) error { return nil }
func (s *recordingStore) Close() error               { return nil }

func (s *recordingStore) inserted() []flowlog.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]flowlog.Event(nil), s.events...)
}

// sendOne streams one envelope and waits for its ack.
func sendOne(t *testing.T, col *Collector, ev *pb.FlowEvent) {
	t.Helper()
	conn, err := grpc.NewClient(col.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := pb.NewFlowServiceClient(conn).StreamFlows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.FlowEnvelope{Events: []*pb.FlowEvent{ev}}); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || !r.Success {
		t.Fatalf("ack: %+v %v", r, err)
	}
}

func externalEvent() *pb.FlowEvent {
	return &pb.FlowEvent{Type: pb.EventType_EVENT_START, FlowId: "f1", HostId: "h1", NetworkId: "n1", Protocol: 6,
		Src:     &pb.FlowParticipant{Ip: "10.0.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE, Id: "n-1"},
		Dst:     &pb.FlowParticipant{Ip: "1.0.0.1", Type: pb.ParticipantType_PARTICIPANT_EXTERNAL},
		SrcPort: 40000, DstPort: 443, StartTsMs: time.Now().UnixMilli(), Version: 1}
}

// The collector names external endpoints at ingest from --ipdb-dir.
func TestExternalEndpointsAreNamedAtIngest(t *testing.T) {
	cfg := testConfig(t)
	ipdbtest.WriteFixture(t, cfg.IPDBDir)
	st := &recordingStore{}
	col, _, _ := start(t, cfg, st)
	sendOne(t, col, externalEvent())
	got := st.inserted()
	if len(got) != 1 {
		t.Fatalf("inserted %d events", len(got))
	}
	if d := got[0].Dst; d.ASN != 13335 || d.ASName != "Cloudflare, Inc." || d.Country != "AU" {
		t.Errorf("external destination stored as %+v", d)
	}
	if s := got[0].Src; s.ASN != 0 || s.Country != "" {
		t.Errorf("mesh source named: %+v", s)
	}
}

// Without the database files the collector serves, stores events unnamed,
// and says once which files are missing and how to fetch them.
func TestMissingIPDatabaseIsLoggedNotFatal(t *testing.T) {
	cfg := testConfig(t)
	var logs syncBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	st := &recordingStore{}
	col, _, _ := start(t, cfg, st)
	sendOne(t, col, externalEvent())
	if got := st.inserted(); len(got) != 1 || got[0].Dst.ASN != 0 {
		t.Fatalf("inserted %+v", got)
	}
	out := logs.String()
	for _, want := range []string{"asn-ipv4.csv", "asn-ipv6.csv", "geo-whois-asn-country.mmdb", "scripts/fetch-ipdb.sh"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not say %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "IP database file missing"); n != 3 {
		t.Errorf("%d missing-file lines, want 3 (once each):\n%s", n, out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
