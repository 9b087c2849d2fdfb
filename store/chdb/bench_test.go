package chdb

import (
	"context"
	"sync"
	"testing"

	"github.com/flowlog/flowlog"
)

// BenchmarkInsertWhileQueriesRun is one small insert of the ingest while
// four clients keep the engine busy with heavy reads (as deep OFFSET pages
// did): with the ingest's own connection it does not queue behind them.
// BENCHMARKS.md: go test -run '^$' -bench InsertWhileQueriesRun -benchtime 20x ./store/chdb/
func BenchmarkInsertWhileQueriesRun(b *testing.B) {
	ctx := context.Background()
	if err := shared.Exec(ctx, "CREATE TABLE IF NOT EXISTS default.bench_ingest (x UInt64) ENGINE = MergeTree ORDER BY x"); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				shared.Query(ctx, "SELECT sum(number) FROM numbers(200000000)", "TabSeparated")
			}
		}()
	}
	b.ResetTimer()
	for range b.N {
		if err := shared.Exec(flowlog.IngestContext(ctx), "INSERT INTO default.bench_ingest VALUES (1)"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
}
