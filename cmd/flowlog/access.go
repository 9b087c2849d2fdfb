package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/auth"
)

// httpAccessFlags say who may use `flowlog serve`'s HTTP listener (the API,
// the page's data, /metrics) and whether it speaks TLS. Embedded in
// serveCmd.
type httpAccessFlags struct {
	Readers            string `help:"Readers file (YAML): the bearer tokens that may use the HTTP API, each with its networks and role (read, admin); reloaded when it changes. Without it the API is open: loopback only, unless --http-allow-anonymous." env:"FLOWLOG_READERS"`
	HTTPAllowAnonymous bool   `name:"http-allow-anonymous" help:"Serve the HTTP API without tokens (no --readers) on a non-loopback --http-addr." env:"FLOWLOG_HTTP_ALLOW_ANONYMOUS"`
	HTTPTLSCert        string `name:"http-tls-cert" help:"Certificate file for the HTTP listener (HTTPS); without it the API is plain HTTP." env:"FLOWLOG_HTTP_TLS_CERT"`
	HTTPTLSKey         string `name:"http-tls-key" help:"Key file of --http-tls-cert." env:"FLOWLOG_HTTP_TLS_KEY"`
}

func (f *httpAccessFlags) policy() auth.HTTPPolicy {
	return auth.HTTPPolicy{Readers: f.Readers != "", AllowAnonymous: f.HTTPAllowAnonymous}
}

// validate refuses what cannot work before anything starts; a listen
// address that is a name is checked again once listening (check).
func (f *httpAccessFlags) validate(httpAddr string) error {
	if (f.HTTPTLSCert == "") != (f.HTTPTLSKey == "") {
		return fmt.Errorf("--http-tls-cert and --http-tls-key go together")
	}
	if err := f.policy().Check(httpAddr, !auth.KnownNotLoopback(httpAddr)); err != nil {
		return err
	}
	if f.Readers != "" {
		// Read again when serving; read here so that a bad file stops
		// everything before it starts.
		if _, err := auth.LoadReaders(f.Readers); err != nil {
			return err
		}
	}
	return nil
}

// check applies the policy to the bound listener, and warns when tokens
// would cross the network in clear.
func (f *httpAccessFlags) check(addr string, loopback bool, log *slog.Logger) error {
	if err := f.policy().Check(addr, loopback); err != nil {
		return err
	}
	if !loopback && f.Readers != "" && f.HTTPTLSCert == "" {
		log.Warn("the HTTP API takes bearer tokens in plain HTTP on a non-loopback address: give --http-tls-cert/--http-tls-key (or terminate TLS in front of it)", "http", addr)
	}
	return nil
}

// tlsConfig is the HTTP listener's TLS configuration (nil: plain HTTP).
func (f *httpAccessFlags) tlsConfig() (*tls.Config, error) {
	if f.HTTPTLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.HTTPTLSCert, f.HTTPTLSKey)
	if err != nil {
		return nil, fmt.Errorf("--http-tls-cert/--http-tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// access loads the readers file and keeps it current until ctx ends (an
// invalid edit is logged and the previous readers stay). Without
// --readers the API is open.
func (f *httpAccessFlags) access(ctx context.Context, log *slog.Logger) (api.Access, error) {
	if f.Readers == "" {
		log.Info("HTTP API access: open (no --readers)", "allow_anonymous", f.HTTPAllowAnonymous)
		return api.Access{}, nil
	}
	rs, err := auth.LoadReaders(f.Readers)
	if err != nil {
		return api.Access{}, err
	}
	var cur atomic.Pointer[auth.Readers]
	cur.Store(rs)
	go func() {
		if err := auth.WatchReaders(ctx, f.Readers, log, cur.Store, nil); err != nil {
			log.Error("readers watch stopped; keeping the current readers", "err", err)
		}
	}()
	log.Info("HTTP API access: bearer tokens of the readers file", "readers", f.Readers, "count", len(rs.Readers))
	return api.Access{Readers: cur.Load, Log: log}, nil
}
