package flowlog

//go:generate go run ./internal/gendomain web/src/domain.gen.ts

import (
	"fmt"
	"strings"
)

// DomainTS is web/src/domain.gen.ts: the domain's names for the page,
// generated from the tables above so that they cannot drift.
func DomainTS() string {
	var b strings.Builder
	b.WriteString("// Generated from the Go domain package (protocol.go, flowlog.go) by `go generate .`; do not edit.\n\n")
	b.WriteString("export const protocolNames: Record<number, string> = {")
	for n := 0; n < 256; n++ {
		if name, ok := Protocols[uint8(n)]; ok {
			fmt.Fprintf(&b, " %d: %q,", n, name)
		}
	}
	b.WriteString(" };\n\n")
	list := func(name string, names []string) {
		fmt.Fprintf(&b, "export const %s = [", name)
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", n)
		}
		b.WriteString("] as const;\n")
	}
	list("participantTypes", ParticipantTypeNames[1:])
	list("directions", DirectionNames[1:])
	b.WriteString("\n// portProtocols are the protocols whose flows have meaningful ports.\nexport const portProtocols: readonly number[] = [")
	first := true
	for n := 0; n < 256; n++ {
		if HasPorts(uint8(n)) {
			if !first {
				b.WriteString(", ")
			}
			first = false
			fmt.Fprintf(&b, "%d", n)
		}
	}
	b.WriteString("];\n")
	return b.String()
}
