package ipdb

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/flowlog/flowlog"
)

// realDB opens the cached real databases (make setup), or skips.
func realDB(b *testing.B) *DB {
	db, err := Open(DefaultDir())
	if err != nil {
		b.Fatal(err)
	}
	if len(db.Missing) > 0 {
		b.Skipf("no cached database (%v): run scripts/fetch-ipdb.sh", db.Missing)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkLookup: one lookup of an address among a spread of IPv4 and
// IPv6 ones, on the real files.
func BenchmarkLookup(b *testing.B) {
	db := realDB(b)
	addrs := make([]netip.Addr, 0, 1024)
	for i := range 1000 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{byte(1 + i*37%222), byte(i * 91), byte(i * 13), 1}))
	}
	for i := range 24 {
		addrs = append(addrs, netip.AddrFrom16([16]byte{0x20, 0x01, byte(i * 7), 0x60, 0x48, byte(i), 15: 1}))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		db.Lookup(addrs[i%len(addrs)])
	}
}

// BenchmarkOpen: loading the real files; reports the Go heap the loaded
// tables keep (the country MMDB is mapped, not on the heap).
func BenchmarkOpen(b *testing.B) {
	var held uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		db := realDB(b)
		runtime.GC()
		runtime.ReadMemStats(&after)
		held = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(db)
	}
	b.ReportMetric(float64(held)/(1<<20), "heap-MiB")
}

// BenchmarkEnrich: naming one event whose destination is external (its
// source a mesh node, not looked up), the work ingest adds per event.
func BenchmarkEnrich(b *testing.B) {
	db := realDB(b)
	e := flowlog.Event{
		Src: flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1"), Type: flowlog.ParticipantNode},
		Dst: flowlog.Participant{IP: netip.MustParseAddr("8.8.8.8"), Type: flowlog.ParticipantExternal},
	}
	b.ReportAllocs()
	for b.Loop() {
		db.Enrich(&e)
	}
	if e.Dst.ASN != 15169 {
		b.Fatalf("8.8.8.8 named %+v", e.Dst)
	}
}
