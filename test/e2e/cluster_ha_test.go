package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/test/testbed"
)

// An HA VM on the shared pool runs on hosta; hosta's links are cut:
// hosta stops its copy itself (no QEMU of it there), and only after that
// another host restarts it (its console shows it booting there, its disk
// counter resumes); when hosta's links return it does not start the VM
// again and drops its domain.
func TestClusterHA(t *testing.T) {
	b, name, path := haBed(t, "ha-")
	a := b.Hosts[0]

	w := watchFailover(t, b, a, name, path)
	t0 := time.Now()
	if err := a.Cut(); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			a.Restore()
		}
	}()
	to, f := w.failover(t, t0, "cut")
	started, failover, fenceLine := f.started, f.ticked, f.fenceLine
	// The documented bound on the claim: 17.5 s after the cut (one
	// renewal 2s + leaseTTL 6s + election and expiry check 1.5s +
	// restartDelay 8s), with a little slack for the 2 cores.
	if started > 25*time.Second {
		t.Fatalf("%s restarted %s after the cut, later than the documented 17.5 s + slack", name, started)
	}
	eventually(t, time.Minute, "the disk counter to resume on "+to.Name, func() bool {
		line, err := diskLine(path)
		return err == nil && line != fenceLine && diskTickRE.MatchString(line)
	})
	if v, err := to.C.GetVM(ctxT(t, 30*time.Second), name); err != nil || v.Host != to.Name || v.State != api.VMRunning {
		t.Fatalf("%s on %s after the failover: %+v %v", name, to.Name, v, err)
	}

	// hosta comes back: it finds the VM moved and leaves it alone.
	if err := a.Restore(); err != nil {
		t.Fatal(err)
	}
	restored = true
	eventually(t, time.Minute, "hosta back in the cluster", func() bool {
		out, err := a.CLI("host", "show", "-o", "json")
		return err == nil && !strings.Contains(out, "fenced")
	})
	eventually(t, time.Minute, "hosta to drop its domain of "+name, func() bool {
		_, err := a.Virsh("domstate", name)
		return err != nil
	})
	time.Sleep(10 * time.Second)
	if len(a.QEMUs(name)) != 0 {
		t.Fatalf("hosta started %s again after it came back", name)
	}
	if len(to.QEMUs(name)) != 1 {
		t.Fatalf("%s runs %d QEMUs of %s", to.Name, len(to.QEMUs(name)), name)
	}
	if h := hostOfVM(t, a, name); h != to.Name {
		t.Fatalf("hosta says %s is on %s, want %s", name, h, to.Name)
	}
	if seen := w.problems(); len(seen) > 0 {
		t.Fatalf("two writers after hosta came back: %v", seen)
	}
	t.Logf("failover seconds: %.1f (cut to the first tick on %s)", failover.Seconds(), to.Name)
}

// haBed is three hosts in a cluster with a shared pool, hosta running
// an HA VM (named prefix+uniq) that writes its disk counter, at path.
func haBed(t *testing.T, prefix string) (*testbed.Bed, string, string) {
	b := newBedOpts(t, testbed.Options{Hosts: 3, SharedPool: true})
	if _, err := b.Cluster(ctxT(t, 3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	a := b.Hosts[0]
	name := prefix + uniq()
	spec := guestSpec(t, name, "diskcounter=1")
	spec.HA = api.HARestart
	createOn(t, a, spec, true)
	hostWaitConsole(t, a, name, `^tick 3 `, 0, 2*time.Minute)
	return b, name, diskPath(t, a, name)
}

// diskLine is the line the guest's disk counter last wrote to sector 0,
// read from the disk file with qemu-img -U (while QEMU holds it).
func diskLine(path string) (string, error) {
	dir, err := os.MkdirTemp("", "gw-sector-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	raw := filepath.Join(dir, "s0.raw")
	if out, err := exec.Command("qemu-img", "dd", "-U", "-f", "qcow2", "-O", "raw", "bs=512", "count=1", "if="+path, "of="+raw).CombinedOutput(); err != nil {
		return "", fmt.Errorf("read sector 0 of %s: %v: %s", path, err, out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\x00"), nil
}

// failoverWatch watches, every 100 ms, where the QEMUs of an HA VM run
// and its disk counter: once the first host's copy is gone nothing may
// write the disk until another host's runs, and two never run at once.
type failoverWatch struct {
	b        *testbed.Bed
	from     *testbed.Host
	vm, path string

	mu        sync.Mutex
	fencedAt  time.Time
	startedAt time.Time
	startedOn *testbed.Host
	atFence   string
	seen      []string
	stop      chan struct{}
	wg        sync.WaitGroup
}

func watchFailover(t *testing.T, b *testbed.Bed, from *testbed.Host, vm, path string) *failoverWatch {
	w := &failoverWatch{b: b, from: from, vm: vm, path: path, stop: make(chan struct{})}
	w.wg.Add(1)
	go w.run()
	t.Cleanup(func() { close(w.stop); w.wg.Wait() })
	return w
}

func (w *failoverWatch) run() {
	defer w.wg.Done()
	for i := 0; ; i++ {
		onFrom := len(w.from.QEMUs(w.vm)) > 0
		var other *testbed.Host
		for _, h := range w.b.Hosts {
			if h != w.from && len(h.QEMUs(w.vm)) > 0 {
				other = h
			}
		}
		w.mu.Lock()
		if onFrom && other != nil {
			w.seen = append(w.seen, fmt.Sprintf("QEMUs of %s on %s and %s at once", w.vm, w.from.Name, other.Name))
		}
		if !onFrom && w.fencedAt.IsZero() {
			w.fencedAt = time.Now()
			w.atFence, _ = diskLine(w.path)
		}
		if other != nil && w.startedAt.IsZero() {
			w.startedAt, w.startedOn = time.Now(), other
		}
		between := !w.fencedAt.IsZero() && w.startedAt.IsZero()
		w.mu.Unlock()
		if between && i%5 == 0 {
			if line, err := diskLine(w.path); err == nil && line != w.atFence {
				w.mu.Lock()
				w.seen = append(w.seen, fmt.Sprintf("the disk counter moved after %s's copy went, before another host started it: %q -> %q", w.from.Name, w.atFence, line))
				w.mu.Unlock()
			}
		}
		select {
		case <-w.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *failoverWatch) problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// failoverTimes are, from the failure, when the first host's copy went,
// when another's started, and when its guest ticked there.
type failoverTimes struct {
	fenced, started, ticked time.Duration
	fenceLine               string
}

// failover waits for another host to restart the VM and its guest to
// tick there, checking that the first host's copy went first and that
// no two wrote the disk.
func (w *failoverWatch) failover(t *testing.T, t0 time.Time, what string) (*testbed.Host, failoverTimes) {
	t.Helper()
	var to *testbed.Host
	eventually(t, 90*time.Second, "another host to restart "+w.vm, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		to = w.startedOn
		return to != nil
	})
	eventually(t, 2*time.Minute, w.vm+" to boot on "+to.Name, func() bool {
		if seen := w.problems(); len(seen) > 0 {
			t.Fatalf("two writers: %v", seen)
		}
		out, err := to.CLI("vm", "console", w.vm, "--no-follow")
		return err == nil && strings.Contains(out, "GODWIT-GUEST-UP") && lastTick(out) >= 1
	})
	ticked := time.Since(t0)
	w.mu.Lock()
	f := failoverTimes{fenced: w.fencedAt.Sub(t0), started: w.startedAt.Sub(t0), ticked: ticked, fenceLine: w.atFence}
	fencedAt := w.fencedAt
	w.mu.Unlock()
	t.Logf("failover: %s %s; its copy went at %s (disk: %q), %s started it at %s, its guest ticked at %s",
		w.from.Name, what, f.fenced.Round(time.Millisecond), f.fenceLine, to.Name, f.started.Round(time.Millisecond), ticked.Round(time.Millisecond))
	if seen := w.problems(); len(seen) > 0 {
		t.Fatalf("two writers: %v", seen)
	}
	for _, l := range strings.Split(to.DaemonLog(), "\n") {
		if strings.Contains(l, "HA") || strings.Contains(l, "lease is gone") {
			t.Logf("%s: %s", to.Name, l)
		}
	}
	if fencedAt.IsZero() || f.fenced >= f.started {
		t.Fatalf("%s's QEMU gone at %s, %s's started at %s: %s must stop its copy first", w.from.Name, f.fenced, to.Name, f.started, w.from.Name)
	}
	if len(w.from.QEMUs(w.vm)) != 0 {
		t.Fatalf("%s still runs a QEMU of %s", w.from.Name, w.vm)
	}
	return to, f
}

// An HA VM's host stops its daemon cleanly, which leaves its HA VMs
// running and marks it frozen: the other hosts do not restart the VM
// when its lease runs out. Then the host dies (its QEMU killed, as a
// power loss would): the VM waits for it. `cluster remove` refuses it
// without --force, naming the VM; with --force another host restarts the
// VM, its disk counter goes on from where it stopped with no second
// writer, and the removed host leaves the status once the VM's record
// has moved.
func TestClusterRemoveFrozenHost(t *testing.T) {
	b, name, path := haBed(t, "frozen-")
	a, hb, c := b.Hosts[0], b.Hosts[1], b.Hosts[2]
	a.StopDaemon(syscall.SIGTERM)
	// Past the lease (6 s) and the restart delay (8 s), with slack.
	eventually(t, time.Minute, "hostb to see hosta's lease gone", func() bool {
		for _, h := range clusterStatus(t, hb).Hosts {
			if h.Name == "hosta" {
				return !h.Alive
			}
		}
		return false
	})
	time.Sleep(15 * time.Second)
	if n := len(a.QEMUs(name)); n != 1 {
		t.Fatalf("hosta runs %d QEMUs of %s after its clean stop, want 1 (frozen: it runs on)", n, name)
	}
	for _, h := range []*testbed.Host{hb, c} {
		if n := len(h.QEMUs(name)); n != 0 {
			t.Fatalf("%s restarted %s of the frozen hosta (%d QEMUs)", h.Name, name, n)
		}
	}

	w := watchFailover(t, b, a, name, path)
	t0 := time.Now()
	for _, pid := range a.QEMUs(name) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "hosta's QEMU to be gone", func() bool { return len(a.QEMUs(name)) == 0 })
	out, err := hb.CLI("cluster", "remove", "hosta")
	if err == nil || !strings.Contains(out, name) || !strings.Contains(out, "--force") {
		t.Fatalf("cluster remove of the frozen hosta without --force: %v\n%s", err, out)
	}
	time.Sleep(3 * time.Second)
	for _, h := range []*testbed.Host{hb, c} {
		if n := len(h.QEMUs(name)); n != 0 {
			t.Fatalf("%s restarted %s after a refused remove", h.Name, name)
		}
	}
	removed := time.Now()
	if out := mustCLI(t, hb, "cluster", "remove", "hosta", "--force"); !strings.Contains(out, "hosta removed") {
		t.Fatalf("cluster remove hosta --force:\n%s", out)
	}
	to, f := w.failover(t, t0, "stopped cleanly, then its QEMU killed")
	t.Logf("restarted on %s %s after the remove", to.Name, (f.started - removed.Sub(t0)).Round(time.Millisecond))
	eventually(t, time.Minute, "the disk counter to resume on "+to.Name, func() bool {
		line, err := diskLine(path)
		return err == nil && line != f.fenceLine && diskTickRE.MatchString(line)
	})
	if v, err := c.C.GetVM(ctxT(t, 30*time.Second), name); err != nil || v.Host != to.Name || v.State != api.VMRunning {
		t.Fatalf("%s seen from hostc after the remove: %+v %v", name, v, err)
	}
	eventually(t, 30*time.Second, "hosta to leave hostc's status", func() bool {
		st := clusterStatus(t, c)
		return st.Ready && st.Voters == 2 && len(st.Hosts) == 2 && !slices.ContainsFunc(st.Hosts, func(h api.ClusterHost) bool { return h.Name == "hosta" })
	})
}
