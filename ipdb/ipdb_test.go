package ipdb

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ipdb/ipdbtest"
)

// ipdbtest cannot import ipdb's constants (ipdb's tests import it).
func TestFixtureNamesTheFiles(t *testing.T) {
	if ipdbtest.CountryFile != CountryFile || ipdbtest.ASNv4File != ASNv4File || ipdbtest.ASNv6File != ASNv6File {
		t.Fatal("ipdbtest's file names differ from ipdb's")
	}
}

var (
	writeFixture = ipdbtest.WriteFixture
	write        = ipdbtest.Write
)

func open(t testing.TB, dir string) *DB {
	t.Helper()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	writeFixture(t, dir)
	db := open(t, dir)
	if len(db.Missing) != 0 || db.Empty() {
		t.Fatalf("missing %v, empty %v", db.Missing, db.Empty())
	}
	for _, c := range []struct {
		addr    string
		asn     uint32
		name    string
		country string
	}{
		{"1.0.0.1", 13335, "Cloudflare, Inc.", "AU"},
		{"1.0.0.0", 13335, "Cloudflare, Inc.", "AU"},   // first of the range
		{"1.0.0.255", 13335, "Cloudflare, Inc.", "AU"}, // last
		{"1.0.1.0", 0, "", ""},                         // just past it
		{"0.255.255.255", 0, "", ""},                   // before every range
		{"8.8.8.8", 15169, "Google LLC", "US"},
		{"::ffff:8.8.4.4", 0, "", ""},
		{"::ffff:9.9.9.9", 19281, "Quad9", "CH"}, // mapped reads as IPv4
		{"2001:4860:4860::8888", 15169, "Google LLC", "US"},
		{"2001:4861::", 0, "", ""},
		{"10.0.0.1", 0, "", ""}, // private: no network on the internet
	} {
		asn, name, cc := db.Lookup(netip.MustParseAddr(c.addr))
		if asn != c.asn || name != c.name || cc != c.country {
			t.Errorf("Lookup(%s) = %d %q %q, want %d %q %q", c.addr, asn, name, cc, c.asn, c.name, c.country)
		}
	}
	if asn, name, cc := db.Lookup(netip.Addr{}); asn != 0 || name != "" || cc != "" {
		t.Errorf("zero Addr: %d %q %q", asn, name, cc)
	}
}

func TestEnrichNamesExternalsOnly(t *testing.T) {
	dir := t.TempDir()
	writeFixture(t, dir)
	db := open(t, dir)
	e := flowlog.Event{
		Src: flowlog.Participant{IP: netip.MustParseAddr("8.8.8.8"), Type: flowlog.ParticipantNode, ID: "n1"},
		Dst: flowlog.Participant{IP: netip.MustParseAddr("1.0.0.1"), Type: flowlog.ParticipantExternal},
	}
	db.Enrich(&e)
	if e.Src.ASN != 0 || e.Src.Country != "" {
		t.Errorf("a node was named: %+v", e.Src)
	}
	if e.Dst.ASN != 13335 || e.Dst.ASName != "Cloudflare, Inc." || e.Dst.Country != "AU" {
		t.Errorf("external: %+v", e.Dst)
	}
}

func TestMissingFilesAreListedNotFatal(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, ASNv4File), "8.8.8.0,8.8.8.255,15169,Google LLC\n")
	db := open(t, dir)
	want := []string{filepath.Join(dir, CountryFile), filepath.Join(dir, ASNv6File)}
	if strings.Join(db.Missing, " ") != strings.Join(want, " ") {
		t.Errorf("Missing = %v, want %v", db.Missing, want)
	}
	if asn, _, cc := db.Lookup(netip.MustParseAddr("8.8.8.8")); asn != 15169 || cc != "" {
		t.Errorf("partial db: asn %d country %q", asn, cc)
	}
	empty := open(t, t.TempDir())
	if !empty.Empty() || len(empty.Missing) != 3 {
		t.Errorf("empty dir: Empty %v, Missing %v", empty.Empty(), empty.Missing)
	}
}

func TestMalformedFilesAreRefusedNamingTheLine(t *testing.T) {
	for name, body := range map[string]string{
		"bad address": "8.8.8.0,8.8.8.255,15169,Google\n8.8.9.x,8.8.9.255,1,X\n",
		"reversed":    "8.8.8.255,8.8.8.0,15169,Google\n",
		"mixed":       "8.8.8.0,2001::,15169,Google\n",
		"bad asn":     "8.8.8.0,8.8.8.255,AS15169,Google\n",
		"columns":     "8.8.8.0,8.8.8.255,15169\n",
	} {
		dir := t.TempDir()
		write(t, filepath.Join(dir, ASNv4File), body)
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), ASNv4File) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, ASNv4File)
		}
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, CountryFile), "not an mmdb")
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), CountryFile) {
		t.Errorf("bad mmdb: err = %v", err)
	}
}

func TestConcurrentLookups(t *testing.T) {
	dir := t.TempDir()
	writeFixture(t, dir)
	db := open(t, dir)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if asn, _, cc := db.Lookup(netip.MustParseAddr("9.9.9.9")); asn != 19281 || cc != "CH" {
					t.Errorf("got %d %q", asn, cc)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The fetch script caches the version Open looks for by default.
func TestFetchScriptPinsVersion(t *testing.T) {
	b, err := os.ReadFile("../scripts/fetch-ipdb.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nVERSION="+Version+" ") {
		t.Errorf("scripts/fetch-ipdb.sh does not pin VERSION=%s (ipdb.Version)", Version)
	}
	if !strings.HasSuffix(DefaultDir(), filepath.Join("flowlog", "ipdb", Version)) {
		t.Errorf("DefaultDir %s is not the script's cache", DefaultDir())
	}
}

// The AS names (~90k in the real files) are held in one string, not one
// heap object each: those, cut while the CSV's garbage was made, left ~5 MiB
// of heap spans partly used once it was collected (and 1.4 MiB of headers).
func TestASNamesAreHeldAsOneObject(t *testing.T) {
	var csv strings.Builder
	const n = 20_000
	for i := range n {
		fmt.Fprintf(&csv, "10.%d.%d.0,10.%d.%d.255,%d,AS name number %d\n", i>>8, i&255, i>>8, i&255, 64512+i, i)
	}
	objects := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapObjects
	}
	before := objects()
	var tab asnTable
	if err := tab.load(strings.NewReader(csv.String()), "asn-ipv4.csv"); err != nil {
		t.Fatal(err)
	}
	tab.sort()
	held := int64(objects()) - int64(before)
	if _, name := tab.lookup(netip.MustParseAddr("10.78.31.7")); name != "AS name number 19999" {
		t.Fatalf("lookup: %q", name)
	}
	if held > n/10 {
		t.Fatalf("%d AS names are held in %d heap objects", n, held)
	}
	runtime.KeepAlive(&tab)
}
