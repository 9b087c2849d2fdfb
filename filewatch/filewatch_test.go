package filewatch

import (
	"bytes"
	"context"
	"errors"
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

// parseDoc accepts "value: X" lines only and returns X; anything else is
// invalid, as a strict config parser would say.
func parseDoc(name string, data []byte) (string, error) {
	v, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "value: ")
	if !ok || strings.Contains(v, "\n") {
		return "", errors.New(name + ": want one line `value: X`")
	}
	return v, nil
}

type rig struct {
	t       *testing.T
	dir     string
	path    string
	logs    *syncBuffer
	changes chan string
	done    chan error
	parses  chan struct{}
}

// start writes "value: v1" to dir/conf.yaml and watches it.
func start(t *testing.T, opts ...Option) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), logs: &syncBuffer{}, changes: make(chan string, 10), done: make(chan error, 1),
		parses: make(chan struct{}, 100)}
	r.path = filepath.Join(r.dir, "conf.yaml")
	r.write("value: v1\n")
	r.watch(r.path, opts...)
	return r
}

func (r *rig) watch(path string, opts ...Option) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ready := make(chan struct{})
	parse := func(name string, data []byte) (string, error) {
		r.parses <- struct{}{}
		return parseDoc(name, data)
	}
	go func() {
		r.done <- Watch(ctx, path, log, parse, func(v string) { r.changes <- v }, func() { close(ready) }, opts...)
	}()
	r.t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Errorf("Watch returned %v", err)
			}
		case <-time.After(5 * time.Second):
			r.t.Error("Watch did not return after cancel")
		}
	})
	select {
	case <-ready:
	case err := <-r.done:
		r.t.Fatalf("watch ended early: %v", err)
	}
}

func (r *rig) write(doc string) {
	r.t.Helper()
	if err := os.WriteFile(r.path, []byte(doc), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// renameOver writes doc to a temporary file and renames it over the file,
// as editors and config managers do.
func (r *rig) renameOver(doc string) {
	r.t.Helper()
	tmp := filepath.Join(r.dir, ".conf.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) next() string {
	r.t.Helper()
	select {
	case v := <-r.changes:
		return v
	case <-time.After(5 * time.Second):
		r.t.Fatalf("no change reported; logs:\n%s", r.logs)
		return ""
	}
}

func (r *rig) none(d time.Duration) {
	r.t.Helper()
	select {
	case v := <-r.changes:
		r.t.Fatalf("unexpected change to %q", v)
	case <-time.After(d):
	}
}

func TestRewriteInPlace(t *testing.T) {
	r := start(t)
	r.write("value: v2\n")
	if v := r.next(); v != "v2" {
		t.Fatalf("got %q", v)
	}
	// Writing the same content again is not a change (not even parsed).
	for len(r.parses) > 0 {
		<-r.parses
	}
	r.write("value: v2\n")
	r.none(400 * time.Millisecond)
	if n := len(r.parses); n != 0 {
		t.Errorf("unchanged content parsed %d times", n)
	}
	if !strings.Contains(r.logs.String(), `msg="file reloaded"`) {
		t.Errorf("reload not logged; logs:\n%s", r.logs)
	}
}

func TestRenameOver(t *testing.T) {
	r := start(t)
	r.renameOver("value: v2\n")
	if v := r.next(); v != "v2" {
		t.Fatalf("got %q", v)
	}
	r.renameOver("value: v3\n")
	if v := r.next(); v != "v3" {
		t.Fatalf("got %q", v)
	}
}

func TestInvalidIsLoggedAndIgnored(t *testing.T) {
	r := start(t, What("widget"))
	r.write("value: v2\nbogus: 1\n")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.logs.String(), "widget file invalid; keeping the previous widget") {
		if time.Now().After(deadline) {
			t.Fatalf("invalid file not logged; logs:\n%s", r.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "want one line") || !strings.Contains(logs, r.path) {
		t.Fatalf("want a warning with the path and the error; logs:\n%s", logs)
	}
	r.none(200 * time.Millisecond)
	// A valid file afterwards is picked up; so is the content seen before the
	// invalid edit (it differs from the last content read).
	r.write("value: v1\n")
	if v := r.next(); v != "v1" {
		t.Fatalf("got %q", v)
	}
	if !strings.Contains(r.logs.String(), `msg="widget reloaded"`) {
		t.Errorf("reload not logged by name; logs:\n%s", r.logs)
	}
}

func TestUnreadableIsLoggedAndIgnored(t *testing.T) {
	r := start(t)
	if err := os.Remove(r.path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.logs.String(), "file unreadable; keeping the previous version") {
		if time.Now().After(deadline) {
			t.Fatalf("missing file not logged; logs:\n%s", r.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.write("value: v2\n")
	if v := r.next(); v != "v2" {
		t.Fatalf("got %q", v)
	}
}

// A burst of writes is read once, after it calms down; a directory that
// never calms down is still read within MaxDebounce.
func TestDebounce(t *testing.T) {
	r := start(t)
	for i := 0; i < 5; i++ {
		r.write("value: partial\nhalf")
		time.Sleep(10 * time.Millisecond)
	}
	for len(r.parses) > 0 {
		<-r.parses
	}
	r.write("value: v2\n")
	if v := r.next(); v != "v2" {
		t.Fatalf("got %q", v)
	}
	if n := len(r.parses); n > 1 {
		t.Errorf("a burst was parsed %d times", n)
	}

	// Keep touching another file every 30ms (< Debounce): the change must
	// still be seen within about MaxDebounce (without the bound, never).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		other := filepath.Join(r.dir, "other")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
				os.WriteFile(other, []byte{byte(i)}, 0o600)
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	r.write("value: v3\n")
	select {
	case v := <-r.changes:
		if v != "v3" {
			t.Fatalf("got %q", v)
		}
		if d := time.Since(t0); d > MaxDebounce+time.Second {
			t.Errorf("seen after %s under constant changes, want about %s", d, MaxDebounce)
		}
	case <-time.After(4 * time.Second):
		t.Fatalf("change not seen while the directory kept changing; logs:\n%s", r.logs)
	}
}

// Kubernetes mounts a ConfigMap as dir/conf.yaml -> ..data/conf.yaml,
// ..data -> ..<timestamp>; an update swaps the ..data symlink.
func TestSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mk := func(ts, doc string) {
		if err := os.Mkdir(filepath.Join(dir, ts), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, "conf.yaml"), []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mk("..2026_01", "value: v1\n")
	if err := os.Symlink("..2026_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "conf.yaml")
	if err := os.Symlink("..data/conf.yaml", path); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dir: dir, path: path, logs: &syncBuffer{}, changes: make(chan string, 10), done: make(chan error, 1),
		parses: make(chan struct{}, 100)}
	r.watch(path)

	mk("..2026_02", "value: v2\n")
	if err := os.Symlink("..2026_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "..2026_01"))
	if v := r.next(); v != "v2" {
		t.Fatalf("got %q", v)
	}
}

// A file symlinked into another directory: edits there are seen too.
func TestSymlinkIntoOtherDirectory(t *testing.T) {
	real := filepath.Join(t.TempDir(), "real.yaml")
	if err := os.WriteFile(real, []byte("value: v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "conf.yaml")
	if err := os.Symlink(real, path); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dir: dir, path: path, logs: &syncBuffer{}, changes: make(chan string, 10), done: make(chan error, 1),
		parses: make(chan struct{}, 100)}
	r.watch(path)
	if err := os.WriteFile(real, []byte("value: v2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v := r.next(); v != "v2" {
		t.Fatalf("got %q", v)
	}
}

func TestMissingDirectoryIsAnError(t *testing.T) {
	err := Watch(context.Background(), filepath.Join(t.TempDir(), "nope", "conf.yaml"), nil, parseDoc, func(string) {}, nil, What("readers"))
	if err == nil || !strings.HasPrefix(err.Error(), "readers: watch ") {
		t.Fatalf("got %v, want a readers: watch error", err)
	}
}
