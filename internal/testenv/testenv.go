// Package testenv lets tests that need host resources (root, libvirtd, a
// command, the test guest) skip with a reason on a developer's laptop, and
// fail instead under CI=true, where `make test` has installed and started
// everything: there a skip would hide a broken setup. Every skip in the
// suite goes through it; the one skip CI keeps is SkipUnsupported, for a
// feature the machine's kernel lacks.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips the test with reason, or fails it under CI.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("required in CI but missing: %s", reason)
	}
	t.Skip(reason)
}

// SkipUnsupported skips a test of a feature this machine's kernel lacks
// (device-mapper, an NFS client), also under CI=true: no setup installs a
// kernel feature, so failing would only say "wrong machine". It logs the
// reason, which `go test -v` and the summary of `make test` print. Never
// use it for a program, a daemon or a file that setup provides: those
// take Skip (or a Require helper), which fails in CI.
func SkipUnsupported(t testing.TB, reason string) {
	t.Helper()
	t.Skip("unsupported by this machine's kernel: " + reason)
}

// RequireRoot needs uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// RequireCommand needs name on PATH.
func RequireCommand(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		Skip(t, name+" is not installed (run scripts/host-setup.sh)")
	}
}

// RequirePython needs the python3 the Python client must work with:
// Debian 12's /usr/bin/python3, not whichever one PATH finds first (a
// developer's pyenv). GODWIT_PYTHON names another. It returns its path.
func RequirePython(t testing.TB) string {
	t.Helper()
	py := os.Getenv("GODWIT_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if _, err := os.Stat(py); err != nil {
		Skip(t, "the Python client's tests need Debian's python3 (apt-get install python3): "+err.Error())
	}
	return py
}

// LibvirtSocket is the system libvirtd's socket.
const LibvirtSocket = "/var/run/libvirt/libvirt-sock"

// RequireLibvirt needs root and a system libvirtd answering on its socket.
func RequireLibvirt(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	c, err := net.DialTimeout("unix", LibvirtSocket, 2*time.Second)
	if err != nil {
		Skip(t, "libvirtd is not running (scripts/host-setup.sh starts it): "+err.Error())
		return
	}
	c.Close()
}

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Guest is the tiny test guest built by `make guest`.
type Guest struct {
	Kernel string
	Initrd string
}

// RequireGuest needs .cache/guest/{vmlinuz,initrd.gz} (make guest).
func RequireGuest(t testing.TB) Guest {
	t.Helper()
	dir := os.Getenv("GODWIT_GUEST_DIR")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), ".cache", "guest")
	}
	g := Guest{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz")}
	for _, f := range []string{g.Kernel, g.Initrd} {
		if _, err := os.Stat(f); err != nil {
			Skip(t, "test guest missing (run make guest): "+err.Error())
		}
	}
	return g
}
