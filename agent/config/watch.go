package config

import (
	"context"
	"log/slog"

	"github.com/flowlog/flowlog/filewatch"
)

// Watch calls onChange with each new valid config when the file at path
// changes, until ctx ends (then it returns nil).
//
// It is filewatch.Watch for the agent's config: it watches the file's
// directory (and a symlink target's), so that it survives editors that
// rename a temporary file over the original and Kubernetes-style ConfigMap
// mounts; it reports a change only when the content differs from the last
// content seen. An invalid or unreadable file is logged (warn, with the
// error) and ignored: the caller keeps its previous config, and the next
// change is read again.
//
// The baseline is the file's content when the watch starts: call Load, then
// Watch right away; a change in between is not reported.
func Watch(ctx context.Context, path string, log *slog.Logger, onChange func(*Config)) error {
	return watch(ctx, path, log, onChange, nil)
}

// watch is Watch with a hook called once the directory watch is in place
// (tests use it to know when changes will be seen).
func watch(ctx context.Context, path string, log *slog.Logger, onChange func(*Config), ready func()) error {
	return filewatch.Watch(ctx, path, log, Parse, onChange, ready, filewatch.What("config"))
}
