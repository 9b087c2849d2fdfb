package ingest

import (
	"errors"
	"testing"
	"time"

	"github.com/flowlog/flowlog/auth"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// The token bucket: a burst, then the rate; refused envelopes take nothing;
// keys are independent; full buckets are forgotten; log lines are bounded.
func TestRateLimiterBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(limits{100, 0}, limits{200, 0}, func() time.Time { return now })
	allow := func(key string, n float64) bool {
		ok, _, _, _, _ := l.allow([]cost{{key: key, n: limits{n, 1e9}}})
		return ok
	}
	if !allow("a", 150) || allow("a", 100) || !allow("a", 50) || allow("a", 1) {
		t.Fatal("burst of 200: 150 and 50 pass, 100 and then 1 more do not")
	}
	if !allow("b", 200) {
		t.Fatal("another key has its own bucket")
	}
	now = now.Add(500 * time.Millisecond) // +50 tokens
	if allow("a", 51) || !allow("a", 50) {
		t.Fatal("after 0.5s at 100/s: 50 tokens, not 51")
	}
	now = now.Add(time.Hour)
	if !allow("a", 200) || allow("a", 1) {
		t.Fatal("the bucket refills to the burst, no further")
	}
	// Log lines: the first refusal, then at most one per logEvery, counting
	// the refusals in between.
	q := newLimiter(limits{1, 0}, limits{1, 0}, func() time.Time { return now })
	qallow := func(key string, n float64) (bool, bool, int) {
		ok, _, _, logNow, denied := q.allow([]cost{{key: key, n: limits{n, 0}}})
		return ok, logNow, denied
	}
	if _, logNow, denied := qallow("k", 2); !logNow || denied != 1 {
		t.Fatalf("first refusal: log=%v denied=%d, want true 1", logNow, denied)
	}
	for range 2 {
		if _, logNow, _ := qallow("k", 2); logNow {
			t.Fatal("logged twice within logEvery")
		}
	}
	now = now.Add(logEvery)
	if _, logNow, denied := qallow("k", 2); !logNow || denied != 3 {
		t.Fatalf("after logEvery: log=%v denied=%d, want true 3", logNow, denied)
	}
	// Idle buckets are swept: they are full, like a new one.
	now = now.Add(2 * time.Minute)
	allow("c", 1)
	if n := l.size(); n != 1 {
		t.Fatalf("after the sweep %d buckets remain, want only c's", n)
	}
}

// Bytes are limited like events: a few huge events cost what they weigh.
// An envelope is charged to each host its events claim, all or nothing.
func TestRateLimiterBytesAndClaimedHosts(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(limits{1000, 100}, limits{1000, 200}, func() time.Time { return now })
	big := []*pb.FlowEvent{{HostId: "a"}}
	if ok, _, _, _, _ := l.allow(rateCosts(big, 150, nil)); !ok {
		t.Fatal("150 bytes within a 200-byte burst")
	}
	ok, unit, over, _, _ := l.allow(rateCosts(big, 150, nil))
	if ok || unit != "bytes" || over.key != "claim:a" {
		t.Fatalf("second 150 bytes: ok=%v unit=%q key=%q, want refused on bytes for claim:a", ok, unit, over.key)
	}
	two := []*pb.FlowEvent{{HostId: "b"}, {HostId: "a"}}
	if ok, _, over, _, _ := l.allow(rateCosts(two, 200, nil)); ok || over.key != "claim:a" {
		t.Fatal("an envelope naming a limited host is refused")
	}
	if ok, _, _, _, _ := l.allow(rateCosts(two[:1], 200, nil)); !ok {
		t.Fatal("host b's bucket was charged for the refused envelope")
	}
	id := &auth.Identity{HostID: "a"}
	if c := rateCosts(two, 20, id); len(c) != 1 || c[0].key != "host:a" || c[0].n != (limits{2, 20}) {
		t.Fatalf("an authenticated stream is charged to its identity: %+v", c)
	}
}

func TestRateLimitErrorIsTransient(t *testing.T) {
	err := error(&rateLimitError{who: "h1", rate: 50000, unit: "events"})
	if !errors.Is(err, ErrRateLimited) || !errors.Is(err, ErrOverloaded) {
		t.Fatal("a rate-limit answer must match ErrRateLimited and ErrOverloaded")
	}
	if r := response(&ticket{err: err}); r.Success || r.Error != "rate limit: host h1 exceeds 50000 events/s, retry later" {
		t.Fatalf("answer: %+v", r)
	}
}

func TestProtectionDefaults(t *testing.T) {
	p := Protection{Rate: 50_000, RateBytes: 1 << 20}
	p.defaults(10_000, 16<<20)
	if p.Burst != 100_000 || p.BurstBytes != 16<<20 || p.StallTimeout != 0 || p.KeepaliveMinTime != DefaultKeepaliveMinTime ||
		p.MaxStreamsPerHost != DefaultMaxStreamsPerHost || p.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Fatalf("defaults: %+v", p)
	}
	p = Protection{Rate: 100, Burst: 10}
	p.defaults(500, 1000)
	if p.Burst != 500 {
		t.Fatalf("a burst below the largest envelope would refuse it forever: got %d, want 500", p.Burst)
	}
	p = Protection{}
	p.defaults(500, 1000)
	if p.Rate != 0 || p.Burst != 0 {
		t.Fatalf("no rate: no limit, got %+v", p)
	}
}
