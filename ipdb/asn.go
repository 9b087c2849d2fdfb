package ipdb

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// The AS data come as CSV rows of inclusive address ranges
// (first,last,asn,"name"), ~412k for IPv4 and ~103k for IPv6. No library:
// it is a CSV of ranges, and a sorted slice of them with a binary search is
// all a range table needs (16 bytes an IPv4 range, 40 an IPv6 one, each AS
// name kept once).

// u128 is an IPv6 address as a number, for ordered comparisons.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func u128Of(a netip.Addr) u128 {
	b := a.As16()
	var x u128
	for i := range 8 {
		x.hi = x.hi<<8 | uint64(b[i])
		x.lo = x.lo<<8 | uint64(b[8+i])
	}
	return x
}

type range4 struct {
	first, last uint32
	asn, name   uint32 // name: asnTable.name's index
}

type range6 struct {
	first, last u128
	asn, name   uint32
}

// asnTable holds the ranges of both families sorted by first address, and
// each AS name once.
type asnTable struct {
	v4 []range4
	v6 []range6
	// names holds every AS name end to end, name i ending at ends[i]. One
	// string rather than one per name: ~90k small strings cost 1.4 MiB of
	// headers and, cut while reading the CSV made its garbage, left ~5 MiB
	// of heap spans partly used once that garbage was collected.
	names string
	ends  []uint32
	arena []byte            // names while loading; nil after sort
	index map[string]uint32 // names while loading; nil after sort
}

// name is AS name i.
func (t *asnTable) name(i uint32) string {
	var start uint32
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.names[start:t.ends[i]]
}

func (t *asnTable) empty() bool { return len(t.v4) == 0 && len(t.v6) == 0 }

func (t *asnTable) intern(name string) uint32 {
	if t.index == nil {
		t.index = map[string]uint32{"": 0}
		t.ends = append(t.ends[:0], 0)
	}
	i, ok := t.index[name]
	if !ok {
		i = uint32(len(t.ends))
		t.arena = append(t.arena, name...)
		t.ends = append(t.ends, uint32(len(t.arena)))
		t.index[strings.Clone(name)] = i // not the whole CSV line it was cut from
	}
	return i
}

// load reads one CSV file (named path in errors) into the table.
func (t *asnTable) load(r io.Reader, path string) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 4
	cr.ReuseRecord = true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil { // a csv.ParseError names the line
			return fmt.Errorf("ipdb: %s: %w", path, err)
		}
		if err := t.add(rec); err != nil {
			line, _ := cr.FieldPos(0)
			return fmt.Errorf("ipdb: %s:%d: %w", path, line, err)
		}
	}
}

// add appends one row: first, last, asn, name.
func (t *asnTable) add(rec []string) error {
	first, err1 := netip.ParseAddr(rec[0])
	last, err2 := netip.ParseAddr(rec[1])
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("bad range %q-%q: %w", rec[0], rec[1], err)
	}
	first, last = first.Unmap(), last.Unmap()
	if first.Is4() != last.Is4() || last.Less(first) {
		return fmt.Errorf("bad range %q-%q: not one family, first to last", rec[0], rec[1])
	}
	asn, err := strconv.ParseUint(rec[2], 10, 32)
	if err != nil {
		return fmt.Errorf("bad AS number %q: must be 0..4294967295", rec[2])
	}
	name := t.intern(rec[3])
	if first.Is4() {
		f, l := first.As4(), last.As4()
		t.v4 = append(t.v4, range4{be32(f), be32(l), uint32(asn), name})
	} else {
		t.v6 = append(t.v6, range6{u128Of(first), u128Of(last), uint32(asn), name})
	}
	return nil
}

func be32(b [4]byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// sort orders the ranges for lookup (the files come sorted; a file that is
// not stays correct), trims them and drops the loading index.
func (t *asnTable) sort() {
	slices.SortFunc(t.v4, func(a, b range4) int { return cmp.Compare(a.first, b.first) })
	slices.SortFunc(t.v6, func(a, b range6) int {
		return cmp.Or(cmp.Compare(a.first.hi, b.first.hi), cmp.Compare(a.first.lo, b.first.lo))
	})
	// Copies of exact size: appending left up to a quarter unused.
	t.v4, t.v6, t.ends = slices.Clone(t.v4), slices.Clone(t.v6), slices.Clone(t.ends)
	t.names = string(t.arena) // sort runs once, after the last file
	t.arena, t.index = nil, nil
}

// lookup finds the range holding a: the last one starting at or before it,
// if it ends at or after it (the ranges do not overlap).
func (t *asnTable) lookup(a netip.Addr) (uint32, string) {
	if a.Is4() {
		x := be32(a.As4())
		i, _ := slices.BinarySearchFunc(t.v4, x, func(r range4, x uint32) int {
			if r.first <= x {
				return -1
			}
			return 1
		})
		if i > 0 && x <= t.v4[i-1].last {
			return t.v4[i-1].asn, t.name(t.v4[i-1].name)
		}
		return 0, ""
	}
	x := u128Of(a)
	i, _ := slices.BinarySearchFunc(t.v6, x, func(r range6, x u128) int {
		if !x.less(r.first) {
			return -1
		}
		return 1
	})
	if i > 0 && !t.v6[i-1].last.less(x) {
		return t.v6[i-1].asn, t.name(t.v6[i-1].name)
	}
	return 0, ""
}
