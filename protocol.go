package flowlog

import (
	"fmt"
	"strconv"
	"strings"
)

// Protocols are the IP protocol names flowlog reads and prints, by number.
// Every input path (the agent's config, the API, the CLI) parses with
// ParseProtocol and every output prints with ProtocolName, so a name that
// one of them accepts all of them accept; the page's copy is generated from
// this table (web/src/domain.gen.ts, `go generate .`).
var Protocols = map[uint8]string{
	1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 132: "sctp",
}

var protocolNumbers = func() map[string]uint8 {
	m := make(map[string]uint8, len(Protocols))
	for n, name := range Protocols {
		m[name] = n
	}
	return m
}()

// ParseProtocol accepts a protocol's name (any case) or its number 0-255.
func ParseProtocol(s string) (uint8, error) {
	s = strings.TrimSpace(s)
	if n, ok := protocolNumbers[strings.ToLower(s)]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q: want a number 0-255 or one of %s", s, ProtocolNameList())
	}
	return uint8(n), nil
}

// ProtocolName is the protocol's name, or its number when it has none.
func ProtocolName(n uint8) string {
	if name, ok := Protocols[n]; ok {
		return name
	}
	return strconv.Itoa(int(n))
}

// ProtocolNameList is the known names in protocol-number order, for help
// texts and error messages.
func ProtocolNameList() string {
	names := make([]string, 0, len(Protocols))
	for n := 0; n < 256; n++ {
		if name, ok := Protocols[uint8(n)]; ok {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

// HasPorts reports whether flows of the protocol have meaningful ports.
func HasPorts(proto uint8) bool { return proto == 6 || proto == 17 || proto == 132 }

// ParseDirection accepts a direction's API name ("ingress", "egress").
func ParseDirection(s string) (Direction, bool) {
	for i, n := range DirectionNames {
		if i > 0 && s == n {
			return Direction(i), true
		}
	}
	return 0, false
}

// StateNames are the API names of the states a query selects, by State.
var StateNames = [...]string{StateAll: "all", StateActive: "active", StateFinished: "finished", StateStale: "stale"}

// ParseState accepts a state's API name ("active").
func ParseState(s string) (State, bool) {
	for i, n := range StateNames {
		if s == n {
			return State(i), true
		}
	}
	return 0, false
}
