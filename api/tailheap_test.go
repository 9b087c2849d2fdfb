package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/flowlog/flowlog/tail"
)

// BenchmarkIdleTailsHeap opens 3,000 idle live tails over real HTTP and
// reports the Go heap they hold (client side included: same process).
// BENCHMARKS.md: go test -run '^$' -bench IdleTailsHeap -benchtime 1x ./api/
func BenchmarkIdleTailsHeap(b *testing.B) {
	const tails = 3000
	hub := tail.NewHub()
	defer hub.Close()
	srv := httptest.NewServer(New(Deps{Store: &fakeStore{}, Hub: hub, Log: discardLog(), MaxTails: -1, MaxTailsPerReader: -1}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: tails}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range b.N {
		for range tails {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/flows/stream", nil)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
		}
	}
	for hub.Stats().Subscribers < tails*b.N {
		runtime.Gosched()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(tails*b.N), "heap-bytes/tail")
	b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "heap-MiB")
}
