package ingest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/ingest"
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// While commits are stuck (the store takes the insert and never finishes
// it), Ready reports the backlog once it is older than the limit; once
// commits resume it is ready again. /readyz relies on it.
func TestReadyReportsAStuckCommitBacklog(t *testing.T) {
	base := start(t, ingest.Options{})
	gs := &gatedStore{Store: base.st}
	c := startOn(t, gs, ingest.Options{FlushInterval: 10 * time.Millisecond, InsertTimeout: time.Minute})
	const limit = 300 * time.Millisecond
	if err := c.srv.Ready(limit); err != nil {
		t.Fatalf("idle collector not ready: %v", err)
	}
	gs.close()
	st := dial(t, c.addr)
	if err := st.Send(&pb.FlowEnvelope{Events: events("stuck", 5)}); err != nil {
		t.Fatal(err)
	}
	acks := ackReader(st)
	var err error
	testutil.WaitFor(t, 20*time.Second, "Ready to report the stuck backlog", func() bool {
		err = c.srv.Ready(limit)
		return err != nil
	})
	if !strings.Contains(err.Error(), "commit backlog: 5 rows waiting, no commit succeeded for") {
		t.Fatalf("Ready: %v", err)
	}
	if rows, stuck := c.srv.CommitBacklog(); rows != 5 || stuck < limit {
		t.Fatalf("CommitBacklog = %d rows, %v", rows, stuck)
	}
	gs.open()
	if r := <-acks; !r.Success {
		t.Fatalf("ack after the store resumed: %+v", r)
	}
	testutil.WaitFor(t, 20*time.Second, "Ready once commits resumed", func() bool { return c.srv.Ready(limit) == nil })
}
