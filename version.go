package flowlog

import "runtime/debug"

// version is set at link time (-ldflags "-X github.com/flowlog/flowlog.version=v1.2.3",
// as `make build` does); without it Version reads the module's build info.
var version string

// Version is this build's version: the link-time one, else the module
// version or VCS revision Go recorded, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(12, len(rev))] + dirty
}
