// Package filewatch reloads a configuration file when it changes: the
// agent's config (agent/config), the collector's identities and readers
// files (auth) all use it, so they survive the same editors and mounts the
// same way.
package filewatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Debounce is how long Watch waits after the last change in the directory
// before reading the file: editors and config managers write in several
// steps.
const Debounce = 100 * time.Millisecond

// MaxDebounce bounds the wait when changes keep coming (a busy directory).
const MaxDebounce = time.Second

// Option adjusts a watch.
type Option func(*options)

type options struct {
	what    string
	missing []byte // parsed in place of a file that no longer exists; nil: keep the previous version
}

// MissingAs makes a deleted file read as data (say, an empty list), so
// that deleting a file of grants grants no more than emptying it would.
// Without it a missing file is "unreadable": the previous version stays.
func MissingAs(data string) Option {
	return func(o *options) { o.missing = []byte(data) }
}

// What names the file in log messages: with "config", "config file invalid;
// keeping the previous config" and "config reloaded"; without, "file
// invalid; keeping the previous version" and "file reloaded".
func What(what string) Option {
	return func(o *options) { o.what = what }
}

// Watch calls onChange with each new valid content of the file at path,
// parsed by parse (name is path, for messages), until ctx ends; then it
// returns nil. It returns an error only when the watch cannot be set up.
//
// It watches the file's directory, not the file, so that it survives editors
// that write a temporary file and rename it over the original, and
// Kubernetes-style ConfigMap mounts, where the file is a symlink through
// "..data" and an update swaps that symlink. When path is a symlink into
// another directory, that directory is watched as well. Any change in a
// watched directory (after Debounce of quiet, at most MaxDebounce after the
// first change) makes Watch read the file again; it parses and reports it
// only when the content differs from the last content seen.
//
// An unreadable or invalid file is logged (warn, with the error) and
// ignored: the caller keeps what it had, and the next change is read again.
//
// ready, if not nil, is called once the watch is in place. The baseline is
// the file's content at that moment: load the file, then Watch right away;
// a change in between is not reported.
func Watch[T any](ctx context.Context, path string, log *slog.Logger, parse func(name string, data []byte) (T, error),
	onChange func(T), ready func(), opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.Default()
	}
	what, file, previous := "file", "file", "version" // what reloaded, what is invalid, what is kept
	if o.what != "" {
		what, file, previous = o.what, o.what+" file", o.what
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("%s: watch %s: %w", what, path, err)
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
			return fmt.Errorf("%s: watch %s: %w", what, d, err)
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
			timer.Reset(max(0, min(Debounce, pendingSince.Add(MaxDebounce).Sub(now))))
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn(what+" watch error", "path", path, "err", err)
		case <-timer.C:
			pendingSince = time.Time{}
			data, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) && o.missing != nil {
				log.Warn(file+" deleted; reading it as "+strings.TrimSpace(string(o.missing)), "path", path)
				data, err = o.missing, nil
			}
			if err != nil {
				log.Warn(file+" unreadable; keeping the previous "+previous, "path", path, "err", err)
				continue
			}
			if bytes.Equal(data, last) {
				continue
			}
			last = data
			v, err := parse(path, data)
			if err != nil {
				log.Warn(file+" invalid; keeping the previous "+previous, "path", path, "err", err)
				continue
			}
			log.Info(what+" reloaded", "path", path)
			onChange(v)
		}
	}
}
