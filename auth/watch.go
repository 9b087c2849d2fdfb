package auth

import (
	"context"
	"log/slog"

	"github.com/flowlog/flowlog/filewatch"
)

// Watch calls onChange with each new valid identities file at path until ctx
// ends (then it returns nil). It is filewatch.Watch for this file: it
// watches the directory, not the file, so it survives editors that rename a
// temporary file over the original and Kubernetes-style mounts where the
// file is a symlink swapped through "..data". A deleted file reads as
// `identities: []` (no agent is authenticated: a deleted file must not grant
// more than an empty one); an unreadable or invalid file is logged (warn)
// and ignored: the previous identities stay in force.
//
// ready, if not nil, is called once the watch is in place; the baseline is
// the file's content at that moment (call Load just before).
func Watch(ctx context.Context, path string, log *slog.Logger, onChange func(*Set), ready func()) error {
	return filewatch.Watch(ctx, path, log, Parse, onChange, ready, filewatch.What("identities"), filewatch.MissingAs("identities: []\n"))
}
