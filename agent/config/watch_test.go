package config

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the watcher goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func withHostName(name string) string {
	return strings.Replace(head, "name: web-1", "name: "+name, 1)
}

type watchRig struct {
	t       *testing.T
	dir     string
	path    string
	logs    *syncBuffer
	changes chan *Config
	done    chan error
}

func startWatch(t *testing.T) *watchRig {
	t.Helper()
	r := &watchRig{t: t, dir: t.TempDir(), logs: &syncBuffer{}, changes: make(chan *Config, 10), done: make(chan error, 1)}
	r.path = filepath.Join(r.dir, "agent.yaml")
	r.write(withHostName("v1"))
	if _, err := Load(r.path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ready := make(chan struct{})
	go func() {
		r.done <- watch(ctx, r.path, log, func(c *Config) { r.changes <- c }, func() { close(ready) })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Watch returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	})
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("watch ended early: %v", err)
	}
	return r
}

func (r *watchRig) write(doc string) {
	r.t.Helper()
	if err := os.WriteFile(r.path, []byte(doc), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// renameOver writes doc to a temporary file and renames it over the config,
// as editors and config managers do.
func (r *watchRig) renameOver(doc string) {
	r.t.Helper()
	tmp := filepath.Join(r.dir, ".agent.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		r.t.Fatal(err)
	}
}

func (r *watchRig) next() *Config {
	r.t.Helper()
	select {
	case c := <-r.changes:
		return c
	case <-time.After(5 * time.Second):
		r.t.Fatalf("no change reported; logs:\n%s", r.logs)
		return nil
	}
}

func (r *watchRig) none(d time.Duration) {
	r.t.Helper()
	select {
	case c := <-r.changes:
		r.t.Fatalf("unexpected change to %+v", c.Host)
	case <-time.After(d):
	}
}

func TestWatchRewrite(t *testing.T) {
	r := startWatch(t)
	r.write(withHostName("v2"))
	if c := r.next(); c.Host.Name != "v2" {
		t.Fatalf("got %q", c.Host.Name)
	}
	// Writing the same content again is not a change.
	r.write(withHostName("v2"))
	r.none(400 * time.Millisecond)
}

func TestWatchRenameOver(t *testing.T) {
	r := startWatch(t)
	r.renameOver(withHostName("v2"))
	if c := r.next(); c.Host.Name != "v2" {
		t.Fatalf("got %q", c.Host.Name)
	}
	r.renameOver(withHostName("v3"))
	if c := r.next(); c.Host.Name != "v3" {
		t.Fatalf("got %q", c.Host.Name)
	}
}

func TestWatchIgnoresInvalid(t *testing.T) {
	r := startWatch(t)
	r.write(withHostName("v2") + "bogus: 1\n")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.logs.String(), "config file invalid") {
		if time.Now().After(deadline) {
			t.Fatalf("invalid file not logged; logs:\n%s", r.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "bogus: unknown field") {
		t.Fatalf("want a warning with the error; logs:\n%s", logs)
	}
	r.none(200 * time.Millisecond)
	// A valid file afterwards is picked up.
	r.write(withHostName("v3"))
	if c := r.next(); c.Host.Name != "v3" {
		t.Fatalf("got %q", c.Host.Name)
	}
}

// Kubernetes mounts a ConfigMap as dir/agent.yaml -> ..data/agent.yaml,
// ..data -> ..<timestamp>; an update swaps the ..data symlink.
func TestWatchSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mk := func(ts, doc string) {
		if err := os.Mkdir(filepath.Join(dir, ts), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, "agent.yaml"), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mk("..2026_01", withHostName("v1"))
	if err := os.Symlink("..2026_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.yaml")
	if err := os.Symlink("..data/agent.yaml", path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan *Config, 10)
	ready := make(chan struct{})
	go watch(ctx, path, slog.New(slog.NewTextHandler(&syncBuffer{}, nil)), func(c *Config) { changes <- c }, func() { close(ready) })
	<-ready

	mk("..2026_02", withHostName("v2"))
	if err := os.Symlink("..2026_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "..2026_01"))
	select {
	case c := <-changes:
		if c.Host.Name != "v2" {
			t.Fatalf("got %q", c.Host.Name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("symlink swap not seen")
	}
}
