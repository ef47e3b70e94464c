package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/test/testbed"
)

// guardBound is when the fence guard must have killed a host's HA VM's
// QEMU after the host's daemon stopped renewing its lease: fenceAfter 4 s
// + fenceStop 2 s (the defaults of a 6 s lease; docs/cluster.md). Other
// hosts restart it no sooner than restartDelay (8 s) after they see the
// lease gone, later than that.
const guardBound = 6 * time.Second

// An HA VM on the shared pool runs on hosta, whose daemon hangs
// (SIGSTOP): its lease runs out and nothing in the daemon can fence, so
// the fence guard must: hosta's QEMU goes within guardBound, before
// another host restarts the VM, and the disk counter never shows two
// writers. The daemon continued, hosta drops its stale domain and keeps
// a guard again. Then the new host's daemon is killed (SIGKILL): its
// guard kills the VM's QEMU there the same way and a third host (or
// hosta) restarts it.
func TestClusterHAFenceGuard(t *testing.T) {
	b, name, path := haBed(t, "guard-")
	a := b.Hosts[0]
	guardA := runningGuard(t, a)

	// The daemon hangs.
	w := watchFailover(t, b, a, name, path)
	t0 := time.Now()
	if err := a.SignalDaemon(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = a.SignalDaemon(syscall.SIGCONT)
		}
	}()
	to, f := w.failover(t, t0, "daemon stopped (SIGSTOP)")
	checkGuardFenced(t, a, guardA, name, f)
	if f.started > 25*time.Second {
		t.Fatalf("%s restarted %s %s after the hang, later than the documented 17.5 s + slack", to.Name, name, f.started)
	}
	eventually(t, time.Minute, "the disk counter to resume on "+to.Name, func() bool {
		line, err := diskLine(path)
		return err == nil && line != f.fenceLine && diskTickRE.MatchString(line)
	})

	// The daemon goes on: it finds its VM moved, drops its domain, does
	// not start it again, and keeps a new guard.
	if err := a.SignalDaemon(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	eventually(t, time.Minute, "hosta to drop its domain of "+name, func() bool {
		_, err := a.Virsh("domstate", name)
		return err != nil
	})
	eventually(t, 30*time.Second, "hosta to run a new fence guard", func() bool {
		pid, err := guardPID(a)
		return err == nil && pid != guardA
	})
	if len(a.QEMUs(name)) != 0 {
		t.Fatalf("hosta started %s again after its daemon went on", name)
	}
	if seen := w.problems(); len(seen) > 0 {
		t.Fatalf("two writers: %v", seen)
	}

	// The new host's daemon is killed.
	path = diskPath(t, to, name)
	hostWaitConsole(t, to, name, `^tick 3 `, 0, 2*time.Minute)
	guardTo := runningGuard(t, to)
	w2 := watchFailover(t, b, to, name, path)
	t1 := time.Now()
	if err := to.SignalDaemon(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	to2, f2 := w2.failover(t, t1, "daemon killed (SIGKILL)")
	checkGuardFenced(t, to, guardTo, name, f2)
	eventually(t, time.Minute, "the disk counter to resume on "+to2.Name, func() bool {
		line, err := diskLine(path)
		return err == nil && line != f2.fenceLine && diskTickRE.MatchString(line)
	})
	if v, err := to2.C.GetVM(ctxT(t, 30*time.Second), name); err != nil || v.Host != to2.Name || v.State != api.VMRunning {
		t.Fatalf("%s on %s after the second failover: %+v %v", name, to2.Name, v, err)
	}
	t.Logf("guard fenced at %s (hang) and %s (kill); restarted at %s on %s and %s on %s",
		f.fenced.Round(time.Millisecond), f2.fenced.Round(time.Millisecond), f.started.Round(time.Millisecond), to.Name, f2.started.Round(time.Millisecond), to2.Name)
}

// runningGuard is the pid of h's fence guard, checked to run.
func runningGuard(t *testing.T, h *testbed.Host) int {
	t.Helper()
	var pid int
	eventually(t, 10*time.Second, h.Name+"'s fence guard", func() bool {
		var err error
		pid, err = guardPID(h)
		return err == nil
	})
	return pid
}

// guardPID is the pid of h's running fence guard (its pid file, its
// command line).
func guardPID(h *testbed.Host) (int, error) {
	b, err := os.ReadFile(h.GuardPIDFile())
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, err
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "\x00fence-guard\x00") {
		return 0, fmt.Errorf("pid %d is not a fence guard: %q %v", pid, cmdline, err)
	}
	return pid, nil
}

// checkGuardFenced checks that h's guard (pid) killed vm's QEMU within
// guardBound of the failure and exited, and says so in its log.
func checkGuardFenced(t *testing.T, h *testbed.Host, pid int, vm string, f failoverTimes) {
	t.Helper()
	log := h.GuardLog()
	t.Logf("%s's fence guard log:\n%s", h.Name, log)
	if f.fenced > guardBound {
		t.Fatalf("%s's QEMU of %s went %s after its daemon failed, later than fenceAfter + fenceStop = %s", h.Name, vm, f.fenced, guardBound)
	}
	if !strings.Contains(log, fmt.Sprintf("fence-guard[%d]: vm %s: killed its QEMU", pid, vm)) {
		t.Fatalf("%s's guard (pid %d) did not say it killed the QEMU of %s", h.Name, pid, vm)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		if _, err := guardPID(h); err == nil {
			t.Fatalf("%s's guard (pid %d) still runs after it fired", h.Name, pid)
		}
	}
}
