package flowlog

import (
	"fmt"
	"strings"
)

// SortKey is what the flows listing is ordered by.
type SortKey uint8

const (
	SortStart    SortKey = iota // start time (the default)
	SortBytes                   // bytes_sent + bytes_recv (an open flow's so far)
	SortDuration                // end - start; an open flow has lasted until now: longer than any ended one
)

// SortKeyNames are the API names of sort keys, by value.
var SortKeyNames = [...]string{"start", "bytes", "duration"}

func (k SortKey) String() string {
	if int(k) < len(SortKeyNames) {
		return SortKeyNames[k]
	}
	return "unknown"
}

// Sort is the order of the flows listing: by Key, descending unless Asc;
// ties by start, then flow id, in the same direction, so that every flow has
// one place and keyset paging continues exactly where a page ended.
type Sort struct {
	Key SortKey
	Asc bool
}

// ParseSort reads the API's sort and order values ("" = the defaults:
// start, desc).
func ParseSort(key, order string) (Sort, error) {
	var s Sort
	if key != "" {
		i := indexOf(SortKeyNames[:], key)
		if i < 0 {
			return s, fmt.Errorf("invalid sort %q: must be one of %s", key, strings.Join(SortKeyNames[:], ", "))
		}
		s.Key = SortKey(i)
	}
	switch order {
	case "", "desc":
	case "asc":
		s.Asc = true
	default:
		return s, fmt.Errorf("invalid order %q: must be one of asc, desc", order)
	}
	return s, nil
}

// Order is the API name of the direction.
func (s Sort) Order() string {
	if s.Asc {
		return "asc"
	}
	return "desc"
}

func (s Sort) String() string { return s.Key.String() + " " + s.Order() }

// OpenDurationBase puts open flows above every ended one in a duration
// sort: an ended flow lasts less than 2^62 ms (times end at MaxVersion).
const OpenDurationBase = 1 << 62

// SortValue is a flow's sort key value (0 for SortStart, whose key is the
// start itself). An open (or stale) flow's duration is "until now", which
// grows while it is listed: it is OpenDurationBase + (MaxVersion - start),
// ordered as "now - start" is, the same on every page, so cursors stay
// valid. The store computes the same value in SQL (store/sort.go).
func (s Sort) SortValue(f *Flow) uint64 {
	switch s.Key {
	case SortBytes:
		return f.BytesSent + f.BytesRecv
	case SortDuration:
		if f.Type != EventDestroy {
			return OpenDurationBase + uint64(MaxVersion-f.Start.UnixMilli())
		}
		return uint64(max(f.End.UnixMilli()-f.Start.UnixMilli(), 0))
	}
	return 0
}

// CursorOf is the cursor after flow f in a listing of this order.
func (s Sort) CursorOf(f *Flow) *Cursor {
	return &Cursor{Sort: s, Value: s.SortValue(f), Start: f.Start, FlowID: f.FlowID}
}

func indexOf(names []string, s string) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return -1
}
