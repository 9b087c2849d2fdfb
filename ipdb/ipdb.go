// Package ipdb names internet addresses by their network: the autonomous
// system (number and name) that announces them and their country, as
// Akvorado does, so an external endpoint of a flow reads "AS13335
// Cloudflare, Inc. (US)" instead of a bare address.
//
// The data are two packages of the npm registry's ip-location-db, fetched
// and cached by scripts/fetch-ipdb.sh at Version (make setup does it):
//   - @ip-location-db/geo-whois-asn-country-mmdb: the country of an address
//     (MMDB, package licence CC0-1.0; built from the RIRs' data, NRO, CC BY 4.0);
//   - @ip-location-db/asn: AS number and name per address range (CSV,
//     CC BY 4.0: RouteViews, DB-IP and NRO; attribution required wherever AS
//     names are shown: see Attribution).
package ipdb

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/flowlog/flowlog"
)

// Version is the pinned version of both npm packages (scripts/fetch-ipdb.sh).
const Version = "2.3.2026061719"

// The files of a database directory.
const (
	CountryFile = "geo-whois-asn-country.mmdb" // both families
	ASNv4File   = "asn-ipv4.csv"
	ASNv6File   = "asn-ipv6.csv"
)

// Attribution is what CC BY 4.0 asks of whoever shows AS names.
const Attribution = "AS data: RouteViews (routeviews.org), DB-IP (db-ip.com) and NRO (nro.net), CC BY 4.0, " +
	"via ip-location-db; countries: ip-location-db geo-whois-asn-country (CC0-1.0)"

// DefaultDir is where scripts/fetch-ipdb.sh caches the files:
// $XDG_CACHE_HOME/flowlog/ipdb/<Version> (or ~/.cache/...).
func DefaultDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), "cache")
	}
	return filepath.Join(dir, "flowlog", "ipdb", Version)
}

// DB answers lookups from the files loaded by Open. It is read-only once
// opened, so any number of goroutines may use it at once.
type DB struct {
	country *maxminddb.Reader // nil: no country file
	asn     asnTable          // empty: no AS files
	// Missing lists the files of the directory that were absent: their
	// part of the answers stays empty.
	Missing []string
}

// Open loads the files of dir. An absent file is not an error (it is listed
// in Missing, and its answers are empty: the collector runs without that
// enrichment); a file that is there but unreadable or malformed is, naming
// the file and the line.
func Open(dir string) (*DB, error) {
	db := &DB{}
	path := filepath.Join(dir, CountryFile)
	r, err := maxminddb.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		db.Missing = append(db.Missing, path)
	case err != nil:
		return nil, fmt.Errorf("ipdb: %s: %w", path, err)
	default:
		db.country = r
	}
	for _, name := range []string{ASNv4File, ASNv6File} {
		path := filepath.Join(dir, name)
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			db.Missing = append(db.Missing, path)
			continue
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("ipdb: %w", err)
		}
		err = db.asn.load(f, path)
		f.Close()
		if err != nil {
			db.Close()
			return nil, err
		}
	}
	db.asn.sort()
	return db, nil
}

// Empty says whether nothing was loaded (every lookup answers nothing).
func (db *DB) Empty() bool { return db.country == nil && db.asn.empty() }

// Close releases the country file's mapping.
func (db *DB) Close() error {
	if db.country != nil {
		return db.country.Close()
	}
	return nil
}

// countryRecord is the one field of geo-whois-asn-country's records.
type countryRecord struct {
	Code string `maxminddb:"country_code"`
}

// Lookup names the network of addr: its AS number and name (0 and "" when
// no range holds it) and its country as an ISO 3166 alpha-2 code ("" when
// unknown). IPv4-mapped IPv6 addresses are looked up as IPv4.
func (db *DB) Lookup(addr netip.Addr) (asn uint32, asName, country string) {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return 0, "", ""
	}
	asn, asName = db.asn.lookup(addr)
	if db.country != nil {
		var rec countryRecord
		// A lookup error means a corrupt file, checked at Open as far as
		// the reader can: the answer is then "unknown", not a failed insert.
		if err := db.country.Lookup(addr).Decode(&rec); err == nil {
			country = rec.Code
		}
	}
	return asn, asName, country
}

// Enrich names the external endpoints of e (participants of type external:
// the only ones on the internet; mesh addresses are private).
func (db *DB) Enrich(e *flowlog.Event) {
	for _, p := range []*flowlog.Participant{&e.Src, &e.Dst} {
		if p.Type == flowlog.ParticipantExternal {
			p.ASN, p.ASName, p.Country = db.Lookup(p.IP)
		}
	}
}
