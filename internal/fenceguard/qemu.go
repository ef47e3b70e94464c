package fenceguard

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LibvirtPIDDir is where the system libvirtd keeps the pid file of each
// QEMU it starts (NAME.pid).
const LibvirtPIDDir = "/run/libvirt/qemu"

// KillQEMU kills (SIGKILL) the QEMU of vm whose pid file is in dir,
// checked first to be that VM's QEMU (its command line names the guest),
// so that a stale pid file whose number was reused never kills another
// process. It says the pid it killed, 0 when vm has no QEMU running.
func KillQEMU(dir, vm string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, vm+".pid"))
	if os.IsNotExist(err) {
		return 0, nil // not running
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file of %s: %q is not a pid", vm, strings.TrimSpace(string(b)))
	}
	if !IsQEMUOf(pid, vm) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return 0, nil // gone
		}
		return 0, fmt.Errorf("pid %d is not the QEMU of %s", pid, vm)
	}
	return pid, syscall.Kill(pid, syscall.SIGKILL)
}

// IsQEMUOf says whether process pid is the QEMU of vm: libvirt starts it
// with "-name guest=NAME,..." (or "guest=NAME" last).
func IsQEMUOf(pid int, vm string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	s := string(cmdline)
	return strings.Contains(s, "guest="+vm+",") || strings.Contains(s, "guest="+vm+"\x00")
}
