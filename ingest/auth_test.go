package ingest_test

// Authenticated agents (docs/design.md pitfall 6) over real gRPC, real TLS and
// the real engine: bearer tokens, mutual TLS, the binding of an identity to
// its host and networks, and the identities file reloaded at runtime.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/flowlog/flowlog/auth"
	"github.com/flowlog/flowlog/auth/authtest"
	"github.com/flowlog/flowlog/ingest"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// pki is a collector's CA and the files of its server certificate.
type pki struct {
	ca                *authtest.CA // signs the server's and the agents' certificates
	untrusted         *authtest.CA // signs nothing the collector trusts
	dir               string
	certFile, keyFile string // the server's
	caFile            string // ca's certificate: the agents' --tls-ca and the collector's --tls-client-ca
	identitiesFile    string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca, err := authtest.NewCA("flowlog test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := authtest.NewCA("someone else's CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{ca: ca, untrusted: other, dir: t.TempDir()}
	srv, err := ca.Localhost()
	if err != nil {
		t.Fatal(err)
	}
	if p.certFile, p.keyFile, err = srv.Write(p.dir, "server"); err != nil {
		t.Fatal(err)
	}
	p.caFile = filepath.Join(p.dir, "ca.pem")
	if err := os.WriteFile(p.caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	p.identitiesFile = filepath.Join(p.dir, "identities.yaml")
	return p
}

func (p *pki) client(t *testing.T, ca *authtest.CA, l authtest.Leaf) tls.Certificate {
	t.Helper()
	c, err := ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	return c.TLS()
}

func (p *pki) writeIdentities(t *testing.T, yaml string) {
	t.Helper()
	tmp := p.identitiesFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.identitiesFile); err != nil {
		t.Fatal(err)
	}
}

// startAuth runs a collector with TLS (mutual if mtls), authenticating
// against the identities file.
func startAuth(t *testing.T, p *pki, mtls, allowUnauthenticated bool) (*collector, *auth.Authenticator) {
	t.Helper()
	set, err := auth.Load(p.identitiesFile)
	if err != nil {
		t.Fatal(err)
	}
	clientCA := ""
	if mtls {
		clientCA = p.caFile
	}
	cfg, err := auth.ServerTLS(p.certFile, p.keyFile, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	a := auth.New(set, allowUnauthenticated, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c := start(t, ingest.Options{FlushInterval: 20 * time.Millisecond, Auth: a}, grpc.Creds(credentials.NewTLS(cfg)))
	return c, a
}

// bearer is a per-RPC credential sending a token (what the agent does with
// --token).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// conn dials the collector over TLS, with a client certificate and/or a
// token when given.
func conn(t *testing.T, p *pki, addr string, cert *tls.Certificate, token string) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.GetClientCertificate = sendAnyway(cert)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// sendAnyway presents cert whatever CAs the server asks for (crypto/tls
// would otherwise send no certificate that the server's CAs did not sign).
func sendAnyway(cert *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
}

// exchange sends one envelope on a new stream and returns its ack, or the
// error that ended the stream first.
func exchange(cc *grpc.ClientConn, env *pb.FlowEnvelope) (*pb.FlowResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := pb.NewFlowServiceClient(cc).StreamFlows(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Send(env); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return s.Recv()
}

// hostEvents are n valid events of host h in network n.
func hostEvents(prefix, host, network string, n int) []*pb.FlowEvent {
	evs := events(prefix, n)
	for _, e := range evs {
		e.HostId, e.NetworkId = host, network
	}
	return evs
}

func wantOK(t *testing.T, what string, r *pb.FlowResponse, err error) {
	t.Helper()
	if err != nil || !r.Success || r.Error != "" {
		t.Fatalf("%s: want a clean success, got %+v %v", what, r, err)
	}
}

func wantCode(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("%s: want %v containing %q, got %v", what, code, msg, err)
	}
}

func TestTokenAuthentication(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: h1, networks: [n], token_sha256: %s}\n", auth.HashToken("good-token")))
	c, _ := startAuth(t, p, false, false)

	r, err := exchange(conn(t, p, c.addr, nil, "good-token"), &pb.FlowEnvelope{Events: hostEvents("tok", "h1", "n", 3)})
	wantOK(t, "good token", r, err)
	if n := count(t, c.st); n != 3 {
		t.Fatalf("want 3 flows stored, got %d", n)
	}

	_, err = exchange(conn(t, p, c.addr, nil, "bad-token"), &pb.FlowEnvelope{Events: hostEvents("bad", "h1", "n", 3)})
	wantCode(t, "unknown token", err, codes.Unauthenticated, "unknown bearer token")
	_, err = exchange(conn(t, p, c.addr, nil, ""), &pb.FlowEnvelope{Events: hostEvents("none", "h1", "n", 3)})
	wantCode(t, "no credential", err, codes.Unauthenticated, "no client certificate or bearer token")
	if n := count(t, c.st); n != 3 {
		t.Fatalf("refused streams stored flows: %d", n)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, "identities:\n  - {host_id: web-1, networks: [n], cert_cn: web-1.mesh}\n  - {host_id: db-1, cert_san: [db-1.mesh]}\n")
	c, _ := startAuth(t, p, true, false)

	web := p.client(t, p.ca, authtest.Leaf{CN: "web-1.mesh"})
	r, err := exchange(conn(t, p, c.addr, &web, ""), &pb.FlowEnvelope{Events: hostEvents("web", "web-1", "n", 2)})
	wantOK(t, "certificate by CN", r, err)
	db := p.client(t, p.ca, authtest.Leaf{CN: "whatever", DNSNames: []string{"db-1.mesh"}})
	r, err = exchange(conn(t, p, c.addr, &db, ""), &pb.FlowEnvelope{Events: hostEvents("db", "db-1", "any-network", 2)})
	wantOK(t, "certificate by DNS SAN", r, err)

	// A valid certificate of the trusted CA, but nobody in the file.
	stranger := p.client(t, p.ca, authtest.Leaf{CN: "stranger.mesh"})
	_, err = exchange(conn(t, p, c.addr, &stranger, ""), &pb.FlowEnvelope{Events: hostEvents("s", "web-1", "n", 1)})
	wantCode(t, "certificate not in the file", err, codes.Unauthenticated, `certificate CN "stranger.mesh" not in identities file`)

	// Refused by the TLS handshake: no certificate, an untrusted CA, expired.
	untrusted := p.client(t, p.untrusted, authtest.Leaf{CN: "web-1.mesh"})
	expired := p.client(t, p.ca, authtest.Leaf{CN: "web-1.mesh", NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Minute)})
	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		want string
	}{
		{"no client certificate", nil, "certificate required"},
		{"untrusted CA", &untrusted, "unknown certificate authority"},
		{"expired", &expired, "expired certificate"},
	} {
		_, err := exchange(conn(t, p, c.addr, tc.cert, ""), &pb.FlowEnvelope{Events: hostEvents("x", "web-1", "n", 1)})
		wantCode(t, tc.name, err, codes.Unavailable, "") // the message depends on when the alert arrives
		// The reason, as the TLS alert a client reads once its side of the
		// handshake is done (TLS 1.3: the server verifies afterwards).
		cfg := &tls.Config{RootCAs: p.ca.Pool(), NextProtos: []string{"h2"}}
		if tc.cert != nil {
			cfg.GetClientCertificate = sendAnyway(tc.cert)
		}
		raw, err := tls.Dial("tcp", c.addr, cfg)
		if err == nil {
			raw.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = raw.Read(make([]byte, 1))
			raw.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: want a TLS alert %q, got %v", tc.name, tc.want, err)
		}
	}
	if n := count(t, c.st); n != 4 {
		t.Fatalf("want only the 4 authenticated flows stored, got %d", n)
	}
}

// An authenticated agent reporting as another host, or for a network its
// identity does not allow, has those events rejected (and kept, with the
// reason); its valid events in the same envelope are stored.
func TestForgedHostAndNetworkAreRejected(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: h1, networks: [n1, n2], token_sha256: %s, cert_cn: h1.mesh}\n", auth.HashToken("t1")))
	c, _ := startAuth(t, p, true, false)
	cert := p.client(t, p.ca, authtest.Leaf{CN: "h1.mesh"})
	unlisted := p.client(t, p.ca, authtest.Leaf{CN: "unlisted.mesh"}) // passes the handshake, names nobody

	for _, via := range []struct {
		name  string
		cert  *tls.Certificate
		token string
	}{{"token", &unlisted, "t1"}, {"certificate", &cert, ""}} {
		cc := conn(t, p, c.addr, via.cert, via.token)
		evs := hostEvents(via.name, "h1", "n1", 5)
		evs[1].HostId = "h2"
		evs[3].NetworkId = "n3"
		evs[4].NetworkId = "n2"
		r, err := exchange(cc, &pb.FlowEnvelope{Events: evs})
		want := `rejected 2 of 5 events: [1] host_id "h2" is not this agent's identity (authenticated as "h1"); [3] network_id "n3" not allowed for host "h1"`
		if err != nil || !r.Success || r.Error != want {
			t.Fatalf("%s: got %+v %v, want success with %q", via.name, r, err, want)
		}
	}
	if n := count(t, c.st); n != 6 {
		t.Fatalf("want the 2x3 valid events stored, got %d", n)
	}
	var rej []struct {
		HostID string `json:"host_id"`
		Idx    int    `json:"idx"`
		Reason string `json:"reason"`
		Event  string `json:"event"`
	}
	if err := c.st.QueryRows(context.Background(), "SELECT host_id, idx, reason, event FROM "+c.st.Database()+".rejected_events FINAL ORDER BY idx", &rej); err != nil {
		t.Fatal(err)
	}
	if len(rej) != 4 || rej[0].HostID != "h2" || rej[0].Idx != 1 || !strings.Contains(rej[0].Reason, `authenticated as "h1"`) ||
		rej[3].Idx != 3 || rej[3].Reason != `network_id "n3" not allowed for host "h1"` || !strings.Contains(rej[3].Event, "n3") {
		t.Fatalf("rejected_events: %+v", rej)
	}
}

// A certificate and a token naming different hosts are refused.
func TestCertificateAndTokenMustAgree(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: a, cert_cn: a.mesh}\n  - {host_id: b, token_sha256: %s}\n", auth.HashToken("tb")))
	c, _ := startAuth(t, p, true, false)
	cert := p.client(t, p.ca, authtest.Leaf{CN: "a.mesh"})
	_, err := exchange(conn(t, p, c.addr, &cert, "tb"), &pb.FlowEnvelope{Events: hostEvents("x", "a", "n", 1)})
	wantCode(t, "cert a, token b", err, codes.Unauthenticated, `client certificate is host "a" (identities[0]) but bearer token is host "b" (identities[1])`)
}

// --allow-unauthenticated: agents without credentials report as today (any
// host); authenticated ones are still bound to their host.
func TestAllowUnauthenticated(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: h1, token_sha256: %s}\n", auth.HashToken("t1")))
	c, _ := startAuth(t, p, false, true)
	r, err := exchange(conn(t, p, c.addr, nil, ""), &pb.FlowEnvelope{Events: hostEvents("anon", "anyone", "n", 2)})
	wantOK(t, "no credential", r, err)
	r, err = exchange(conn(t, p, c.addr, nil, "t1"), &pb.FlowEnvelope{Events: hostEvents("h1", "anyone", "n", 1)})
	if err != nil || !r.Success || !strings.Contains(r.Error, `host_id "anyone" is not this agent's identity (authenticated as "h1")`) {
		t.Fatalf("authenticated stream: %+v %v", r, err)
	}
	_, err = exchange(conn(t, p, c.addr, nil, "wrong"), &pb.FlowEnvelope{Events: hostEvents("w", "anyone", "n", 1)})
	wantCode(t, "wrong token", err, codes.Unauthenticated, "unknown bearer token")
}

// Editing the identities file takes effect on the next stream: a new token
// is accepted, a removed one refused.
func TestIdentitiesReloadedAtRuntime(t *testing.T) {
	p := newPKI(t)
	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: h1, token_sha256: %s}\n", auth.HashToken("old")))
	c, a := startAuth(t, p, false, false)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- auth.Watch(ctx, p.identitiesFile, slog.New(slog.NewTextHandler(io.Discard, nil)), a.SetIdentities, func() { close(ready) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	<-ready

	oldConn, newConn := conn(t, p, c.addr, nil, "old"), conn(t, p, c.addr, nil, "new")
	r, err := exchange(oldConn, &pb.FlowEnvelope{Events: hostEvents("o1", "h1", "n", 1)})
	wantOK(t, "old token before the edit", r, err)
	_, err = exchange(newConn, &pb.FlowEnvelope{Events: hostEvents("n1", "h1", "n", 1)})
	wantCode(t, "new token before the edit", err, codes.Unauthenticated, "unknown bearer token")

	p.writeIdentities(t, fmt.Sprintf("identities:\n  - {host_id: h1, token_sha256: %s}\n", auth.HashToken("new")))
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err = exchange(newConn, &pb.FlowEnvelope{Events: hostEvents("n2", "h1", "n", 1)})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantOK(t, "new token after the edit", r, err)
	_, err = exchange(oldConn, &pb.FlowEnvelope{Events: hostEvents("o2", "h1", "n", 1)})
	wantCode(t, "removed token after the edit", err, codes.Unauthenticated, "unknown bearer token")

	// An invalid edit is ignored: the new token keeps working.
	p.writeIdentities(t, "identities:\n  - {host_id: h1}\n")
	time.Sleep(500 * time.Millisecond)
	r, err = exchange(newConn, &pb.FlowEnvelope{Events: hostEvents("n3", "h1", "n", 1)})
	wantOK(t, "after an invalid edit", r, err)
}
