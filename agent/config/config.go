// Package config reads the agent's configuration file: who this host is, the
// mesh networks it belongs to, who the other endpoints are (participants),
// and which flows to drop.
//
// The file is YAML and read strictly: an unknown or repeated key is an
// error, and every error names the file, the line and the field path, e.g.
//
//	agent.yaml:9: networks[1].cidrs[0]: "10.0.0.0/33" is not a CIDR
//
// A parsed Config holds net/netip values; it is checked as a whole (unique
// network ids, host addresses inside their network, no ambiguous entries),
// so the enrichment table built from it (package enrich) never has to decide
// between two equally specific answers.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/flowlog/flowlog"
)

// Config is a parsed, valid agent configuration.
type Config struct {
	Host         Host
	Networks     []Network
	Participants []Participant
	Drop         Drop
}

// Host is the reporting host: host_id and host_name of every event.
type Host struct {
	ID   string
	Name string
}

// Network is one mesh network this host is a member of.
//
// Networks may overlap; where they do, the most specific CIDR decides which
// network an address belongs to (longest-prefix match across all networks),
// never the order in the file. The same CIDR in two networks is an error.
type Network struct {
	ID        string
	Addresses []netip.Addr   // the host's own addresses in this network
	CIDRs     []netip.Prefix // the network's ranges, canonical (no host bits)
}

// Participant names the endpoints inside Match. The most specific Match
// containing an address wins, whatever the order in the file.
type Participant struct {
	Match netip.Prefix // a single address is a /32 or /128
	Type  flowlog.ParticipantType
	ID    string
	Name  string
}

// Drop says which flows the agent does not report. Everything is off unless
// configured; a flow matching any one rule is dropped.
type Drop struct {
	// Presets are upstream Netmaker's default filters, by name:
	// PresetDNS (TCP or UDP, either port 53) and PresetICMP (protocols 1 and 58).
	Presets   []string
	Protocols []uint8        // IP protocol numbers
	Ports     []uint16       // either port (TCP, UDP, SCTP, ...; never ICMP)
	CIDRs     []netip.Prefix // either endpoint inside
}

// Preset names.
const (
	PresetDNS  = "dns"
	PresetICMP = "icmp"
)

// maxIDLen is the collector's limit on ids and names (ingest rejects longer).
const maxIDLen = 256

// Error is one problem in a config file.
type Error struct {
	File string // the name given to Parse (the path, for Load)
	Line int    // 1-based; 0 when there is no line (e.g. an empty file)
	Path string // the field, e.g. "networks[1].cidrs[0]"; empty for the document
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates a config; name is used in error messages. All
// problems found are returned (joined with errors.Join), each an *Error.
func Parse(name string, data []byte) (*Config, error) {
	p := &parser{file: name}
	c := p.parse(data)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return c, nil
}

type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) parse(data []byte) *Config {
	// The document is decoded into a node tree and walked against the schema
	// below, so that unknown keys (what Decoder.KnownFields(true) rejects),
	// duplicate keys and bad values all come back with a field path and line.
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(nil, "", "empty config")
			return nil
		}
		msg, line := err.Error(), 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: strings.TrimPrefix(msg, "yaml: ")})
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.errorf(&extra, "", "more than one YAML document")
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.errorf(nil, "", "empty config")
			return nil
		}
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		p.errorf(nil, "", "empty config")
		return nil
	}
	top, ok := p.mapping(root, "", "host", "networks", "participants", "drop")
	if !ok {
		return nil
	}
	c := &Config{}
	p.host(c, root, top)
	p.networks(c, root, top)
	p.participants(c, top["participants"])
	p.drop(c, top["drop"])
	return c
}

func (p *parser) host(c *Config, root *yaml.Node, top map[string]*yaml.Node) {
	n, ok := top["host"]
	if !ok || isNull(n) {
		p.errorf(orNode(n, root), "host", "must be set (host.id and host.name)")
		return
	}
	f, ok := p.mapping(n, "host", "id", "name")
	if !ok {
		return
	}
	c.Host.ID = p.requiredString(n, f, "host", "id")
	c.Host.Name = p.requiredString(n, f, "host", "name")
}

func (p *parser) networks(c *Config, root *yaml.Node, top map[string]*yaml.Node) {
	n, ok := top["networks"]
	if !ok || isNull(n) {
		p.errorf(orNode(n, root), "networks", "must list at least one network")
		return
	}
	items, ok := p.sequence(n, "networks")
	if !ok {
		return
	}
	if len(items) == 0 {
		p.errorf(n, "networks", "must list at least one network")
		return
	}
	ids := map[string]string{}         // network id -> path of its first use
	addrs := map[netip.Addr]string{}   // host address -> path of the network listing it
	cidrs := map[netip.Prefix]string{} // cidr -> path of the network listing it
	for i, item := range items {
		path := fmt.Sprintf("networks[%d]", i)
		f, ok := p.mapping(item, path, "id", "addresses", "cidrs")
		if !ok {
			continue
		}
		var nw Network
		nw.ID = p.requiredString(item, f, path, "id")
		if nw.ID != "" {
			if prev, dup := ids[nw.ID]; dup {
				p.errorf(f["id"], path+".id", "duplicate network id %q (also %s)", nw.ID, prev)
			} else {
				ids[nw.ID] = path
			}
		}
		errsBefore := len(p.errs)
		p.eachScalar(p.requiredList(item, f, path, "cidrs", "cidr"), path+".cidrs", func(v *yaml.Node, vp, s string) {
			pfx, err := parseCIDR(s)
			if err != nil {
				p.errorf(v, vp, "%s", err)
				return
			}
			if prev, dup := cidrs[pfx]; dup {
				p.errorf(v, vp, "%s is already a cidr of %s", pfx, prev)
				return
			}
			cidrs[pfx] = fmt.Sprintf("%s (%q)", path, nw.ID)
			nw.CIDRs = append(nw.CIDRs, pfx)
		})
		cidrsOK := len(p.errs) == errsBefore
		p.eachScalar(p.requiredList(item, f, path, "addresses", "address"), path+".addresses", func(v *yaml.Node, vp, s string) {
			a, err := parseAddr(s)
			if err != nil {
				p.errorf(v, vp, "%s", err)
				return
			}
			if prev, dup := addrs[a]; dup {
				p.errorf(v, vp, "%s is already an address of %s", a, prev)
				return
			}
			addrs[a] = fmt.Sprintf("%s (%q)", path, nw.ID)
			nw.Addresses = append(nw.Addresses, a)
			// (not checked when the cidrs themselves are wrong: one error is enough)
			if cidrsOK && !containedIn(a, nw.CIDRs) {
				p.errorf(v, vp, "%s is not inside any of the network's cidrs (%s)", a, joinPrefixes(nw.CIDRs))
			}
		})
		c.Networks = append(c.Networks, nw)
	}
}

func (p *parser) participants(c *Config, n *yaml.Node) {
	if n == nil || isNull(n) {
		return
	}
	items, ok := p.sequence(n, "participants")
	if !ok {
		return
	}
	seen := map[netip.Prefix]string{}
	for i, item := range items {
		path := fmt.Sprintf("participants[%d]", i)
		f, ok := p.mapping(item, path, "match", "type", "id", "name")
		if !ok {
			continue
		}
		var pt Participant
		valid := true
		if s := p.requiredString(item, f, path, "match"); s != "" {
			pfx, err := parseMatch(s)
			switch {
			case err != nil:
				p.errorf(f["match"], path+".match", "%s", err)
				valid = false
			default:
				if prev, dup := seen[pfx]; dup {
					p.errorf(f["match"], path+".match", "%s is already matched by %s", s, prev)
					valid = false
				} else {
					seen[pfx] = path
				}
				pt.Match = pfx
			}
		} else {
			valid = false
		}
		if s := p.requiredString(item, f, path, "type"); s != "" {
			t, ok := flowlog.ParseParticipantType(s)
			switch {
			case ok && t == flowlog.ParticipantExternal:
				p.errorf(f["type"], path+".type", "%q is implicit (anything unmatched is external); want node, user, extclient or egress_route", s)
				valid = false
			case !ok || t == flowlog.ParticipantUnspecified:
				p.errorf(f["type"], path+".type", "unknown type %q; want node, user, extclient or egress_route", s)
				valid = false
			default:
				pt.Type = t
			}
		} else {
			valid = false
		}
		pt.ID = p.requiredString(item, f, path, "id")
		pt.Name = p.optionalString(f, path, "name")
		if valid {
			c.Participants = append(c.Participants, pt)
		}
	}
}

func (p *parser) drop(c *Config, n *yaml.Node) {
	if n == nil || isNull(n) {
		return
	}
	f, ok := p.mapping(n, "drop", "presets", "protocols", "ports", "cidrs")
	if !ok {
		return
	}
	p.eachScalar(p.optionalList(f, "drop", "presets"), "drop.presets", func(v *yaml.Node, vp, s string) {
		if s != PresetDNS && s != PresetICMP {
			p.errorf(v, vp, "unknown preset %q; want dns or icmp", s)
			return
		}
		c.Drop.Presets = append(c.Drop.Presets, s)
	})
	p.eachScalar(p.optionalList(f, "drop", "protocols"), "drop.protocols", func(v *yaml.Node, vp, s string) {
		proto, err := flowlog.ParseProtocol(s)
		if err != nil {
			p.errorf(v, vp, "%v", err)
			return
		}
		c.Drop.Protocols = append(c.Drop.Protocols, proto)
	})
	p.eachScalar(p.optionalList(f, "drop", "ports"), "drop.ports", func(v *yaml.Node, vp, s string) {
		u, err := strconv.ParseUint(s, 10, 16)
		if err != nil || u == 0 {
			p.errorf(v, vp, "%q is not a port (1..65535)", s)
			return
		}
		c.Drop.Ports = append(c.Drop.Ports, uint16(u))
	})
	p.eachScalar(p.optionalList(f, "drop", "cidrs"), "drop.cidrs", func(v *yaml.Node, vp, s string) {
		pfx, err := parseMatch(s)
		if err != nil {
			p.errorf(v, vp, "%s", err)
			return
		}
		c.Drop.CIDRs = append(c.Drop.CIDRs, pfx)
	})
}

// ---- schema helpers ----

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if isNull(n) {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

// mapping checks that n is a mapping whose keys are all in known and appear
// once, and returns the values by key.
func (p *parser) mapping(n *yaml.Node, path string, known ...string) (map[string]*yaml.Node, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		what := "the document"
		if path != "" {
			what = "it"
		}
		p.errorf(n, path, "%s must be a mapping with keys %s, not %s", what, strings.Join(known, ", "), kindName(n))
		return nil, false
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, path, "keys must be plain names, not %s", kindName(k))
			continue
		}
		key := k.Value
		if !contains(known, key) {
			p.errorf(k, join(path, key), "unknown field (want one of %s)", strings.Join(known, ", "))
			continue
		}
		if l, dup := lines[key]; dup {
			p.errorf(k, join(path, key), "repeated field (first set at line %d)", l)
			continue
		}
		lines[key] = k.Line
		out[key] = v
	}
	return out, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) sequence(n *yaml.Node, path string) ([]*yaml.Node, bool) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "must be a list, not %s", kindName(n))
		return nil, false
	}
	return n.Content, true
}

// scalar returns the text of a single value (null and collections are errors).
func (p *parser) scalar(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, path, "must be a single value, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// eachScalar calls fn with each entry of items that is a single value, with
// its path (path[i]) and its text; the other entries are reported.
func (p *parser) eachScalar(items []*yaml.Node, path string, fn func(v *yaml.Node, vp, s string)) {
	for i, v := range items {
		vp := fmt.Sprintf("%s[%d]", path, i)
		if s, ok := p.scalar(v, vp); ok {
			fn(v, vp, s)
		}
	}
}

// requiredString returns f[key], reporting a missing or empty value (at the
// line of parent when missing) and one longer than the collector accepts.
func (p *parser) requiredString(parent *yaml.Node, f map[string]*yaml.Node, path, key string) string {
	v, ok := f[key]
	if !ok || isNull(v) || (deref(v).Kind == yaml.ScalarNode && strings.TrimSpace(deref(v).Value) == "") {
		p.errorf(orNode(v, parent), join(path, key), "must be set")
		return ""
	}
	return p.idString(v, join(path, key))
}

func (p *parser) optionalString(f map[string]*yaml.Node, path, key string) string {
	v, ok := f[key]
	if !ok || isNull(v) {
		return ""
	}
	return p.idString(v, join(path, key))
}

// idString returns the text of v, reporting one longer than the collector
// accepts.
func (p *parser) idString(v *yaml.Node, path string) string {
	s, ok := p.scalar(v, path)
	if !ok {
		return ""
	}
	if len(s) > maxIDLen {
		p.errorf(v, path, "is %d bytes, longer than %d (the collector rejects it)", len(s), maxIDLen)
		return ""
	}
	return s
}

func (p *parser) requiredList(parent *yaml.Node, f map[string]*yaml.Node, path, key, what string) []*yaml.Node {
	v, ok := f[key]
	if !ok || isNull(v) {
		p.errorf(orNode(v, parent), join(path, key), "must list at least one %s", what)
		return nil
	}
	items, ok := p.sequence(v, join(path, key))
	if ok && len(items) == 0 {
		p.errorf(v, join(path, key), "must list at least one %s", what)
	}
	return items
}

func (p *parser) optionalList(f map[string]*yaml.Node, path, key string) []*yaml.Node {
	v, ok := f[key]
	if !ok || isNull(v) {
		return nil
	}
	items, _ := p.sequence(v, join(path, key))
	return items
}

// ---- values ----

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has a zone; zones are not allowed", s)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write it as %s", s, a.Unmap())
	}
	return a, nil
}

func parseCIDR(s string) (netip.Prefix, error) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
	}
	if pfx.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix; write it in IPv4 form", s)
	}
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, m)
	}
	return pfx, nil
}

// parseMatch accepts a CIDR or a single address (as /32 or /128).
func parseMatch(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return parseCIDR(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	if a, err = parseAddr(s); err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func containedIn(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
