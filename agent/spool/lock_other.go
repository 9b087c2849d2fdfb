//go:build !unix

package spool

import "os"

// lockDir does nothing where flock(2) does not exist; the agent runs on Linux.
func lockDir(dir string) (*os.File, error) { return nil, nil }
