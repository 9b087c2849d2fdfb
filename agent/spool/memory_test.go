package spool

import (
	"runtime"
	"testing"
)

// TestMemoryBounded pushes 50 MB through the spool in 64 KiB entries, all
// appended before any is read (the spool holds all of it on disk), then reads
// it back, reopens and reads it again, checking that the heap stays small:
// nothing is kept in memory per entry.
func TestMemoryBounded(t *testing.T) {
	const (
		size  = 64 << 10
		n     = 800 // 50 MiB
		bound = 32 << 20
	)
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var peak uint64
	check := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		if ms.HeapInuse > bound {
			t.Fatalf("HeapInuse %d MiB > %d MiB", ms.HeapInuse>>20, bound>>20)
		}
	}
	data := make([]byte, size)
	for i := range n {
		data[0] = byte(i)
		mustAppend(t, s, data)
		if i%50 == 0 {
			check()
		}
	}
	if st := s.Stats(); st.Bytes < n*size {
		t.Fatalf("Stats %+v", st)
	}
	readAll := func(s *Spool) {
		for i := range n {
			e := readOne(t, s)
			if len(e.Data) != size || e.Data[0] != byte(i) {
				t.Fatalf("entry %d: %d bytes, first %d", i, len(e.Data), e.Data[0])
			}
			if i%50 == 0 {
				check()
			}
		}
	}
	readAll(s)
	s.Close()
	s = openT(t, dir, Options{}) // recovery scans all 50 MiB
	check()
	readAll(s)
	t.Logf("peak HeapInuse %.1f MiB for %d MiB spooled", float64(peak)/(1<<20), n*size>>20)
}
