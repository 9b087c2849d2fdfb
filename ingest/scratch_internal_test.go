package ingest

import (
	"context"
	"log/slog"
	"runtime"
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/flowlog/flowlog"
)

// keptStore is an Inserter that keeps a copy of what it was given.
type keptStore struct{ events []flowlog.Event }

func (k *keptStore) Insert(_ context.Context, b *flowlog.Batch) error {
	k.events = append(k.events, b.Events...)
	return nil
}

// An envelope is prepared in the memory the one before it left (its slot's
// scratch): what it allocates is its flow ids and a few small objects, not
// its decoded and converted events. When every envelope made its own, they
// were ~860 bytes an event, and under load the pace of the collector's
// garbage collections. The events committed are still each envelope's own.
func TestPreparationReusesTheMemoryOfTheOneBefore(t *testing.T) {
	const envelopes, perEnvelope = 20, 500
	kept := &keptStore{events: make([]flowlog.Event, 0, (3+envelopes)*perEnvelope)} // allocated before measuring
	s := New(kept, Options{}, slog.New(slog.DiscardHandler))
	t.Cleanup(s.commit.close)
	raw := benchEnvelope()
	st := &inStream{ctx: context.Background(), acks: &ackQueue{}}
	st.view = s.newAgentView("test", "test", nil)
	prepare := func() {
		w := &wireEnvelope{intern: &st.acks.intern, received: mem.BufferSlice{mem.SliceBuffer(raw)}}
		tk, err := s.decodeAndPrepare(st, w)
		if err != nil {
			t.Fatal(err)
		}
		<-tk.done
		if tk.err != nil || len(tk.rejected) > 0 {
			t.Fatalf("envelope answered %v, %d rejected (%s)", tk.err, len(tk.rejected), tk.note)
		}
	}
	for range 3 { // the scratch and the commit's buffers reach their size
		prepare()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range envelopes {
		prepare()
	}
	runtime.ReadMemStats(&after)
	if perEvent := float64(after.TotalAlloc-before.TotalAlloc) / (envelopes * perEnvelope); perEvent > 200 {
		t.Errorf("preparing an envelope allocated %.0f bytes an event; want under 200 (its flow ids, not its events)", perEvent)
	}
	if len(kept.events) != (3+envelopes)*perEnvelope {
		t.Fatalf("%d events committed, want %d", len(kept.events), (3+envelopes)*perEnvelope)
	}
	for i, e := range kept.events {
		if e.FlowID != kept.events[i%perEnvelope].FlowID || e.Start != kept.events[i%perEnvelope].Start {
			t.Fatalf("event %d committed as %s %v, its envelope sent it as the first envelope's %s %v", i, e.FlowID, e.Start, kept.events[i%perEnvelope].FlowID, kept.events[i%perEnvelope].Start)
		}
	}
}
