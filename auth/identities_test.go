package auth

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const example = `identities:
  - host_id: web-1
    networks: [mesh1, mesh2]
    cert_cn: web-1.mesh
    cert_san: [web-1.mesh, web-1.alt]
  - host_id: db-1
    networks: "*"
    token_sha256: "%s"
  - host_id: gw-1
    cert_san: gw-1.mesh
    networks: []
`

func exampleSet(t *testing.T) *Set {
	t.Helper()
	s, err := Parse("ids.yaml", []byte(strings.Replace(example, "%s", HashToken("s3cret"), 1)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cert(cn string, sans ...string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: sans}
}

func TestParseAndMatch(t *testing.T) {
	s := exampleSet(t)
	if len(s.Identities) != 3 {
		t.Fatalf("want 3 identities, got %d", len(s.Identities))
	}
	web, db, gw := s.Identities[0], s.Identities[1], s.Identities[2]
	if !web.AllowsNetwork("mesh2") || web.AllowsNetwork("mesh3") {
		t.Errorf("web-1 networks: %v", web.Networks)
	}
	if !db.AllowsNetwork("anything") || !gw.AllowsNetwork("anything") {
		t.Errorf(`"*" and [] must allow any network: %v %v`, db.Networks, gw.Networks)
	}

	if id, ok := s.ByToken("s3cret"); !ok || id != db {
		t.Errorf("token: got %v %v", id, ok)
	}
	for _, bad := range []string{"", "s3cre", "s3cret ", "S3cret"} {
		if id, ok := s.ByToken(bad); ok {
			t.Errorf("token %q matched %v", bad, id)
		}
	}

	for _, c := range []*x509.Certificate{cert("web-1.mesh"), cert("other", "web-1.alt"), cert("x", "WEB-1.MESH")} {
		if id, err := s.ByCert(c); err != nil || id != web {
			t.Errorf("cert %v %v: got %v %v", c.Subject.CommonName, c.DNSNames, id, err)
		}
	}
	if id, err := s.ByCert(cert("gw-1.mesh")); err == nil {
		t.Errorf("cert_san must not match the CN: got %v", id)
	}
	_, err := s.ByCert(cert("stranger", "a.example"))
	if err == nil || err.Error() != `certificate CN "stranger" (DNS SANs a.example) not in identities file ids.yaml` {
		t.Errorf("unknown cert: %v", err)
	}
	_, err = s.ByCert(cert("web-1.mesh", "gw-1.mesh"))
	if err == nil || !strings.Contains(err.Error(), "matches more than one identity") {
		t.Errorf("ambiguous cert: %v", err)
	}
}

func TestParseErrorsNameLineAndField(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "ids.yaml: empty identities file"},
		{"hosts: []\n", "ids.yaml:1: unknown key hosts"},
		{"identities:\n  - host_id: a\n    token: x\n", "ids.yaml:3: unknown key token"},
		{"identities:\n  - host_id: a\n    cert_cn: a\n  - cert_cn: b\n", "ids.yaml:4: identities[1]: host_id is missing"},
		{"identities:\n  - host_id: a\n", "ids.yaml:2: identities[0]: no credential"},
		{"identities:\n  - host_id: a\n    token_sha256: abc\n", "identities[0]: token_sha256 must be 64 hex digits"},
		{"identities:\n  - {host_id: a, token_sha256: " + HashToken("t") + "}\n  - {host_id: b, token_sha256: " + strings.ToUpper(HashToken("t")) + "}\n",
			"ids.yaml:3: identities[1]: token_sha256 is the same as identities[0]'s"},
		{"identities:\n  - {host_id: a, cert_cn: x}\n  - {host_id: b, cert_san: [X]}\n", `ids.yaml:3: identities[1]: certificate name "X" is already used by identities[0]`},
		{"identities:\n  - {host_id: a, cert_cn: x, networks: ['*', m]}\n", `networks: "*" (any network) cannot be combined`},
		{"identities:\n  - {host_id: a, cert_cn: x, networks: [m, m]}\n", `networks: "m" listed twice`},
		{"identities:\n  - {host_id: a, cert_cn: x, networks: {a: b}}\n", `ids.yaml:2: want a string or a list of strings`},
		{"identities: [\n", "ids.yaml:"},
		{"identities: []\n---\nidentities: []\n", "more than one YAML document"},
	}
	for _, tc := range cases {
		_, err := Parse("ids.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): want error containing %q, got %v", tc.in, tc.want, err)
		}
	}
	// Explicitly nobody is valid (and admits nobody).
	if s, err := Parse("ids.yaml", []byte("identities: []\n")); err != nil || len(s.Identities) != 0 {
		t.Errorf("identities: []: %v %v", s, err)
	}
}

func TestAuthenticateToken(t *testing.T) {
	a := New(exampleSet(t), false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := func(v ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(v...))
	}
	id, m, err := a.Authenticate(ctx("authorization", "Bearer s3cret"))
	if err != nil || id.HostID != "db-1" || m != MethodToken {
		t.Fatalf("good token: %v %v %v", id, m, err)
	}
	for _, tc := range []struct {
		ctx  context.Context
		want string
	}{
		{ctx("authorization", "Bearer nope"), "unknown bearer token"},
		{ctx("authorization", "Basic s3cret"), "not `Bearer <token>`"},
		{ctx("authorization", "Bearer a", "authorization", "Bearer b"), "2 authorization metadata values"},
		{context.Background(), "no client certificate or bearer token"},
	} {
		_, _, err := a.Authenticate(tc.ctx)
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want Unauthenticated %q, got %v", tc.want, err)
		}
	}

	// --allow-unauthenticated: no credential passes without identity; a
	// wrong token is still refused.
	a = New(exampleSet(t), true, nil)
	if id, _, err := a.Authenticate(context.Background()); err != nil || id != nil {
		t.Errorf("allow-unauthenticated, no credential: %v %v", id, err)
	}
	if _, _, err := a.Authenticate(ctx("authorization", "Bearer nope")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("allow-unauthenticated, wrong token: %v", err)
	}
	// No identities: everything passes, tokens are not looked at.
	a = New(nil, false, nil)
	if id, _, err := a.Authenticate(ctx("authorization", "Bearer nope")); err != nil || id != nil {
		t.Errorf("no identities: %v %v", id, err)
	}
}

// The watch applies valid edits, ignores invalid ones and survives an
// editor's rename-over-the-original.
func TestWatchReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ids.yaml")
	write := func(s string) {
		t.Helper()
		tmp := filepath.Join(dir, ".ids.tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("identities:\n  - {host_id: a, token_sha256: " + HashToken("one") + "}\n")
	got := make(chan *Set, 10)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, path, slog.New(slog.NewTextHandler(io.Discard, nil)), func(s *Set) { got <- s }, func() { close(ready) })
	}()
	<-ready
	next := func() *Set {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no reload within 5s")
			return nil
		}
	}
	write("identities:\n  - {host_id: b, token_sha256: " + HashToken("two") + "}\n")
	if s := next(); len(s.Identities) != 1 || s.Identities[0].HostID != "b" {
		t.Fatalf("first reload: %+v", s.Identities)
	}
	write("identities:\n  - {host_id: c}\n") // invalid: no credential
	select {
	case s := <-got:
		t.Fatalf("invalid file applied: %+v", s.Identities)
	case <-time.After(500 * time.Millisecond):
	}
	// Rewritten in place (not renamed).
	if err := os.WriteFile(path, []byte("identities:\n  - {host_id: d, cert_cn: d}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := next(); s.Identities[0].HostID != "d" {
		t.Fatalf("second reload: %+v", s.Identities)
	}
	// Deleted: no identities, as an empty file, not the last version.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if s := next(); len(s.Identities) != 0 {
		t.Fatalf("deleted file: %+v, want no identities", s.Identities)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestListenerPolicy(t *testing.T) {
	for _, tc := range []struct {
		p        ListenerPolicy
		loopback bool
		want     string // "" = allowed
	}{
		{ListenerPolicy{}, true, ""},
		{ListenerPolicy{}, false, "without TLS needs --grpc-plaintext"},
		{ListenerPolicy{Plaintext: true}, false, "would be unauthenticated"},
		{ListenerPolicy{Plaintext: true, AllowUnauthenticated: true}, false, ""},
		{ListenerPolicy{TLS: true}, false, "would be unauthenticated"},
		{ListenerPolicy{TLS: true, Identities: true}, false, ""},
		{ListenerPolicy{TLS: true, Plaintext: true}, true, "contradict"},
	} {
		err := tc.p.Check("0.0.0.0:50051", tc.loopback)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v loopback=%v: want %q, got %v", tc.p, tc.loopback, tc.want, err)
		}
	}
	for addr, want := range map[string]bool{":50051": true, "0.0.0.0:1": true, "[::]:1": true, "10.0.0.1:1": true,
		"127.0.0.1:1": false, "127.3.2.1:1": false, "[::1]:1": false, "localhost:1": false, "collector.example:1": false} {
		if got := KnownNotLoopback(addr); got != want {
			t.Errorf("KnownNotLoopback(%q) = %v", addr, got)
		}
	}
}
