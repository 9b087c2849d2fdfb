package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/store"
)

// lookupKeys is the most flows BenchmarkLookup asks for at once: twice
// the largest batch (--flush-rows), all DESTROYs the maps cannot place.
const lookupKeys = 100_000

// The identity lookup of a batch of DESTROYs after a restart (nothing in
// the maps): every key is asked of the table in one query; a few keys (the
// common case) and the most a batch can have.
func BenchmarkLookup(b *testing.B) {
	s := open(b, store.Options{Database: fmt.Sprintf("BenchmarkLookup_%d", lookupKeys)})
	evs := make([]flowlog.Event, lookupKeys)
	for i := range evs {
		evs[i] = ev(fmt.Sprintf("flow-%d", i), flowlog.EventStart, t0.Add(time.Duration(i)*time.Millisecond), 1)
		evs[i].HostID = fmt.Sprintf("h%d", i%100)
	}
	if n, err := store.Lookup(context.Background(), s, evs[:1]); err != nil || n == 0 {
		if err := s.Insert(context.Background(), &flowlog.Batch{Events: evs}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range evs {
		evs[i].Type, evs[i].Version = flowlog.EventDestroy, 2
	}
	for _, n := range []int{100, lookupKeys} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			for range b.N {
				found, err := store.Lookup(context.Background(), s, evs[:n])
				if err != nil || found != n {
					b.Fatalf("%d instances found, %v; want %d", found, err, n)
				}
			}
		})
	}
}

// queryRecorder is an Engine that answers every query with no rows and
// records the queries and the other statements, as text.
type queryRecorder struct {
	recorder
	queries []string
}

func (r *queryRecorder) QueryJSON(_ context.Context, sql string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, sql)
	return nil, nil
}

// The lookup is one query that carries its keys and reads the table every
// query names (flows, the Distributed table in cluster mode) and nothing
// else: no table of its own on the one server this store talks to (which
// another server after a failover, or another shard, would not have), no
// subquery of another Distributed table (which would need GLOBAL IN). The
// same text in both modes.
func TestLookupCarriesItsKeys(t *testing.T) {
	evs := []flowlog.Event{ev("f'1\\", flowlog.EventDestroy, t0, 2), ev("f2", flowlog.EventDestroy, t0, 2)}
	var texts []string
	for _, cluster := range []string{"", "c"} {
		rec := &queryRecorder{}
		s, err := store.OpenEngine(context.Background(), rec, store.Options{Database: "flowlog", Cluster: cluster})
		if err != nil {
			t.Fatal(err)
		}
		rec.stmts, rec.queries = nil, nil // the schema's
		if _, err := store.Lookup(context.Background(), s, evs); err != nil {
			t.Fatal(err)
		}
		if len(rec.stmts) != 0 || len(rec.queries) != 1 {
			t.Fatalf("cluster %q: the lookup sent %q and %d queries, want one query and nothing else", cluster, rec.stmts, len(rec.queries))
		}
		texts = append(texts, rec.queries[0])
	}
	q := texts[0]
	if texts[1] != q {
		t.Errorf("the lookup differs in cluster mode:\n%s\n%s", q, texts[1])
	}
	want := "SELECT network_id, host_id, flow_id, toUnixTimestamp64Milli(start_ts) AS s, toUnixTimestamp64Milli(end_ts) AS e, " +
		"toUInt8(event_type = 'destroy') AS d, end_approx FROM `flowlog`.flows " +
		"WHERE (network_id, host_id, flow_id) IN (SELECT network_id, host_id, flow_id FROM format(RowBinary, " +
		"'network_id String, host_id String, flow_id String', '\x04net1\x02h1\x04f\\'1\\\\\x04net1\x02h1\x02f2')) " +
		"AND _partition_id IN ('20261124') AND toStartOfHour(start_ts) IN (1795510800, 1795514400) SETTINGS "
	if !strings.HasPrefix(q, want) {
		t.Errorf("lookup query:\n%q\nwant it to start with\n%q", q, want)
	}
	if strings.Contains(q, "GLOBAL") || strings.Count(q, "FROM") != 2 {
		t.Errorf("the lookup reads more than flows and its keys: %s", q)
	}
}

// Keys of any bytes (quotes, backslashes, NUL, a newline, invalid UTF-8)
// find their flows, and so do more keys than a query of the engines'
// default max_query_size (256 KiB) could carry.
func TestLookupFindsEveryKey(t *testing.T) {
	s := open(t, store.Options{})
	odd := []string{"it's", `back\slash`, "nul\x00byte", "new\nline", "\xff\xfe"}
	evs := make([]flowlog.Event, 0, 20_000)
	for _, id := range odd {
		evs = append(evs, ev(id, flowlog.EventStart, t0, 1))
	}
	for i := len(evs); i < cap(evs); i++ {
		evs = append(evs, ev(fmt.Sprintf("flow-%06d-padded-to-look-like-a-stock-agent-id", i), flowlog.EventStart, t0, 1))
	}
	insert(t, s, evs...)
	for i := range evs {
		evs[i].Type, evs[i].Version = flowlog.EventDestroy, 2
	}
	n, err := store.Lookup(context.Background(), s, evs)
	if err != nil || n != len(evs) {
		t.Fatalf("found %d instances, %v; want %d", n, err, len(evs))
	}
	got, err := store.Lookup(context.Background(), s, []flowlog.Event{evs[2], ev("not stored", flowlog.EventDestroy, t0, 2)})
	if err != nil || got != 1 {
		t.Fatalf("found %d instances of one stored and one unknown key, %v", got, err)
	}
}
