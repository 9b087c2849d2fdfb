package conntrack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// openNetNS resolves Options.NetNS: "" is the process's own namespace
// (netns.None), a name is looked up under /var/run/netns, anything with a
// slash is a path.
func openNetNS(name string) (netns.NsHandle, error) {
	if name == "" {
		return netns.None(), nil
	}
	path := name
	if !strings.Contains(name, "/") {
		path = filepath.Join("/var/run/netns", name)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("conntrack: network namespace %q: %w", name, err)
	}
	return h, nil
}

// inNetNS runs fn on an OS thread that has joined ns. Files under /proc/sys/net
// show the namespace of the thread that opens them, so this is how a
// namespace's sysctls are read and written. The thread stays locked and
// dies with the goroutine: no other goroutine can ever run in ns by mistake.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("conntrack: enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// sysctls the source switches on (when 0) for the run. acct and timestamp
// only affect entries the kernel creates afterwards; events=0 would mean
// no events at all.
var sysctls = []string{"nf_conntrack_acct", "nf_conntrack_timestamp", "nf_conntrack_events"}

const sysctlDir = "/proc/sys/net/netfilter"

// saved is a sysctl value the source changed, to put back on Close.
type saved struct{ name, prev string }

// enableSysctls sets every sysctl that is 0 to 1 in the current thread's
// namespace and returns what it changed.
func enableSysctls(nsName string) ([]saved, error) {
	var changed []saved
	for _, name := range sysctls {
		p := filepath.Join(sysctlDir, name)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			_ = restoreSysctls(changed)
			if _, derr := os.Stat(sysctlDir); derr != nil {
				return nil, fmt.Errorf("conntrack: not active in network namespace %q (no %s): nf_conntrack is loaded once a firewall rule uses ct, e.g. nftables 'ct state established accept'", nsName, sysctlDir)
			}
			return nil, fmt.Errorf("conntrack: kernel has no %s: %w", p, err)
		}
		if err != nil {
			_ = restoreSysctls(changed)
			return nil, fmt.Errorf("conntrack: read %s: %w", p, err)
		}
		prev := strings.TrimSpace(string(b))
		if prev != "0" {
			continue
		}
		if err := os.WriteFile(p, []byte("1\n"), 0); err != nil {
			_ = restoreSysctls(changed)
			return nil, fmt.Errorf("conntrack: set %s=1: %w", p, err)
		}
		changed = append(changed, saved{name, prev})
	}
	return changed, nil
}

// restoreSysctls puts back values, last changed first.
func restoreSysctls(changed []saved) error {
	var errs []error
	for i := len(changed) - 1; i >= 0; i-- {
		p := filepath.Join(sysctlDir, changed[i].name)
		if err := os.WriteFile(p, []byte(changed[i].prev+"\n"), 0); err != nil {
			errs = append(errs, fmt.Errorf("conntrack: restore %s=%s: %w", p, changed[i].prev, err))
		}
	}
	return errors.Join(errs...)
}
