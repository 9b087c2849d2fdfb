package store_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/store"
)

// gatedEngine holds the first statement of a day's recomputation until
// released, and counts the statements that begin after that.
type gatedEngine struct {
	sharedEngine
	once    sync.Once
	inPass  chan struct{} // closed once the first one is held
	release chan struct{}
	after   atomic.Int32
}

func (g *gatedEngine) Exec(ctx context.Context, sql string) error {
	select {
	case <-g.release:
		g.after.Add(1)
	default:
		if strings.HasPrefix(strings.TrimSpace(sql), "INSERT INTO") && strings.Contains(sql, "flows_1m") {
			g.once.Do(func() { close(g.inPass); <-g.release })
		}
	}
	return g.Engine.Exec(ctx, sql)
}

// Closing the store stops the rollup job between two statements instead
// of waiting for its pass to end (a big day is dozens of statements, and
// a collector's shutdown has a deadline): the day it was recomputing stays
// dirty, and the next run recomputes it.
func TestCloseStopsARollupPassBetweenStatements(t *testing.T) {
	testutil.NeedEngine(t)
	ctx := context.Background()
	g := &gatedEngine{sharedEngine: sharedEngine{engine}, inPass: make(chan struct{}), release: make(chan struct{})}
	db := strings.ReplaceAll(t.Name(), "/", "_")
	s, err := store.OpenEngine(ctx, g, store.Options{Database: db, Cluster: cluster, RollupEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	insert(t, s, ev("a", flowlog.EventStart, start, 1), ev("a", flowlog.EventDestroy, start, 2))
	select {
	case <-g.inPass:
	case <-time.After(time.Minute):
		t.Fatal("the rollup job never began recomputing the day")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	testutil.WaitFor(t, 10*time.Second, "Close to begin", func() bool { return store.Stopping(s) })
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := g.after.Load(); n != 0 {
		t.Errorf("%d statements ran after Close began, want none (the one under way ends, no other begins)", n)
	}
	next := open(t, store.Options{Database: db})
	var days []struct {
		N int `json:"n"`
	}
	if err := next.QueryRows(ctx, "SELECT count() AS n FROM "+next.Database()+".rollup_days", &days); err != nil || days[0].N != 0 {
		t.Fatalf("recomputed days recorded: %+v %v, want none (the stopped one stays dirty)", days, err)
	}
	if cluster != "" {
		return // collectors sharing a server: the stopped one's claim holds the day for its lease (claim_test.go)
	}
	// The embedded engine: the claim of the process that stopped is not
	// waited for.
	st, err := next.Rollup(ctx)
	if err != nil || st.Days != 1 {
		t.Fatalf("the next run's pass: %+v, %v; want the day recomputed", st, err)
	}
}
