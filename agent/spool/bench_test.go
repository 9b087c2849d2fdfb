package spool

import (
	"context"
	"fmt"
	"testing"
	"time"
)

var benchSizes = []int{64 << 10, 1 << 10}

// BenchmarkAppend appends entries, acknowledging every 64 so the spool never
// fills (acked segments are deleted as they are sealed).
func BenchmarkAppend(b *testing.B) {
	for _, size := range benchSizes {
		for _, sync := range []time.Duration{0, 10 * time.Millisecond} {
			b.Run(fmt.Sprintf("size=%dKiB/sync=%v", size>>10, sync), func(b *testing.B) {
				s := openT(b, b.TempDir(), Options{SyncEvery: sync})
				data := make([]byte, size)
				b.SetBytes(int64(size))
				n := 0
				for b.Loop() {
					seq, err := s.Append(data)
					if err != nil {
						b.Fatal(err)
					}
					if n++; n%64 == 0 {
						s.Ack(seq)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkAppendRead runs an appender goroutine against a reader that
// acknowledges every 64 entries: the exporter's steady state.
func BenchmarkAppendRead(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
			s := openT(b, b.TempDir(), Options{})
			data := make([]byte, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() {
				for range b.N {
					for {
						_, err := s.Append(data)
						if err == ErrFull {
							time.Sleep(10 * time.Microsecond)
							continue
						}
						if err != nil {
							errc <- err
							return
						}
						break
					}
				}
				errc <- nil
			}()
			ctx := context.Background()
			for i := range b.N {
				e, err := s.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 || i == b.N-1 {
					s.Ack(e.Seq)
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
