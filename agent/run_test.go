package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowlog/flowlog/agent/spool"
	"github.com/flowlog/flowlog/internal/testutil"
)

// drain ends as soon as the spool is empty, not at its timeout; with
// something left and the exporter gone it ends at once too.
func TestDrainEndsWhenTheSpoolEmpties(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	seq, err := sp.Append([]byte("envelope"))
	if err != nil {
		t.Fatal(err)
	}
	expDone := make(chan struct{})
	drained := make(chan struct{})
	go func() { drain(sp, expDone, time.Hour); close(drained) }()
	select {
	case <-drained:
		t.Fatal("drain returned with an envelope waiting")
	default:
	}
	if err := sp.Ack(seq); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 0, "drain to return once the spool is empty", func() bool {
		select {
		case <-drained:
			return true
		default:
			return false
		}
	})

	if _, err := sp.Append([]byte("another")); err != nil {
		t.Fatal(err)
	}
	close(expDone) // nothing will send it: drain must not wait for the timeout
	drained = make(chan struct{})
	go func() { drain(sp, expDone, time.Hour); close(drained) }()
	testutil.WaitFor(t, 0, "drain to return once the exporter stopped", func() bool {
		select {
		case <-drained:
			return true
		default:
			return false
		}
	})
}

// Run refuses a configuration that cannot work before touching the kernel,
// naming the flag.
func TestRunRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) {}, "no TLS configured"},
		{func(c *Config) { c.Plaintext, c.Window = true, 0 }, "--window"},
		{func(c *Config) { c.Plaintext, c.BatchInterval = true, 0 }, "--batch-interval"},
		{func(c *Config) { c.Plaintext, c.TLSCert = true, "c.pem" }, "--tls-cert and --tls-key"},
		{func(c *Config) { c.Plaintext, c.Token, c.TokenFile = true, "t", "f" }, "--token and --token-file"},
	} {
		c := DefaultConfig()
		c.ConfigFile = "/nonexistent"
		tc.edit(&c)
		if err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run: %v, want an error with %q", err, tc.want)
		}
	}
}
