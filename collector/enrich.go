package collector

import (
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/ipdb"
)

// enricher opens the IP databases and returns what names the external
// endpoints of every event at ingest (nil: nothing to name with). A missing
// or unreadable database never stops the collector: it runs without that
// enrichment and says once, at start, which file and how to get it.
func (c *Collector) enricher() func(*flowlog.Event) {
	dir := c.cfg.IPDBDir
	if dir == "" {
		dir = ipdb.DefaultDir()
	}
	began := time.Now()
	db, err := ipdb.Open(dir)
	if err != nil {
		c.log.Error("IP database unreadable: external endpoints are not named (AS, country)", "err", err,
			"fix", "scripts/fetch-ipdb.sh (make setup) fetches ip-location-db "+ipdb.Version+" into "+ipdb.DefaultDir())
		return nil
	}
	for _, f := range db.Missing {
		c.log.Warn("IP database file missing: external endpoints are named without it", "file", f,
			"fix", "scripts/fetch-ipdb.sh (make setup) fetches ip-location-db "+ipdb.Version+" into "+ipdb.DefaultDir()+"; or --ipdb-dir")
	}
	if db.Empty() {
		return nil
	}
	c.log.Info("external endpoints are named by AS and country", "ipdb", dir, "load", time.Since(began).Round(time.Millisecond),
		"attribution", ipdb.Attribution)
	return db.Enrich
}
