package auth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
)

// ServerTLS is the collector's TLS configuration: its certificate and, with
// clientCA, mutual TLS (every client must present a certificate that
// clientCA signed and that is valid now; otherwise the handshake fails).
func ServerTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s: no PEM certificate in it", clientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// IsLoopback reports whether a listener's address is a loopback address
// (127.0.0.0/8 or ::1). A wildcard address (0.0.0.0, ::) is not.
func IsLoopback(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// KnownNotLoopback reports whether a listen address ("host:port") is
// certainly not loopback before listening: an empty host (all interfaces)
// or an IP literal outside loopback. Names are decided after listening.
func KnownNotLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && !ip.Unmap().IsLoopback()
}

// ListenerPolicy is how the collector's gRPC listener is configured.
type ListenerPolicy struct {
	TLS                  bool // --tls-cert
	Plaintext            bool // --grpc-plaintext
	Identities           bool // --identities
	AllowUnauthenticated bool // --allow-unauthenticated
}

// Check refuses to serve agents on a non-loopback address without TLS
// (unless Plaintext) or without identities (unless AllowUnauthenticated):
// on loopback only local processes can connect, which is how `make run` and
// the tests work; anywhere else both are explicit choices.
func (p ListenerPolicy) Check(addr string, loopback bool) error {
	if p.Plaintext && p.TLS {
		return fmt.Errorf("--grpc-plaintext and --tls-cert contradict each other: choose one")
	}
	if loopback {
		return nil
	}
	if !p.TLS && !p.Plaintext {
		return fmt.Errorf("--grpc-addr %s is not a loopback address: serving agents there without TLS needs --grpc-plaintext (or give --tls-cert/--tls-key)", addr)
	}
	if !p.Identities && !p.AllowUnauthenticated {
		return fmt.Errorf("--grpc-addr %s is not a loopback address: agents there would be unauthenticated and could report as any host; give --identities FILE (agents authenticate with a client certificate, --tls-client-ca, or a bearer token), or --allow-unauthenticated", addr)
	}
	return nil
}

// HTTPPolicy is how the collector's HTTP listener (API, page, metrics) is
// configured.
type HTTPPolicy struct {
	Readers        bool // --readers
	AllowAnonymous bool // --http-allow-anonymous
}

// Check refuses to serve the HTTP API without a readers file on a
// non-loopback address unless AllowAnonymous says so: on loopback only local
// processes can connect, which is how `make run` and the tests work;
// anywhere else an open API is an explicit choice.
func (p HTTPPolicy) Check(addr string, loopback bool) error {
	if p.Readers && p.AllowAnonymous {
		return fmt.Errorf("--readers and --http-allow-anonymous contradict each other: with a readers file every API request needs a reader's token")
	}
	if loopback || p.Readers || p.AllowAnonymous {
		return nil
	}
	return fmt.Errorf("--http-addr %s is not a loopback address: the HTTP API there would show every flow to anyone who connects; give --readers FILE (bearer tokens, each scoped to networks), or --http-allow-anonymous", addr)
}
