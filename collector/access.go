package collector

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/auth"
)

// Who may use the HTTP listener (the API, the page's data, /metrics) and
// whether it speaks TLS.

func (c *Config) httpPolicy() auth.HTTPPolicy {
	return auth.HTTPPolicy{Readers: c.Readers != "", AllowAnonymous: c.HTTPAllowAnonymous}
}

// validateHTTP refuses what cannot work before anything starts; a listen
// address that is a name is checked again once listening (checkHTTP).
func (c *Config) validateHTTP() error {
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		return fmt.Errorf("--http-tls-cert and --http-tls-key go together")
	}
	if err := c.httpPolicy().Check(c.HTTPAddr, !auth.KnownNotLoopback(c.HTTPAddr)); err != nil {
		return err
	}
	if c.Readers != "" {
		// Read again when serving; read here so that a bad file stops
		// everything before it starts.
		if _, err := auth.LoadReaders(c.Readers); err != nil {
			return err
		}
	}
	return nil
}

// checkHTTP applies the policy to the bound listener, and warns when tokens
// would cross the network in clear.
func (c *Collector) checkHTTP(addr string, loopback bool) error {
	if err := c.cfg.httpPolicy().Check(addr, loopback); err != nil {
		return err
	}
	if !loopback && c.cfg.Readers != "" && c.cfg.HTTPTLSCert == "" {
		c.log.Warn("the HTTP API takes bearer tokens in plain HTTP on a non-loopback address: give --http-tls-cert/--http-tls-key (or terminate TLS in front of it)", "http", addr)
	}
	return nil
}

// access loads the readers file and keeps it current until ctx ends (an
// invalid edit is logged and the previous readers stay). Without Readers
// the API is open.
func (c *Collector) access(ctx context.Context) (api.Access, error) {
	if c.cfg.Readers == "" {
		c.log.Info("HTTP API access: open (no --readers)", "allow_anonymous", c.cfg.HTTPAllowAnonymous)
		return api.Access{}, nil
	}
	rs, err := auth.LoadReaders(c.cfg.Readers)
	if err != nil {
		return api.Access{}, err
	}
	var cur atomic.Pointer[auth.Readers]
	cur.Store(rs)
	go func() {
		if err := auth.WatchReaders(ctx, c.cfg.Readers, c.log, cur.Store, nil); err != nil {
			c.log.Error("readers watch stopped; keeping the current readers", "err", err)
		}
	}()
	c.log.Info("HTTP API access: bearer tokens of the readers file", "readers", c.cfg.Readers, "count", len(rs.Readers))
	return api.Access{Readers: cur.Load, Log: c.log}, nil
}
