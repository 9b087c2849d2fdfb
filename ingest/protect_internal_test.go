package ingest

import (
	"errors"
	"testing"
	"time"
)

// The token bucket: a burst, then the rate; refused envelopes take nothing;
// keys are independent; full buckets are forgotten; log lines are bounded.
func TestRateLimiterBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(100, 200, func() time.Time { return now })
	allow := func(key string, n float64) bool {
		ok, _, _ := l.allow(key, n)
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
	q := newLimiter(1, 1, func() time.Time { return now })
	if _, logNow, denied := q.allow("k", 2); !logNow || denied != 1 {
		t.Fatalf("first refusal: log=%v denied=%d, want true 1", logNow, denied)
	}
	for range 2 {
		if _, logNow, _ := q.allow("k", 2); logNow {
			t.Fatal("logged twice within logEvery")
		}
	}
	now = now.Add(logEvery)
	if _, logNow, denied := q.allow("k", 2); !logNow || denied != 3 {
		t.Fatalf("after logEvery: log=%v denied=%d, want true 3", logNow, denied)
	}
	// Idle buckets are swept: they are full, like a new one.
	now = now.Add(2 * time.Minute)
	allow("c", 1)
	if n := l.size(); n != 1 {
		t.Fatalf("after the sweep %d buckets remain, want only c's", n)
	}
}

func TestRateLimitErrorIsTransient(t *testing.T) {
	err := error(&rateLimitError{who: "h1", rate: 50000})
	if !errors.Is(err, ErrRateLimited) || !errors.Is(err, ErrOverloaded) {
		t.Fatal("a rate-limit answer must match ErrRateLimited and ErrOverloaded")
	}
	if r := response(&ticket{err: err}); r.Success || r.Error != "rate limit: host h1 exceeds 50000 events/s, retry later" {
		t.Fatalf("answer: %+v", r)
	}
}

func TestProtectionDefaults(t *testing.T) {
	p := Protection{Rate: 50_000}
	p.defaults(10_000)
	if p.Burst != 100_000 || p.StallTimeout != 0 || p.KeepaliveMinTime != DefaultKeepaliveMinTime {
		t.Fatalf("defaults: %+v", p)
	}
	p = Protection{Rate: 100, Burst: 10}
	p.defaults(500)
	if p.Burst != 500 {
		t.Fatalf("a burst below the largest envelope would refuse it forever: got %d, want 500", p.Burst)
	}
	p = Protection{}
	p.defaults(500)
	if p.Rate != 0 || p.Burst != 0 {
		t.Fatalf("no rate: no limit, got %+v", p)
	}
}
