package ingest_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/ipdb"
	"github.com/flowlog/flowlog/ipdb/ipdbtest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Options.Enrich sees each valid event once, before it is stored: the
// external endpoints' networks land in the engine and filter there.
func TestEnrichedNetworksLandAndFilter(t *testing.T) {
	dir := t.TempDir()
	ipdbtest.WriteFixture(t, dir)
	db, err := ipdb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var calls atomic.Int32
	c := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond, Enrich: func(e *flowlog.Event) {
		calls.Add(1)
		db.Enrich(e)
	}})
	evs := events("x", 4)
	evs[0].Dst = &pb.FlowParticipant{Ip: "8.8.8.8", Type: pb.ParticipantType_PARTICIPANT_EXTERNAL}
	evs[1].Src = &pb.FlowParticipant{Ip: "2001:4860::1", Type: pb.ParticipantType_PARTICIPANT_EXTERNAL}
	evs[2].Dst = &pb.FlowParticipant{Ip: "8.8.8.8", Type: pb.ParticipantType_PARTICIPANT_NODE} // a mesh node: not named
	evs[3].Protocol = 300                                                                      // rejected: never enriched
	s := dial(t, c.addr)
	if err := s.Send(&pb.FlowEnvelope{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || !r.Success {
		t.Fatalf("ack %+v %v", r, err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("Enrich called %d times, want once per valid event (3)", n)
	}
	flows, err := c.st.Flows(context.Background(), flowlog.Filter{ASNs: []uint32{15169}}, flowlog.Page{PerPage: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]flowlog.Flow{}
	for _, f := range flows {
		got[f.FlowID] = f
	}
	if len(got) != 2 || got["x-0"].Dst.ASName != "Google LLC" || got["x-0"].Dst.Country != "US" || got["x-1"].Src.ASN != 15169 {
		t.Errorf("flows of AS15169: %+v", flows)
	}
	us, err := c.st.Flows(context.Background(), flowlog.Filter{Countries: []string{"US"}}, flowlog.Page{PerPage: 10})
	if err != nil || len(us) != 2 {
		t.Errorf("flows in US: %d %v", len(us), err)
	}
}
