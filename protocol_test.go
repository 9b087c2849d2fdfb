package flowlog_test

import (
	"os"
	"testing"

	"github.com/flowlog/flowlog"
)

// Every name the domain prints, it parses back, and numbers pass through:
// the agent's config, the API and the CLI all rely on this one table.
func TestProtocolNamesRoundTrip(t *testing.T) {
	for n := 0; n < 256; n++ {
		name := flowlog.ProtocolName(uint8(n))
		got, err := flowlog.ParseProtocol(name)
		if err != nil || got != uint8(n) {
			t.Fatalf("ParseProtocol(ProtocolName(%d) = %q) = %d, %v", n, name, got, err)
		}
	}
	for in, want := range map[string]uint8{"TCP": 6, " gre ": 47, "icmpv6": 58, "0": 0, "255": 255} {
		if got, err := flowlog.ParseProtocol(in); err != nil || got != want {
			t.Errorf("ParseProtocol(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "256", "-1", "quic", "6x"} {
		if _, err := flowlog.ParseProtocol(bad); err == nil {
			t.Errorf("ParseProtocol(%q) accepted", bad)
		}
	}
	if d, ok := flowlog.ParseDirection("egress"); !ok || d != flowlog.DirEgress {
		t.Errorf("ParseDirection(egress) = %v, %v", d, ok)
	}
	if _, ok := flowlog.ParseDirection("unspecified"); ok {
		t.Error("ParseDirection accepted unspecified")
	}
}

// The page's copy of the names is generated; a stale copy would make the
// page print what the API does not.
func TestGeneratedDomainIsCurrent(t *testing.T) {
	b, err := os.ReadFile("web/src/domain.gen.ts")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != flowlog.DomainTS() {
		t.Fatal("web/src/domain.gen.ts is stale: run `go generate .` at the repository's root")
	}
}
