// Package buildinfo says which godwit this is.
package buildinfo

import "runtime/debug"

// Version is set at link time (-ldflags "-X ...buildinfo.Version=v1.2.3");
// otherwise it is the VCS revision the binary was built from.
var Version = ""

// String returns the version, never empty.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
	}
	return "dev"
}
