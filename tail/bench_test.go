package tail

import (
	"testing"

	"github.com/flowlog/flowlog"
)

// BenchmarkPublishWith3000IdleSubscribers is the commit path's cost of the
// live tail: Publish of a 1,000-event commit with 3,000 subscribers
// connected (none of which the events match, as with idle tails filtered
// on another network). BENCHMARKS.md:
// go test -run '^$' -bench PublishWith3000 -benchmem ./tail/
func BenchmarkPublishWith3000IdleSubscribers(b *testing.B) {
	h := NewHub()
	defer h.Close()
	for range 3000 {
		h.Subscribe(flowlog.Filter{NetworkID: "elsewhere"}, DefaultBuffer)
	}
	batch := evs(0, 1000, "n")
	b.ResetTimer()
	for range b.N {
		h.Publish(batch)
		b.StopTimer()
		h.sync() // the fan-out's work is not the publisher's; keep the queue short
		b.StartTimer()
	}
}
