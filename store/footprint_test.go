package store_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/store"
)

var footprintFlows = flag.Int("footprint", 0, "TestStorageFootprint: number of synthetic flows (0: skip)")

// TestStorageFootprint measures bytes on disk per stored row (docs/
// deployment.md, sizing), on the synthetic flows of TestQueryCosts: before
// merges (a START and a DESTROY row per finished flow) and after (one row
// per flow, the steady state background merges reach). Skipped unless
// -footprint is given:
//
//	go test -run TestStorageFootprint -v ./store/ -args -footprint=1000000
func TestStorageFootprint(t *testing.T) {
	if *footprintFlows <= 0 {
		t.Skip("set -footprint=N to measure bytes per row (go test -run TestStorageFootprint -v ./store/ -args -footprint=1000000)")
	}
	ctx := context.Background()
	s := open(t, store.Options{Database: fmt.Sprint("footprint_", *footprintFlows), Retention: 40 * 24 * time.Hour})
	g := newSynth(*footprintFlows, time.Now().UTC().Truncate(time.Minute))
	g.load(t, s)
	db := strings.Trim(s.Database(), "`")
	report := func(when string) {
		var parts []struct {
			Rows uint64 `json:"r"`
			Disk uint64 `json:"d"`
			Comp uint64 `json:"c"`
			Raw  uint64 `json:"u"`
		}
		if err := s.QueryRows(ctx, "SELECT sum(rows) AS r, sum(bytes_on_disk) AS d, sum(data_compressed_bytes) AS c, sum(data_uncompressed_bytes) AS u "+
			"FROM system.parts WHERE active AND database = '"+db+"' AND table = 'flows'", &parts); err != nil {
			t.Fatal(err)
		}
		p := parts[0]
		t.Logf("%s: %d rows, %d bytes on disk: %.1f bytes/row on disk, %.1f uncompressed (ratio %.1f)",
			when, p.Rows, p.Disk, float64(p.Disk)/float64(p.Rows), float64(p.Raw)/float64(p.Rows), float64(p.Raw)/float64(p.Comp))
	}
	report("as inserted")
	if err := s.Exec(ctx, "OPTIMIZE TABLE "+s.Database()+".flows FINAL"); err != nil {
		t.Fatal(err)
	}
	report("merged")
}
