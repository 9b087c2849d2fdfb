// Package ipdbtest writes small IP databases for tests: the files of an
// ipdb directory, with a few public networks.
package ipdbtest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// The files' names, as package ipdb reads them (ipdb's tests check that
// these agree).
const (
	CountryFile = "geo-whois-asn-country.mmdb"
	ASNv4File   = "asn-ipv4.csv"
	ASNv6File   = "asn-ipv6.csv"
)

// WriteFixture writes into dir: countries for a few public networks (an
// MMDB written with MaxMind's writer, shaped as geo-whois-asn-country:
// {country_code}) and AS ranges as ip-location-db's CSVs spell them.
//
//	1.0.0.0/24      AS13335 "Cloudflare, Inc."  AU
//	8.8.8.0/24      AS15169 Google LLC          US
//	9.9.9.0/24      AS19281 Quad9               CH
//	2001:4860::/32  AS15169 Google LLC          US
func WriteFixture(t testing.TB, dir string) {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "geo-whois-asn-country", IPVersion: 6, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, cc := range map[string]string{
		"1.0.0.0/24": "AU", "8.8.8.0/24": "US", "9.9.9.0/24": "CH", "2001:4860::/32": "US",
	} {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(n, mmdbtype.Map{"country_code": mmdbtype.String(cc)}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(dir, CountryFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	Write(t, filepath.Join(dir, ASNv4File), "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n"+
		"8.8.8.0,8.8.8.255,15169,Google LLC\n"+
		"9.9.9.0,9.9.9.255,19281,Quad9\n")
	Write(t, filepath.Join(dir, ASNv6File), "2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,15169,Google LLC\n")
}

// Write writes a file or fails the test.
func Write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
