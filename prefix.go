package flowlog

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseAddrPrefix reads an address filter: an address (a /32 or /128) or a
// CIDR prefix, masked; an IPv4-mapped IPv6 prefix reads as its IPv4 one.
func ParseAddrPrefix(s string) (netip.Prefix, bool) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, false
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// PrefixLens are the prefix lengths external endpoints are grouped by:
// IPv4 addresses by V4 bits, IPv6 ones by V6 bits.
type PrefixLens struct {
	V4, V6 int
}

// DefaultPrefixLens group as a network usually allocates: an IPv4 /24 (the
// smallest prefix routed on the internet) and an IPv6 /48 (a site).
var DefaultPrefixLens = PrefixLens{V4: 24, V6: 48}

// Check says what is wrong with the lengths, naming the parameter.
func (l PrefixLens) Check() error {
	if l.V4 < 1 || l.V4 > 32 {
		return fmt.Errorf("invalid prefix4 %d: an IPv4 prefix length is 1..32", l.V4)
	}
	if l.V6 < 1 || l.V6 > 128 {
		return fmt.Errorf("invalid prefix6 %d: an IPv6 prefix length is 1..128", l.V6)
	}
	return nil
}

// Of is the prefix an address belongs to.
func (l PrefixLens) Of(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := l.V6
	if a.Is4() {
		bits = l.V4
	}
	p, _ := a.Prefix(bits)
	return p
}
