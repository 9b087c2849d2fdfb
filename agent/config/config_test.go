package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flowlog/flowlog"
)

const full = `# a complete config
host:
  id: 7f1c0e2a-host
  name: web-1
networks:
  - id: mesh1
    addresses: [10.10.0.5, "fd00::5"]
    cidrs: [10.10.0.0/16, "fd00::/64"]
  - id: mesh2
    addresses: [10.10.200.1]
    cidrs: [10.10.200.0/24]   # overlaps mesh1: the more specific wins
participants:
  - match: 10.10.0.7
    type: node
    id: n-7
    name: db-1
  - match: 10.10.8.0/24
    type: user
    id: alice
    name: alice@example.com
  - match: "fd00::9"
    type: extclient
    id: phone
  - match: 192.168.1.0/24
    type: PARTICIPANT_EGRESS_ROUTE
    id: office
    name: office LAN
drop:
  presets: [dns, icmp]
  protocols: [icmp, 47, TCP]
  ports: [53, 5353]
  cidrs: [10.10.99.0/24, 10.10.98.1]
`

func want() *Config {
	a, p := netip.MustParseAddr, netip.MustParsePrefix
	return &Config{
		Host: Host{ID: "7f1c0e2a-host", Name: "web-1"},
		Networks: []Network{
			{ID: "mesh1", Addresses: []netip.Addr{a("10.10.0.5"), a("fd00::5")}, CIDRs: []netip.Prefix{p("10.10.0.0/16"), p("fd00::/64")}},
			{ID: "mesh2", Addresses: []netip.Addr{a("10.10.200.1")}, CIDRs: []netip.Prefix{p("10.10.200.0/24")}},
		},
		Participants: []Participant{
			{Match: p("10.10.0.7/32"), Type: flowlog.ParticipantNode, ID: "n-7", Name: "db-1"},
			{Match: p("10.10.8.0/24"), Type: flowlog.ParticipantUser, ID: "alice", Name: "alice@example.com"},
			{Match: p("fd00::9/128"), Type: flowlog.ParticipantExtClient, ID: "phone"},
			{Match: p("192.168.1.0/24"), Type: flowlog.ParticipantEgressRoute, ID: "office", Name: "office LAN"},
		},
		Drop: Drop{
			Presets:   []string{"dns", "icmp"},
			Protocols: []uint8{1, 47, 6},
			Ports:     []uint16{53, 5353},
			CIDRs:     []netip.Prefix{p("10.10.99.0/24"), p("10.10.98.1/32")},
		},
	}
}

func TestParseFull(t *testing.T) {
	c, err := Parse("agent.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, want()) {
		t.Fatalf("got  %+v\nwant %+v", c, want())
	}
	// round trip: Marshal, Parse again, same config
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("marshalled.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(c2, want()) {
		t.Fatalf("round trip:\n%s\ngot  %+v\nwant %+v", out, c2, want())
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, want()) {
		t.Fatalf("got %+v", c)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(path, []byte("host: [\n"), 0o600)
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+":") {
		t.Fatalf("error must name the path: %v", err)
	}
}

func TestMinimal(t *testing.T) {
	c, err := Parse("a.yaml", []byte("host: {id: h, name: n}\nnetworks: [{id: m, addresses: [10.0.0.1], cidrs: [10.0.0.0/8]}]\ndrop:\nparticipants: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Participants) != 0 || !reflect.DeepEqual(c.Drop, Drop{}) {
		t.Fatalf("%+v", c)
	}
}

// head is a valid host and network; cases append to or replace it.
const head = `host:
  id: h1
  name: web-1
networks:
  - id: mesh1
    addresses: [10.10.0.5]
    cidrs: [10.10.0.0/16]
`

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"empty", "", `agent.yaml: empty config`},
		{"only comment", "# nothing\n", `agent.yaml: empty config`},
		{"syntax", "host: [\n", `agent.yaml:1: did not find expected node content`},
		{"not a mapping", "- a\n- b\n", `agent.yaml:1: the document must be a mapping with keys host, networks, participants, drop, not a list`},
		{"two documents", head + "---\nhost: {}\n", `agent.yaml:8: more than one YAML document`},
		{"unknown top key", head + "particpants: []\n", `agent.yaml:8: particpants: unknown field (want one of host, networks, participants, drop)`},
		{"repeated key", head + "networks: []\n", `agent.yaml:8: networks: repeated field (first set at line 4)`},
		{"missing host", "networks:\n  - id: m\n    addresses: [10.0.0.1]\n    cidrs: [10.0.0.0/8]\n", `agent.yaml:1: host: must be set (host.id and host.name)`},
		{"missing host id", "host:\n  name: x\nnetworks: [{id: m, addresses: [10.0.0.1], cidrs: [10.0.0.0/8]}]\n", `agent.yaml:2: host.id: must be set`},
		{"empty host name", "host:\n  id: x\n  name: \"\"\nnetworks: [{id: m, addresses: [10.0.0.1], cidrs: [10.0.0.0/8]}]\n", `agent.yaml:3: host.name: must be set`},
		{"host name a list", "host:\n  id: x\n  name: [a]\nnetworks: [{id: m, addresses: [10.0.0.1], cidrs: [10.0.0.0/8]}]\n", `agent.yaml:3: host.name: must be a single value, not a list`},
		{"unknown host key", "host:\n  id: x\n  name: y\n  ip: 1.2.3.4\nnetworks: [{id: m, addresses: [10.0.0.1], cidrs: [10.0.0.0/8]}]\n", `agent.yaml:4: host.ip: unknown field (want one of id, name)`},
		{"host id too long", "host:\n  id: " + strings.Repeat("x", 257) + "\n  name: y\nnetworks: [{id: m, addresses: [10.0.0.1], cidrs: [10.0.0.0/8]}]\n", `agent.yaml:2: host.id: is 257 bytes, longer than 256 (the collector rejects it)`},
		{"no networks", "host: {id: h, name: n}\nnetworks: []\n", `agent.yaml:2: networks: must list at least one network`},
		{"networks missing", "host: {id: h, name: n}\n", `agent.yaml:1: networks: must list at least one network`},
		{"networks a mapping", "host: {id: h, name: n}\nnetworks: {id: m}\n", `agent.yaml:2: networks: must be a list, not a mapping`},
		{"network id missing", head + "  - addresses: [10.20.0.1]\n    cidrs: [10.20.0.0/16]\n", `agent.yaml:8: networks[1].id: must be set`},
		{"duplicate network id", head + "  - id: mesh1\n    addresses: [10.20.0.1]\n    cidrs: [10.20.0.0/16]\n", `agent.yaml:8: networks[1].id: duplicate network id "mesh1" (also networks[0])`},
		{"bad cidr", head + "  - id: mesh2\n    addresses: [10.20.0.1]\n    cidrs: [10.0.0.0/33]\n", `agent.yaml:10: networks[1].cidrs[0]: "10.0.0.0/33" is not a CIDR`},
		{"cidr host bits", head + "  - id: mesh2\n    addresses: [10.20.0.1]\n    cidrs: [10.20.0.1/16]\n", `agent.yaml:10: networks[1].cidrs[0]: "10.20.0.1/16" has host bits set; did you mean 10.20.0.0/16?`},
		{"same cidr twice", head + "  - id: mesh2\n    addresses: [10.10.0.6]\n    cidrs: [10.10.0.0/16]\n", `agent.yaml:10: networks[1].cidrs[0]: 10.10.0.0/16 is already a cidr of networks[0] ("mesh1")`},
		{"no cidrs", head + "  - id: mesh2\n    addresses: [10.20.0.1]\n    cidrs: []\n", `agent.yaml:10: networks[1].cidrs: must list at least one cidr`},
		{"no addresses", head + "  - id: mesh2\n    cidrs: [10.20.0.0/16]\n", `agent.yaml:8: networks[1].addresses: must list at least one address`},
		{"bad address", head + "  - id: mesh2\n    addresses: [10.20.0.300]\n    cidrs: [10.20.0.0/16]\n", `agent.yaml:9: networks[1].addresses[0]: "10.20.0.300" is not an IP address`},
		{"address with zone", head + "  - id: mesh2\n    addresses: [\"fe80::1%wg0\"]\n    cidrs: [\"fe80::/64\"]\n", `agent.yaml:9: networks[1].addresses[0]: "fe80::1%wg0" has a zone; zones are not allowed`},
		{"address outside cidrs", head + "  - id: mesh2\n    addresses: [10.20.0.1, 10.30.0.1]\n    cidrs: [10.20.0.0/16, \"fd00::/64\"]\n", `agent.yaml:9: networks[1].addresses[1]: 10.30.0.1 is not inside any of the network's cidrs (10.20.0.0/16, fd00::/64)`},
		{"address in two networks", head + "  - id: mesh2\n    addresses: [10.10.0.5]\n    cidrs: [10.10.0.0/24]\n", `agent.yaml:9: networks[1].addresses[0]: 10.10.0.5 is already an address of networks[0] ("mesh1")`},
		{"unknown network key", head + "    name: x\n", `agent.yaml:8: networks[0].name: unknown field (want one of id, addresses, cidrs)`},
		{"participants not a list", head + "participants: {match: 10.0.0.1}\n", `agent.yaml:8: participants: must be a list, not a mapping`},
		{"participant type unknown", head + "participants:\n  - match: 10.10.0.7\n    type: admin\n    id: x\n", `agent.yaml:10: participants[0].type: unknown type "admin"; want node, user, extclient or egress_route`},
		{"participant type external", head + "participants:\n  - match: 10.10.0.7\n    type: external\n    id: x\n", `agent.yaml:10: participants[0].type: "external" is implicit (anything unmatched is external); want node, user, extclient or egress_route`},
		{"participant type missing", head + "participants:\n  - match: 10.10.0.7\n    id: x\n", `agent.yaml:9: participants[0].type: must be set`},
		{"participant id missing", head + "participants:\n  - match: 10.10.0.7\n    type: node\n", `agent.yaml:9: participants[0].id: must be set`},
		{"participant bad match", head + "participants:\n  - match: db-1\n    type: node\n    id: x\n", `agent.yaml:9: participants[0].match: "db-1" is not an IP address or CIDR`},
		{"participant duplicate match", head + "participants:\n  - {match: 10.10.0.7, type: node, id: a}\n  - {match: 10.10.0.7/32, type: user, id: b}\n", `agent.yaml:10: participants[1].match: 10.10.0.7/32 is already matched by participants[0]`},
		{"participant unknown key", head + "participants:\n  - match: 10.10.0.7\n    type: node\n    id: x\n    network: mesh1\n", `agent.yaml:12: participants[0].network: unknown field (want one of match, type, id, name)`},
		{"drop unknown key", head + "drop:\n  hosts: [a]\n", `agent.yaml:9: drop.hosts: unknown field (want one of presets, protocols, ports, cidrs)`},
		{"drop unknown preset", head + "drop:\n  presets: [dns, ntp]\n", `agent.yaml:9: drop.presets[1]: unknown preset "ntp"; want dns or icmp`},
		{"drop bad protocol name", head + "drop:\n  protocols: [tcp, quic]\n", `agent.yaml:9: drop.protocols[1]: unknown protocol "quic": want a number 0-255 or one of icmp, tcp, udp, gre, esp, ah, icmpv6, sctp`},
		{"drop protocol out of range", head + "drop:\n  protocols: [256]\n", `agent.yaml:9: drop.protocols[0]: unknown protocol "256": want a number 0-255 or one of icmp, tcp, udp, gre, esp, ah, icmpv6, sctp`},
		{"drop port out of range", head + "drop:\n  ports: [53, 70000]\n", `agent.yaml:9: drop.ports[1]: "70000" is not a port (1..65535)`},
		{"drop port zero", head + "drop:\n  ports: [0]\n", `agent.yaml:9: drop.ports[0]: "0" is not a port (1..65535)`},
		{"drop bad cidr", head + "drop:\n  cidrs:\n    - 10.10.99.0/24\n    - 10.10.99.0/40\n", `agent.yaml:11: drop.cidrs[1]: "10.10.99.0/40" is not a CIDR`},
		{"drop a list", head + "drop: [dns]\n", `agent.yaml:8: drop: it must be a mapping with keys presets, protocols, ports, cidrs, not a list`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("agent.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error; parsed %+v", c)
			}
			if err.Error() != tc.want {
				t.Fatalf("error\n got: %s\nwant: %s", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "agent.yaml" {
				t.Fatalf("not an *Error naming the file: %#v", err)
			}
		})
	}
}

// All problems are reported, not just the first.
func TestParseSeveralErrors(t *testing.T) {
	_, err := Parse("agent.yaml", []byte("host: {id: h}\nnetworks: [{id: m, addresses: [x], cidrs: [10.0.0.0/8]}]\nbogus: 1\n"))
	want := "agent.yaml:3: bogus: unknown field (want one of host, networks, participants, drop)\n" +
		"agent.yaml:1: host.name: must be set\n" +
		`agent.yaml:2: networks[0].addresses[0]: "x" is not an IP address`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}
