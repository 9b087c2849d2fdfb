package e2e

// Authenticated agents through the binary: `flowlog serve` with mutual TLS,
// bearer tokens and an identities file, real gRPC clients, the HTTP API.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	"github.com/flowlog/flowlog/internal/testutil"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// tokenCreds sends `authorization: Bearer <token>` with every call.
type tokenCreds string

func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(c)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return true }

// dialTLS connects to the collector over TLS, presenting cert (if not nil,
// whatever CAs the server asks for) and token (if not empty).
func dialTLS(t *testing.T, p *testCerts, addr string, cert *authtest.Cert, token string) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		c := cert.TLS()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(token)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// roundTrip sends one envelope on a new stream and returns its ack or the
// error that ended the stream.
func roundTrip(cc *grpc.ClientConn, evs []*pb.FlowEvent) (*pb.FlowResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := pb.NewFlowServiceClient(cc).StreamFlows(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Send(&pb.FlowEnvelope{Events: evs}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return s.Recv()
}

// hostFlows are n valid START events of host in network.
func hostFlows(prefix, host, network string, n int) []*pb.FlowEvent {
	now := time.Now().Add(-time.Minute).UnixMilli()
	evs := make([]*pb.FlowEvent, n)
	for i := range evs {
		evs[i] = &pb.FlowEvent{
			Type: pb.EventType_EVENT_START, FlowId: fmt.Sprintf("%s-%d", prefix, i), HostId: host, NetworkId: network,
			Protocol: 6, SrcPort: uint32(40000 + i), DstPort: 443, Direction: pb.Direction_DIR_EGRESS,
			Src:       &pb.FlowParticipant{Ip: "10.9.0.1", Type: pb.ParticipantType_PARTICIPANT_NODE},
			Dst:       &pb.FlowParticipant{Ip: "10.9.0.2", Type: pb.ParticipantType_PARTICIPANT_NODE},
			StartTsMs: now + int64(i), Version: 1,
		}
	}
	return evs
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Mutual TLS: a listed certificate reports for its host and networks; other
// hosts and networks are rejected with the reason; an unlisted certificate
// is refused (and accepted once the identities file lists it); untrusted and
// expired certificates fail the handshake.
func TestAuthMutualTLSThroughTheBinary(t *testing.T) {
	p := newTestCerts(t, t.TempDir())
	ids := filepath.Join(t.TempDir(), "identities.yaml")
	writeFile(t, ids, "identities:\n  - host_id: web-1\n    networks: [mesh1]\n    cert_cn: web-1.mesh\n")
	c := serve(t, t.TempDir(), "--tls-cert", p.certFile, "--tls-key", p.keyFile, "--tls-client-ca", p.caFile, "--identities", ids)

	web := p.client("web-1.mesh")
	evs := hostFlows("web", "web-1", "mesh1", 4)
	evs[1].HostId = "db-1"
	evs[2].NetworkId = "mesh9"
	r, err := roundTrip(dialTLS(t, p, c.grpc, &web, ""), evs)
	want := `rejected 2 of 4 events: [1] host_id "db-1" is not this agent's identity (authenticated as "web-1"); [2] network_id "mesh9" not allowed for host "web-1"`
	if err != nil || !r.Success || r.Error != want {
		t.Fatalf("web-1: got %+v %v, want success with %q", r, err, want)
	}
	if rows := all(t, c.http, "network_id=mesh1"); len(rows) != 2 || rows[0].HostID != "web-1" || rows[1].HostID != "web-1" {
		t.Fatalf("want web-1's 2 valid flows stored, got %+v", rows)
	}
	if rows := all(t, c.http, "network_id=mesh9"); len(rows) != 0 {
		t.Fatalf("the disallowed network's flow was stored: %+v", rows)
	}

	stranger := p.client("stranger.mesh")
	strangerConn := dialTLS(t, p, c.grpc, &stranger, "")
	_, err = roundTrip(strangerConn, hostFlows("s1", "stranger", "mesh1", 1))
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), `certificate CN "stranger.mesh" not in identities file`) {
		t.Fatalf("unlisted certificate: want Unauthenticated naming its CN, got %v", err)
	}
	for name, cert := range map[string]authtest.Cert{"untrusted CA": p.untrustedClient("web-1.mesh"), "expired": p.expiredClient("web-1.mesh")} {
		if _, err := roundTrip(dialTLS(t, p, c.grpc, &cert, ""), hostFlows("x", "web-1", "mesh1", 1)); status.Code(err) != codes.Unavailable {
			t.Fatalf("%s certificate: want the handshake to fail (Unavailable), got %v", name, err)
		}
	}
	if _, err := roundTrip(dialTLS(t, p, c.grpc, nil, ""), hostFlows("x", "web-1", "mesh1", 1)); status.Code(err) != codes.Unavailable {
		t.Fatalf("no client certificate: want the handshake to fail (Unavailable), got %v", err)
	}

	// The file is reloaded: listing the stranger lets its next stream in.
	writeFile(t, ids, "identities:\n  - {host_id: web-1, networks: [mesh1], cert_cn: web-1.mesh}\n  - {host_id: stranger, cert_san: [stranger.mesh], cert_cn: stranger.mesh}\n")
	testutil.Eventually(15*time.Second, func() bool {
		r, err = roundTrip(strangerConn, hostFlows("s2", "stranger", "mesh1", 1))
		return err == nil
	})
	if err != nil || !r.Success || r.Error != "" {
		t.Fatalf("after listing the stranger: %+v %v", r, err)
	}
	c.stop(t)
}

// Bearer tokens over server-only TLS.
func TestAuthTokenOverTLSThroughTheBinary(t *testing.T) {
	p := newTestCerts(t, t.TempDir())
	ids := filepath.Join(t.TempDir(), "identities.yaml")
	writeFile(t, ids, fmt.Sprintf("identities:\n  - {host_id: db-1, networks: '*', token_sha256: %s}\n", auth.HashToken("db-1-secret")))
	c := serve(t, t.TempDir(), "--tls-cert", p.certFile, "--tls-key", p.keyFile, "--identities", ids)

	r, err := roundTrip(dialTLS(t, p, c.grpc, nil, "db-1-secret"), hostFlows("db", "db-1", "mesh2", 3))
	if err != nil || !r.Success || r.Error != "" {
		t.Fatalf("good token: %+v %v", r, err)
	}
	_, err = roundTrip(dialTLS(t, p, c.grpc, nil, "guess"), hostFlows("g", "db-1", "mesh2", 1))
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "unknown bearer token") {
		t.Fatalf("unknown token: want Unauthenticated, got %v", err)
	}
	_, err = roundTrip(dialTLS(t, p, c.grpc, nil, ""), hostFlows("n", "db-1", "mesh2", 1))
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "no client certificate or bearer token") {
		t.Fatalf("no token: want Unauthenticated, got %v", err)
	}
	if rows := all(t, c.http, "network_id=mesh2"); len(rows) != 3 {
		t.Fatalf("want the 3 authenticated flows, got %d", len(rows))
	}
}

// The agent's --token over TLS: its flows arrive, bound to its host.
func TestAuthAgentTokenOverTLS(t *testing.T) {
	m := newMesh(t)
	p := newTestCerts(t, t.TempDir())
	ids := filepath.Join(t.TempDir(), "identities.yaml")
	writeFile(t, ids, fmt.Sprintf("identities:\n  - {host_id: host-a, networks: [mesh1], token_sha256: %s}\n", auth.HashToken("agent-a-token")))
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "agent-a-token\n")
	c := serve(t, t.TempDir(), "--tls-cert", p.certFile, "--tls-key", p.keyFile, "--identities", ids)
	a := startAgent(t, m, c.grpc, t.TempDir(), "--tls-ca", p.caFile, "--token-file", tokenFile)
	tcpExchange(t, m.a, m.b, m.bIP, 9310, 1000, 1000)
	if flows := finishedFlows(t, m, c.http, 1, 60*time.Second); len(flows) != 1 || flows[0].DstPort != 9310 {
		t.Fatalf("with a token: %+v\nagent log:\n%s", flows, a.log())
	}
	a.stop(t)
}

// Plaintext or unauthenticated agents beyond loopback, and inconsistent
// TLS flags, are refused at start with the flag to use.
func TestAuthFlagsAreExplicit(t *testing.T) {
	needBinary(t)
	bad := filepath.Join(t.TempDir(), "identities.yaml")
	writeFile(t, bad, "identities:\n  - host_id: a\n    token_sha256: nothex\n")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--grpc-addr", "0.0.0.0:0"}, "without TLS needs --grpc-plaintext"},
		{[]string{"--grpc-addr", ":0", "--grpc-plaintext"}, "give --identities FILE"},
		{[]string{"--tls-client-ca", "ca.pem"}, "--tls-client-ca needs --tls-cert"},
		{[]string{"--grpc-plaintext", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "contradict"},
		{[]string{"--identities", bad}, bad + ":2: identities[0]: token_sha256 must be 64 hex digits"},
	}
	for _, tc := range cases {
		cmd := exec.Command(binary, append([]string{"serve", "--data", t.TempDir(), "--http-addr", "127.0.0.1:0"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("serve %v: want failure mentioning %q, got %v:\n%s", tc.args, tc.want, err, out)
		}
	}
	// The agent: one token source.
	out, err := exec.Command(binary, "agent", "--config", bad, "--plaintext", "--token", "a", "--token-file", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--token and --token-file: give one") {
		t.Errorf("agent with two token sources: %v\n%s", err, out)
	}
}
