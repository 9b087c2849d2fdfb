package collector

import (
	"os"
	"strings"
	"syscall"
)

// Goroutine stacks of an idle fleet. Go starts each new goroutine with a
// stack the size of the average it scanned at the last collection (GODEBUG
// adaptivestackstart, on by default). A collector of idle agents holds five
// goroutines per agent: grpc-go's reader, writer and keepalive for its
// connection, and the stream's handler and receive pump. The handler and
// pump wait ~2.5 kB deep, which takes the average over 2 kB and so every
// new goroutine to 4 kB, though grpc-go's writer and keepalive wait under
// 1 kB deep and would fit 2 kB: ~1.5 kB a connection, 15 MB for 10,000
// agents (BENCHMARKS.md, "Idle streams, third pass"). Goroutines that need
// more grow as before; one per envelope (ingest's ticket) grows 2→4→…
// instead of 4→…, a copy of a few kB per envelope of hundreds of events.
//
// The runtime reads the setting once, from the environment, as it starts:
// a program cannot set it (no //go:debug, no runtime API). So `flowlog
// serve` re-executes itself once with it added (ReexecWithSmallStacks), the
// same executable, arguments and pid, before it opens anything.
const stackStartSetting = "adaptivestackstart"

// SmallStacksEnv returns env with adaptivestackstart=0 added to GODEBUG, and
// whether that changed anything: a GODEBUG that sets adaptivestackstart
// already, to either value, is the operator's choice and is kept.
func SmallStacksEnv(env []string) ([]string, bool) {
	out := make([]string, 0, len(env)+1)
	godebug, found := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			if !found { // the first one counts, as for the runtime
				godebug, found = v, true
			}
			continue
		}
		out = append(out, kv)
	}
	for _, f := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(f, "="); k == stackStartSetting {
			return env, false
		}
	}
	set := stackStartSetting + "=0"
	if found && godebug != "" {
		set = godebug + "," + set
	}
	return append(out, "GODEBUG="+set), true
}

// ReexecWithSmallStacks replaces this process by itself with the environment
// of SmallStacksEnv, unless that changes nothing. It returns only when it
// does not re-execute: nothing to change (nil), or exec failed (the error;
// the collector then runs as it would have, with larger stacks).
func ReexecWithSmallStacks() error {
	env, changed := SmallStacksEnv(os.Environ())
	if !changed {
		return nil
	}
	// /proc/self/exe: this very executable, even if its path was replaced
	// since (an upgrade in place starts the new one with the next restart).
	return syscall.Exec("/proc/self/exe", os.Args, env)
}
