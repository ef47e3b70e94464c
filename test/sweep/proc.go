package sweep

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procRoot is where the kernel shows processes.
const procRoot = "/proc"

// stat is what /proc/PID/stat says about a process.
type stat struct {
	state byte
	start uint64
}

// readStat parses /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses: the fields after it start after the last ')'.
func readStat(pid int) (stat, error) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return stat{}, err
	}
	return parseStat(string(data))
}

func parseStat(s string) (stat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("stat %q: no command name", s)
	}
	f := strings.Fields(s[i+1:])
	// After the name: state (3), ppid (4), ... starttime (22).
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("stat %q: too few fields", s)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("stat starttime %q: %w", f[19], err)
	}
	return stat{state: f[0][0], start: start}, nil
}

func readCmdline(pid int) []string {
	data, _ := os.ReadFile(fmt.Sprintf("%s/%d/cmdline", procRoot, pid))
	data = bytes.TrimSuffix(data, []byte{0})
	if len(data) == 0 {
		return nil
	}
	return strings.Split(string(data), "\x00")
}

// settledCmdline reads the command line of a process that may have just
// been started. exec.Cmd.Start returns once the child's old files are
// closed in execve, before the kernel has set up the new argument area, so
// for a moment /proc/PID/cmdline is empty (seen in CI: a "sleep 30"
// recorded with no command line). Kernel threads and zombies stay empty;
// give up after a second.
func settledCmdline(pid int) []string {
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		if c := readCmdline(pid); c != nil || time.Now().After(deadline) {
			return c
		}
	}
}

func readComm(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("%s/%d/comm", procRoot, pid))
	return strings.TrimSpace(string(data))
}

// Snapshot records a living process. cmdline is what it will run (nil:
// what it runs now); its start time is read now and survives an exec.
func Snapshot(role string, pid int, cmdline []string) (Proc, error) {
	st, err := readStat(pid)
	if err != nil {
		return Proc{}, fmt.Errorf("%s pid %d: %w", role, pid, err)
	}
	if cmdline == nil {
		cmdline = settledCmdline(pid)
	}
	return Proc{Role: role, PID: pid, Start: st.start, Cmdline: append([]string(nil), cmdline...)}, nil
}

// Running reports whether the recorded process still runs: the PID is
// alive (not a zombie), started at the recorded time and runs the
// recorded command line. Anything else is another process, or none.
func (p Proc) Running() bool {
	if p.PID <= 1 {
		return false
	}
	st, err := readStat(p.PID)
	if err != nil || st.state == 'Z' || st.state == 'X' || st.start != p.Start {
		return false
	}
	return slices.Equal(readCmdline(p.PID), p.Cmdline)
}

// String names the process for the sweeper's lines.
func (p Proc) String() string {
	cmd := strings.Join(p.Cmdline, " ")
	if len(cmd) > 80 {
		cmd = cmd[:77] + "..."
	}
	return fmt.Sprintf("%s pid %d (%s)", p.Role, p.PID, cmd)
}

// stop ends a process: SIGTERM, then SIGKILL after wait. It checks before
// each signal that the PID is still the recorded process.
func stop(p Proc, wait time.Duration) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !p.Running() {
			return nil
		}
		if err := syscall.Kill(p.PID, sig); err != nil {
			return err
		}
		deadline := time.Now().Add(wait)
		for p.Running() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if p.Running() {
		return fmt.Errorf("%s still runs after SIGKILL", p)
	}
	return nil
}

// sameFile reports whether two paths are the same inode (a process's
// /proc/PID/ns/net and a /run/netns/NAME bind mount are, when the
// process runs in that namespace).
func sameFile(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// netnsDir is where `ip netns` keeps named namespaces.
const netnsDir = "/run/netns"

// inNetns reports whether pid runs in one of the named namespaces.
func inNetns(pid int, names []string) bool {
	for _, n := range names {
		if n != "" && !strings.Contains(n, "/") && sameFile(fmt.Sprintf("%s/%d/ns/net", procRoot, pid), netnsDir+"/"+n) {
			return true
		}
	}
	return false
}
