package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowlog/flowlog/auth/authtest"
)

// testCerts is a throwaway PKI in a directory: a CA, the collector's
// certificate for 127.0.0.1/::1/localhost, client certificates on demand,
// and a second CA that the collector does not trust.
type testCerts struct {
	t                 *testing.T
	dir               string
	ca, untrusted     *authtest.CA
	caFile            string // the agents' --tls-ca and the collector's --tls-client-ca
	certFile, keyFile string // the collector's --tls-cert, --tls-key
}

func newTestCerts(t *testing.T, dir string) *testCerts {
	t.Helper()
	ca, err := authtest.NewCA("flowlog test CA")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := authtest.NewCA("untrusted test CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &testCerts{t: t, dir: dir, ca: ca, untrusted: untrusted, caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(p.caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Localhost()
	if err != nil {
		t.Fatal(err)
	}
	if p.certFile, p.keyFile, err = srv.Write(dir, "server"); err != nil {
		t.Fatal(err)
	}
	return p
}

// client issues a client certificate with subject CN cn (and DNS SANs) from
// the trusted CA.
func (p *testCerts) client(cn string, sans ...string) authtest.Cert {
	return p.issue(p.ca, authtest.Leaf{CN: cn, DNSNames: sans})
}

// untrustedClient is a client certificate from the CA the collector does
// not trust.
func (p *testCerts) untrustedClient(cn string) authtest.Cert {
	return p.issue(p.untrusted, authtest.Leaf{CN: cn})
}

// expiredClient is a trusted CA's client certificate that expired a minute ago.
func (p *testCerts) expiredClient(cn string) authtest.Cert {
	return p.issue(p.ca, authtest.Leaf{CN: cn, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Minute)})
}

func (p *testCerts) issue(ca *authtest.CA, l authtest.Leaf) authtest.Cert {
	p.t.Helper()
	c, err := ca.Issue(l)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// testPKI writes a CA and a server certificate for 127.0.0.1 into dir and
// returns their paths.
func testPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	p := newTestCerts(t, dir)
	return p.caFile, p.certFile, p.keyFile
}
