package config

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long Watch waits after the last change in the directory
// before reading the file: editors and config managers write in several steps.
const debounce = 100 * time.Millisecond

// maxDebounce bounds the wait when changes keep coming (a busy directory).
const maxDebounce = time.Second

// Watch calls onChange with each new valid config when the file at path
// changes, until ctx ends (then it returns nil).
//
// It watches the file's directory, not the file, so that it survives editors
// that write a temporary file and rename it over the original, and
// Kubernetes-style ConfigMap mounts, where the file is a symlink through
// "..data" and an update swaps that symlink. When path is a symlink into
// another directory, that directory is watched as well. Any change in a
// watched directory (after debounce) makes Watch read the file again; it
// calls onChange only when the content differs from the last content seen.
//
// An invalid or unreadable file is logged (warn, with the error) and
// ignored: the caller keeps its previous config, and the next change is read
// again.
//
// The baseline is the file's content when the watch starts: call Load, then
// Watch right away; a change in between is not reported.
func Watch(ctx context.Context, path string, log *slog.Logger, onChange func(*Config)) error {
	return watch(ctx, path, log, onChange, nil)
}

// watch is Watch with a hook called once the directory watch is in place
// (tests use it to know when changes will be seen).
func watch(ctx context.Context, path string, log *slog.Logger, onChange func(*Config), ready func()) error {
	if log == nil {
		log = slog.Default()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config: watch %s: %w", path, err)
	}
	defer w.Close()

	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		if d := filepath.Dir(real); d != dirs[0] {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if err := w.Add(d); err != nil {
			return fmt.Errorf("config: watch %s: %w", d, err)
		}
	}
	last, _ := os.ReadFile(path)
	if ready != nil {
		ready()
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var pendingSince time.Time // first change not yet read; zero when none
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			now := time.Now()
			if pendingSince.IsZero() {
				pendingSince = now
			}
			timer.Reset(max(0, min(debounce, pendingSince.Add(maxDebounce).Sub(now))))
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("config watch error", "path", path, "err", err)
		case <-timer.C:
			pendingSince = time.Time{}
			data, err := os.ReadFile(path)
			if err != nil {
				log.Warn("config file unreadable; keeping the previous config", "path", path, "err", err)
				continue
			}
			if bytes.Equal(data, last) {
				continue
			}
			last = data
			c, err := Parse(path, data)
			if err != nil {
				log.Warn("config file invalid; keeping the previous config", "path", path, "err", err)
				continue
			}
			log.Info("config reloaded", "path", path)
			onChange(c)
		}
	}
}
