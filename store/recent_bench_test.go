package store

import (
	"strconv"
	"testing"
)

// BenchmarkRecentCache: batches of 500 keys, half of them new (a START's
// miss) and half seen a batch earlier (its DESTROY's hit), then added, as
// resolve and release use the cache.
func BenchmarkRecentCache(b *testing.B) {
	for _, pre := range []bool{false, true} {
		b.Run("prefetch="+strconv.FormatBool(pre), func(b *testing.B) {
			var c recent
			const batch = 500
			keys := make([]flowFP, 4*recentFlows)
			for i := range keys {
				keys[i] = fpOf(flowKey{"net", "host", strconv.Itoa(i)})
			}
			var arena []instance
			batchKeys := make([]flowFP, batch)
			n := 0
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range batchKeys {
					if j%2 == 0 {
						batchKeys[j] = keys[(n+j)%len(keys)] // new
					} else {
						batchKeys[j] = keys[(n+len(keys)+j-batch)%len(keys)] // from the batch before
					}
				}
				n += batch
				if pre {
					c.prefetch(batchKeys)
				}
				for _, k := range batchKeys {
					arena = arena[:0]
					c.get(k, &arena)
				}
				if pre {
					c.prefetch(batchKeys)
				}
				for _, k := range batchKeys {
					c.add(k, []instance{{start: 1}})
				}
			}
		})
	}
}
