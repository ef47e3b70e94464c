package debpkg

import (
	"fmt"
	"strings"
)

// Unit is a systemd unit file read just enough to check it and to run its
// command where no systemd does (test/deb): KEY=VALUE lines, the last of
// a key winning, sections ignored.
type Unit map[string]string

// ParseUnit reads a unit file.
func ParseUnit(b []byte) Unit {
	u := Unit{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") || strings.HasPrefix(l, "[") {
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok {
			u[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return u
}

// Get returns a key's value ("" when absent).
func (u Unit) Get(key string) string { return u[key] }

// ExecStart returns the service's command line. It refuses what it
// would have to interpret like systemd does (prefixes such as - or @,
// quotes, variables) rather than run something else than systemd would.
func (u Unit) ExecStart() ([]string, error) {
	line := u["ExecStart"]
	if line == "" {
		return nil, fmt.Errorf("unit: no ExecStart")
	}
	if strings.ContainsAny(line, `"'$%\;`) || strings.ContainsAny(line[:1], "-@:+!") {
		return nil, fmt.Errorf("unit: ExecStart %q needs systemd's own parsing", line)
	}
	argv := strings.Fields(line)
	if !strings.HasPrefix(argv[0], "/") {
		return nil, fmt.Errorf("unit: ExecStart %q: the program is not an absolute path", line)
	}
	return argv, nil
}
