package auth

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

// Watch calls onChange with each new valid identities file at path until ctx
// ends (then it returns nil). It is the agent config's watch (package
// agent/config) for this file: it watches the directory, not the file, so it
// survives editors that rename a temporary file over the original and
// Kubernetes-style mounts where the file is a symlink swapped through
// "..data"; when path is a symlink into another directory, that directory is
// watched as well. An unreadable or invalid file is logged (warn) and
// ignored: the previous identities stay in force.
//
// ready, if not nil, is called once the watch is in place; the baseline is
// the file's content at that moment (call Load just before).
func Watch(ctx context.Context, path string, log *slog.Logger, onChange func(*Set), ready func()) error {
	if log == nil {
		log = slog.Default()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("identities: watch %s: %w", path, err)
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
			return fmt.Errorf("identities: watch %s: %w", d, err)
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
			log.Warn("identities watch error", "path", path, "err", err)
		case <-timer.C:
			pendingSince = time.Time{}
			data, err := os.ReadFile(path)
			if err != nil {
				log.Warn("identities file unreadable; keeping the previous identities", "path", path, "err", err)
				continue
			}
			if bytes.Equal(data, last) {
				continue
			}
			last = data
			s, err := Parse(path, data)
			if err != nil {
				log.Warn("identities file invalid; keeping the previous identities", "path", path, "err", err)
				continue
			}
			log.Info("identities reloaded", "path", path, "identities", len(s.Identities))
			onChange(s)
		}
	}
}
