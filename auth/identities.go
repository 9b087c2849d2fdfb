// Package auth authenticates agents on the collector's gRPC listener and
// binds each authenticated agent to the host (and networks) it may report
// for (DESIGN.md pitfall 6: upstream trusts a self-reported host_id).
//
// An agent proves who it is with a client certificate verified against
// --tls-client-ca (mutual TLS) or with a bearer token in the gRPC metadata
// (`authorization: Bearer <token>`). The identities file maps either to a
// host_id and the networks that host may report for:
//
//	identities:
//	  - host_id: 7f1c0e2a            # the host this identity may report as
//	    networks: [mesh1, mesh2]     # networks it may report for; absent, [] or "*" = any
//	    cert_cn: web-1.mesh          # a client certificate whose subject CN is this...
//	    cert_san: [web-1.mesh]       # ...or which has one of these DNS SANs
//	    token_sha256: "9f86d0..."    # or a bearer token, stored as its SHA-256 (hex)
//
// The file is read strictly (unknown keys are errors) and reloaded when it
// changes (Watch); an invalid edit is logged and the previous identities stay.
package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxIDLen is ingest's limit on ids: a longer host_id could never match.
const maxIDLen = 256

// Identity is one entry of the identities file.
type Identity struct {
	HostID   string
	Networks []string // nil: any network
	CertCN   string   // subject common name of a client certificate; "" = not matched by CN
	CertSANs []string // DNS SANs of a client certificate
	Index    int      // position in the file (identities[Index]), for messages

	token    [sha256.Size]byte // SHA-256 of the bearer token
	hasToken bool
}

// AllowsNetwork reports whether the identity may report events of network n.
func (id *Identity) AllowsNetwork(n string) bool {
	if id.Networks == nil {
		return true
	}
	for _, m := range id.Networks {
		if m == n {
			return true
		}
	}
	return false
}

// String names the identity in logs and messages.
func (id *Identity) String() string {
	return fmt.Sprintf("host %q (identities[%d])", id.HostID, id.Index)
}

// Set is a parsed, valid identities file.
type Set struct {
	File       string
	Identities []*Identity
}

// HashToken is what token_sha256 holds for token: its SHA-256 in hex, the
// same as `printf %s "$TOKEN" | sha256sum`.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ByToken finds the identity of a bearer token. Every identity's hash is
// compared in constant time, so the answer's timing says nothing about which
// hash (or how much of one) matched.
func (s *Set) ByToken(token string) (*Identity, bool) {
	h := sha256.Sum256([]byte(token))
	var found *Identity
	for _, id := range s.Identities {
		if id.hasToken && subtle.ConstantTimeCompare(h[:], id.token[:]) == 1 {
			found = id
		}
	}
	return found, found != nil
}

// ByCert finds the identity of a (verified) client certificate: the entry
// whose cert_cn is the subject's common name or one of whose cert_san is
// among the certificate's DNS names. A certificate matching no entry, or
// several, is an error saying so.
func (s *Set) ByCert(cert *x509.Certificate) (*Identity, error) {
	var found []*Identity
	for _, id := range s.Identities {
		if id.matchesCert(cert) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("certificate %s not in identities file %s", describeCert(cert), s.File)
	default:
		return nil, fmt.Errorf("certificate %s matches more than one identity (%s and %s): make the identities file unambiguous", describeCert(cert), found[0], found[1])
	}
}

func (id *Identity) matchesCert(cert *x509.Certificate) bool {
	if id.CertCN != "" && cert.Subject.CommonName == id.CertCN {
		return true
	}
	for _, want := range id.CertSANs {
		for _, have := range cert.DNSNames {
			if strings.EqualFold(want, have) {
				return true
			}
		}
	}
	return false
}

// describeCert names a certificate by CN and DNS SANs.
func describeCert(cert *x509.Certificate) string {
	s := fmt.Sprintf("CN %q", cert.Subject.CommonName)
	if len(cert.DNSNames) > 0 {
		s += fmt.Sprintf(" (DNS SANs %s)", strings.Join(cert.DNSNames, ", "))
	}
	return s
}

// Load reads and parses the identities file at path.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identities: %w", err)
	}
	return Parse(path, data)
}

// file is the YAML shape of the identities file.
type file struct {
	Identities []entry `yaml:"identities"`
}

type entry struct {
	HostID      string    `yaml:"host_id"`
	Networks    anyOrList `yaml:"networks"`
	CertCN      string    `yaml:"cert_cn"`
	CertSAN     list      `yaml:"cert_san"`
	TokenSHA256 string    `yaml:"token_sha256"`
}

// list is a YAML sequence of strings, or a single string.
type list []string

func (l *list) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
		*l = list{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(list, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				return fmt.Errorf("line %d: want a string", c.Line)
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// anyOrList is a network list where "*" (alone, or as the only item), an
// empty list or no value at all mean any network (nil).
type anyOrList struct {
	names []string
	star  bool
	set   bool
}

func (a *anyOrList) UnmarshalYAML(n *yaml.Node) error {
	var l list
	if err := l.UnmarshalYAML(n); err != nil {
		return err
	}
	a.set = true
	for _, s := range l {
		if s == "*" {
			a.star = true
		} else {
			a.names = append(a.names, s)
		}
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse parses and validates an identities file; name is used in messages.
// All problems found are returned, joined, each as "name:line: message".
func Parse(name string, data []byte) (*Set, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: empty identities file (want `identities:` and a list; `identities: []` admits nobody)", name)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, yamlError(name, err)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document", name)
	}
	// A second pass, as a node tree, only to know each entry's line.
	var doc yaml.Node
	_ = yaml.Unmarshal(data, &doc)
	lines := entryLines(&doc)
	if f.Identities == nil && !hasIdentitiesKey(&doc) {
		return nil, fmt.Errorf("%s: no `identities:` list", name)
	}

	var errs []error
	errorf := func(i int, format string, args ...any) {
		line := ""
		if i < len(lines) {
			line = ":" + strconv.Itoa(lines[i])
		}
		errs = append(errs, fmt.Errorf("%s%s: identities[%d]: %s", name, line, i, fmt.Sprintf(format, args...)))
	}
	s := &Set{File: name}
	tokens := map[[sha256.Size]byte]int{}
	certNames := map[string]int{} // cert_cn and cert_san values, lower case -> entry
	for i, e := range f.Identities {
		id := &Identity{HostID: e.HostID, CertCN: e.CertCN, Index: i}
		switch {
		case e.HostID == "":
			errorf(i, "host_id is missing")
		case len(e.HostID) > maxIDLen:
			errorf(i, "host_id is %d bytes, longer than %d", len(e.HostID), maxIDLen)
		}
		if e.Networks.star && len(e.Networks.names) > 0 {
			errorf(i, `networks: "*" (any network) cannot be combined with names`)
		}
		if !e.Networks.star && len(e.Networks.names) > 0 {
			seen := map[string]bool{}
			for _, n := range e.Networks.names {
				if n == "" {
					errorf(i, "networks: empty network id")
				} else if seen[n] {
					errorf(i, "networks: %q listed twice", n)
				}
				seen[n] = true
			}
			id.Networks = e.Networks.names
		}
		for _, san := range e.CertSAN {
			if san == "" {
				errorf(i, "cert_san: empty name")
				continue
			}
			id.CertSANs = append(id.CertSANs, san)
		}
		names := map[string]bool{}
		for _, n := range append([]string{e.CertCN}, id.CertSANs...) {
			k := strings.ToLower(n)
			if n == "" || names[k] {
				continue
			}
			names[k] = true
			if j, dup := certNames[k]; dup {
				errorf(i, "certificate name %q is already used by identities[%d]: a certificate must map to one identity", n, j)
				continue
			}
			certNames[k] = i
		}
		if e.TokenSHA256 != "" {
			b, err := hex.DecodeString(e.TokenSHA256)
			if err != nil || len(b) != sha256.Size {
				errorf(i, "token_sha256 must be 64 hex digits (printf %%s \"$TOKEN\" | sha256sum), got %q", e.TokenSHA256)
			} else {
				copy(id.token[:], b)
				id.hasToken = true
				if j, dup := tokens[id.token]; dup {
					errorf(i, "token_sha256 is the same as identities[%d]'s: a token must map to one identity", j)
				}
				tokens[id.token] = i
			}
		}
		if e.CertCN == "" && len(e.CertSAN) == 0 && e.TokenSHA256 == "" {
			errorf(i, "no credential: give cert_cn, cert_san or token_sha256")
		}
		s.Identities = append(s.Identities, id)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

var (
	unknownField = regexp.MustCompile(`field (\S+) not found in type (\S+)`)
	wrongType    = regexp.MustCompile("cannot unmarshal !!(\\w+) (`[^`]*` )?into (\\S+)")
	typeNames    = map[string]string{"string": "a string", "[]auth.entry": "a list of identities", "auth.file": "a mapping with `identities:`", "auth.entry": "a mapping (host_id, networks, cert_cn, cert_san, token_sha256)"}
)

// yamlError turns the YAML decoder's errors into "name:line: message" in the
// file's own terms.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			if sm := unknownField.FindStringSubmatch(m); sm != nil {
				want := "identities"
				if sm[2] == "auth.entry" {
					want = "host_id, networks, cert_cn, cert_san, token_sha256"
				}
				m = strings.Replace(m, sm[0], "unknown key "+sm[1]+" (want "+want+")", 1)
			}
			if sm := wrongType.FindStringSubmatch(m); sm != nil {
				want, ok := typeNames[sm[3]]
				if !ok {
					want = sm[3]
				}
				m = strings.Replace(m, sm[0], "want "+want+", got !!"+sm[1]+" "+strings.TrimSpace(sm[2]), 1)
				m = strings.TrimSpace(m)
			}
			msgs[i] = name + ":" + strings.TrimPrefix(m, "line ")
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s", name, m[1], m[2])
	}
	return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
}

// identitiesValue finds the `identities` sequence in a parsed document.
func identitiesValue(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "identities" {
			return doc.Content[i+1]
		}
	}
	return nil
}

func hasIdentitiesKey(doc *yaml.Node) bool { return identitiesValue(doc) != nil }

func entryLines(doc *yaml.Node) []int {
	v := identitiesValue(doc)
	if v == nil || v.Kind != yaml.SequenceNode {
		return nil
	}
	lines := make([]int, len(v.Content))
	for i, c := range v.Content {
		lines[i] = c.Line
	}
	return lines
}
