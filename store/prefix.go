package store

import (
	"fmt"
	"net/netip"

	"github.com/flowlog/flowlog"
)

// sideIPConds renders the filter's source and destination prefixes.
func sideIPConds(f flowlog.Filter) []string {
	var c []string
	if f.SrcIP.IsValid() {
		lo, hi := ipRange(f.SrcIP)
		c = append(c, fmt.Sprintf("src_ip BETWEEN %s AND %s", lo, hi))
	}
	if f.DstIP.IsValid() {
		lo, hi := ipRange(f.DstIP)
		c = append(c, fmt.Sprintf("dst_ip BETWEEN %s AND %s", lo, hi))
	}
	return c
}

// prefixExpr is the network address of the prefix an address column's
// value (IPv6, IPv4 mapped) belongs to, as flowlog.PrefixLens.Of computes
// it: an IPv4 /n is the mapped /(96+n).
func prefixExpr(col string, l flowlog.PrefixLens) string {
	lo, hi := ipRange(netip.MustParsePrefix("0.0.0.0/0"))
	return fmt.Sprintf("tupleElement(IPv6CIDRToRange(%[1]s, toUInt8(if(%[1]s BETWEEN %[2]s AND %[3]s, %[4]d, %[5]d))), 1)",
		col, lo, hi, 96+l.V4, l.V6)
}
