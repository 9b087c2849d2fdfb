// Package auth authenticates agents on the collector's gRPC listener and
// binds each authenticated agent to the host (and networks) it may report
// for (docs/design.md pitfall 6: upstream trusts a self-reported host_id).
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
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
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
	return allowsNetwork(id.Networks, n)
}

// Same reports whether o grants what id grants: the same host and networks
// (a reload that keeps an identity as it was must not end its streams).
func (id *Identity) Same(o *Identity) bool {
	return id.HostID == o.HostID && (id.Networks == nil) == (o.Networks == nil) && slices.Equal(id.Networks, o.Networks)
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

var identitiesFile = listFile{
	key:       "identities",
	emptyHint: "want `identities:` and a list; `identities: []` admits nobody",
	entryType: "auth.entry",
	entryKeys: "host_id, networks, cert_cn, cert_san, token_sha256",
	typeNames: map[string]string{"string": "a string", "[]auth.entry": "a list of identities",
		"auth.file": "a mapping with `identities:`", "auth.entry": "a mapping (host_id, networks, cert_cn, cert_san, token_sha256)"},
}

// Parse parses and validates an identities file; name is used in messages.
// All problems found are returned, joined, each as "name:line: message".
func Parse(name string, data []byte) (*Set, error) {
	var f file
	lines, err := identitiesFile.decode(name, data, &f)
	if err != nil {
		return nil, err
	}
	p := &problems{name: name, key: "identities", lines: lines}
	errorf := p.add
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
		id.Networks = e.Networks.check(func(format string, args ...any) { errorf(i, format, args...) })
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
			if h, err := tokenHash(e.TokenSHA256); err != nil {
				errorf(i, "%v", err)
			} else {
				id.token, id.hasToken = h, true
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
	if err := p.err(); err != nil {
		return nil, err
	}
	return s, nil
}
