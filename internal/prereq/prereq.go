// Package prereq knows which programs godwit's features run and which
// Debian package brings each: one table (programs.txt) that the daemon
// reads for `host check` and `host show`, and scripts/host-setup.sh reads
// to install what is missing. It only looks; it installs nothing.
package prereq

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed programs.txt
var table string

// Scopes of the table: what the daemon needs to run VMs at all, what one
// of its features runs, what setup and the test guest need, what only the
// tests need, what only the benchmarks' baselines need. The Debian package (internal/debpkg) Depends on the run
// rows' packages and Recommends the extra ones'.
const (
	ScopeRun   = "run"
	ScopeExtra = "extra"
	ScopeSetup = "setup"
	ScopeTest  = "test"
	ScopeBench = "bench"
)

// Need is one row: a feature runs a program (or one of alternatives),
// which a package brings.
type Need struct {
	Scope    string
	Programs []string // any one will do; a path starting with / must exist
	Package  string
	Feature  string
}

// Packages returns the packages of the rows of one scope, each once, in
// the table's order.
func Packages(scope string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range Needs() {
		if n.Scope == scope && !seen[n.Package] {
			seen[n.Package] = true
			out = append(out, n.Package)
		}
	}
	return out
}

// Needs are the table's rows in order.
func Needs() []Need {
	var out []Need
	for _, line := range strings.Split(table, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			panic("prereq: bad line in programs.txt: " + line)
		}
		out = append(out, Need{Scope: f[0], Programs: strings.Split(f[1], "|"), Package: f[2], Feature: strings.Join(f[3:], " ")})
	}
	return out
}

// sbin are where Debian keeps daemons' programs, which a user's PATH
// (and so the daemon's) may lack while libvirtd's has them.
var sbin = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// Find returns where a program (or path) is, or "".
func Find(program string) string {
	if strings.HasPrefix(program, "/") {
		if _, err := os.Stat(program); err == nil {
			return program
		}
		return ""
	}
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	for _, d := range sbin {
		p := filepath.Join(d, program)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Missing is a need nothing on this host meets.
type Missing struct {
	Need
}

func (m Missing) String() string {
	return fmt.Sprintf("%s: %s is not installed (Debian package %s)", m.Feature, strings.Join(m.Programs, " or "), m.Package)
}

// Check returns the needs of the given scopes that this host lacks.
func Check(scopes ...string) []Missing {
	var out []Missing
	for _, n := range Needs() {
		if !contains(scopes, n.Scope) || found(n) {
			continue
		}
		out = append(out, Missing{n})
	}
	return out
}

// Program returns an error naming the feature and the package when a row
// that names program is not met; nil when every such row is.
func Program(program string) error {
	known := false
	for _, n := range Needs() {
		if !contains(n.Programs, program) {
			continue
		}
		known = true
		if !found(n) {
			return fmt.Errorf("%s", Missing{n})
		}
	}
	if !known && Find(program) == "" {
		return fmt.Errorf("%s is not installed", program)
	}
	return nil
}

func found(n Need) bool {
	for _, p := range n.Programs {
		if Find(p) != "" {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
