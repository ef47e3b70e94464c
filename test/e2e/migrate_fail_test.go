package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/test/testbed"
)

// slowMigration starts a live migration that takes a while: the guest
// rewrites 32 MiB of RAM in a loop and the stream is capped at 4 MiB/s, so
// precopy never converges on its own.
func slowMigration(t *testing.T, from *testbed.Host, vm, to string, extra api.MigrateRequest) api.Operation {
	t.Helper()
	extra.To, extra.Policy, extra.BandwidthMiB = to, api.PolicyPrecopy, 4
	op, err := from.C.MigrateVM(ctxT(t, time.Minute), vm, extra)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	// Wait until data flows.
	eventually(t, time.Minute, "the migration to move data", func() bool {
		o, err := from.C.GetOperation(ctxT(t, 10*time.Second), op.ID)
		return err == nil && (o.Progress.Current > 0 || o.State.Final())
	})
	return op
}

// stillHere checks the VM runs on h, managed, and its counter goes on
// without a reboot.
func stillHere(t *testing.T, h *testbed.Host, vm string) {
	t.Helper()
	v, err := h.C.GetVM(ctxT(t, 30*time.Second), vm)
	if err != nil || !v.Managed || v.State != api.VMRunning {
		t.Fatalf("vm %s on %s: %+v, %v", vm, h.Name, v, err)
	}
	before := lastTick(hostConsole(t, h, vm))
	hostWaitConsole(t, h, vm, `^tick `+itoa(before+2)+` `, 0, time.Minute)
	// One boot line where it booted, none where it arrived by migration.
	if n := strings.Count(hostConsole(t, h, vm), "GODWIT-GUEST-UP"); n > 1 {
		t.Fatalf("the guest booted %d times", n)
	}
}

// stayed checks that a failed move left the VM whole on from: it runs
// there, managed, its counter going on; its disk file is still there,
// holds the data (sum) and takes the guest's writes; and to runs no QEMU
// of it.
func stayed(t *testing.T, from, to *testbed.Host, vm, srcDisk, sum string) {
	t.Helper()
	stayedHere(t, from, vm, srcDisk, sum)
	noQEMU(t, to, vm)
}

// stayedHere is stayed without the look at the destination.
func stayedHere(t *testing.T, from *testbed.Host, vm, srcDisk, sum string) {
	t.Helper()
	stillHere(t, from, vm)
	if _, err := os.Stat(srcDisk); err != nil {
		t.Fatalf("the source disk of %s: %v", vm, err)
	}
	if got := diskPath(t, from, vm); got != srcDisk {
		t.Fatalf("vm %s on %s now uses disk %s, not %s", vm, from.Name, got, srcDisk)
	}
	checkDisk(t, from, vm, sum, lastTick(hostConsole(t, from, vm)))
}

// noTrace checks that h kept nothing of the VM: no godwit VM, no libvirt
// domain, no disk file.
func noTrace(t *testing.T, h *testbed.Host, vm string, within time.Duration) {
	t.Helper()
	eventually(t, within, "no trace of "+vm+" on "+h.Name, func() bool {
		if _, err := h.C.GetVM(ctxT(t, 10*time.Second), vm); api.Status(err) != 404 {
			return false
		}
		if _, err := h.Virsh("domstate", vm); err == nil {
			return false
		}
		files, _ := filepath.Glob(filepath.Join(h.RealPath(testbed.HostStateDir+"/pool"), vm+"-*"))
		return len(files) == 0
	})
}

func opEnded(t *testing.T, h *testbed.Host, id string) api.Operation {
	t.Helper()
	op, _ := h.C.WaitOperation(ctxT(t, 3*time.Minute), id, nil)
	if !op.State.Final() {
		t.Fatalf("operation %s did not end: %+v", id, op)
	}
	return op
}

func TestMigrateCancel(t *testing.T) {
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-cancel-" + uniq()
	sum := onHost(t, a, name, "dirty=32")
	srcDisk := diskPath(t, a, name)
	op := slowMigration(t, a, name, bb.Name, api.MigrateRequest{})
	if out, err := a.CLI("op", "cancel", op.ID); err != nil || !strings.Contains(out, "cancelled") {
		t.Fatalf("op cancel: %v %s", err, out)
	}
	if got := opEnded(t, a, op.ID); got.State != api.OpCancelled {
		t.Fatalf("operation %+v", got)
	}
	stayed(t, a, bb, name, srcDisk, sum)
	noTrace(t, bb, name, time.Minute)
}

// The link dies for good during a live migration with shared storage (only
// memory moves): godwit sees no data move, aborts, the VM runs on here.
func TestMigrateLinkCutShared(t *testing.T) {
	b := migrationBed(t, 2, true)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-cut-" + uniq()
	sum := onHost(t, a, name, "dirty=32")
	srcDisk := diskPath(t, a, name)
	op := slowMigration(t, a, name, bb.Name, api.MigrateRequest{ProgressTimeoutSeconds: 8})
	if err := bb.Cut(); err != nil {
		t.Fatal(err)
	}
	got := opEnded(t, a, op.ID)
	if got.State != api.OpFailed || !strings.Contains(got.Error, "no data moved") || !strings.Contains(got.Error, "keeps running on hosta") {
		t.Fatalf("operation %+v", got)
	}
	stayed(t, a, bb, name, srcDisk, sum)
	// The destination undoes the move by itself once the source is silent,
	// and keeps the shared disk (it is the VM's, still running here).
	noTraceButDisk(t, bb, name, 2*time.Minute)
	bb.Restore()
	stayed(t, a, bb, name, srcDisk, sum)
}

// The link drops for a while during a migration that copies the disk.
// QEMU's disk mirror waits for the dead connection until TCP gives up or the
// link returns; when it returns, the aborted move ends, the VM runs on
// here with its disk intact, and the destination has undone its side.
func TestMigrateLinkCutCopy(t *testing.T) {
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-cutc-" + uniq()
	sum := onHost(t, a, name, "dirty=32")
	srcDisk := diskPath(t, a, name)
	op := slowMigration(t, a, name, bb.Name, api.MigrateRequest{ProgressTimeoutSeconds: 8})
	if err := bb.Cut(); err != nil {
		t.Fatal(err)
	}
	// The destination gives up on the silent source (20s here).
	eventually(t, 2*time.Minute, "the destination to drop the move", func() bool {
		return strings.Contains(bb.DaemonLog(), "abandoning an incoming migration")
	})
	bb.Restore()
	got := opEnded(t, a, op.ID)
	if got.State != api.OpFailed || !strings.Contains(got.Error, "keeps running on hosta") {
		t.Fatalf("operation %+v", got)
	}
	stayed(t, a, bb, name, srcDisk, sum)
	noTrace(t, bb, name, 2*time.Minute)
}

// noTraceButDisk is noTrace for shared storage: the disk stays.
func noTraceButDisk(t *testing.T, h *testbed.Host, vm string, within time.Duration) {
	t.Helper()
	eventually(t, within, "no VM "+vm+" on "+h.Name, func() bool {
		if _, err := h.C.GetVM(ctxT(t, 10*time.Second), vm); api.Status(err) != 404 {
			return false
		}
		_, err := h.Virsh("domstate", vm)
		return err != nil
	})
}

func TestMigrateDestLibvirtdKilled(t *testing.T) {
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-lvk-" + uniq()
	sum := onHost(t, a, name, "dirty=32")
	srcDisk := diskPath(t, a, name)
	op := slowMigration(t, a, name, bb.Name, api.MigrateRequest{ProgressTimeoutSeconds: 10})
	bb.StopLibvirtd(syscall.SIGKILL)
	got := opEnded(t, a, op.ID)
	// The destination daemon sees its libvirt connection break and drops
	// the move; the source hears it at its next keepalive and aborts.
	if got.State != api.OpFailed || !strings.Contains(got.Error, "hostb dropped the migration") || !strings.Contains(got.Error, "keeps running on hosta") {
		t.Fatalf("operation %+v", got)
	}
	t.Logf("the migration failed with: %s", got.Error)
	stayedHere(t, a, name, srcDisk, sum)
	// The incoming QEMU outlives its killed libvirtd; the restarted one
	// must end it.
	if err := bb.StartLibvirtd(ctxT(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	noTrace(t, bb, name, 2*time.Minute)
	noQEMU(t, bb, name)
	// And the VM can move there once the destination is whole again.
	rep := migrate(t, a, name, bb.Name)
	if rep.To != bb.Name {
		t.Fatalf("report %+v", rep)
	}
}

func TestMigrateDestDaemonKilled(t *testing.T) {
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "mig-dk-" + uniq()
	sum := onHost(t, a, name, "dirty=32")
	srcDisk := diskPath(t, a, name)
	op := slowMigration(t, a, name, bb.Name, api.MigrateRequest{ProgressTimeoutSeconds: 10})
	bb.StopDaemon(syscall.SIGKILL)
	got := opEnded(t, a, op.ID)
	// The dead daemon's libvirt connection closes, which makes libvirt
	// destroy the incoming domain: the source's Perform fails on it.
	if got.State != api.OpFailed || !strings.Contains(got.Error, "migration perform") || !strings.Contains(got.Error, "keeps running on hosta") {
		t.Fatalf("operation %+v", got)
	}
	t.Logf("the migration failed with: %s", got.Error)
	stayed(t, a, bb, name, srcDisk, sum)
	if err := bb.StartDaemon(ctxT(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	noTrace(t, bb, name, 2*time.Minute)
}

// An offline stream whose destination QEMU dies mid-stream: the move
// fails saying so, the guest (paused by the move) runs on here with its
// disk whole, and the destination keeps nothing of it. A VM paused before
// such a move stays paused.
func TestMigrateOfflineStreamDestQEMUKilled(t *testing.T) {
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	for _, paused := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "paused"}[paused], func(t *testing.T) {
			name := "mig-offk-" + uniq()
			sum := onHost(t, a, name, "dirty=32")
			srcDisk := diskPath(t, a, name)
			if paused {
				if out, err := a.CLI("vm", "pause", name); err != nil {
					t.Fatalf("pause: %v %s", err, out)
				}
			}
			// 4 MiB/s: the disk and the memory take tens of seconds.
			op, err := a.C.MigrateVM(ctxT(t, time.Minute), name, api.MigrateRequest{To: bb.Name, Mode: api.MigrateOffline, BandwidthMiB: 4})
			if err != nil {
				t.Fatalf("migrate: %v", err)
			}
			eventually(t, time.Minute, "the stream to move data", func() bool {
				o, err := a.C.GetOperation(ctxT(t, 10*time.Second), op.ID)
				return err == nil && (o.Progress.Current > 0 || o.State.Final())
			})
			if v, err := a.C.GetVM(ctxT(t, 10*time.Second), name); err != nil || v.State != api.VMPaused {
				t.Fatalf("vm %s during its offline move: %+v %v; want it paused", name, v, err)
			}
			pids := bb.QEMUs(name)
			if len(pids) != 1 {
				t.Fatalf("QEMUs of %s on %s: %v", name, bb.Name, pids)
			}
			if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			got := opEnded(t, a, op.ID)
			want := map[bool]string{false: "keeps running on hosta", true: "stays paused, as it was, on hosta"}[paused]
			if got.State != api.OpFailed || !strings.Contains(got.Error, want) {
				t.Fatalf("operation %+v, want it to say %q", got, want)
			}
			t.Logf("the move failed with: %s", got.Error)
			if paused {
				if v, err := a.C.GetVM(ctxT(t, 10*time.Second), name); err != nil || !v.Managed || v.State != api.VMPaused {
					t.Fatalf("vm %s paused before the move: %+v %v; want it still paused here", name, v, err)
				}
				if out, err := a.CLI("vm", "resume", name); err != nil {
					t.Fatalf("resume: %v %s", err, out)
				}
			}
			stayed(t, a, bb, name, srcDisk, sum)
			noTrace(t, bb, name, time.Minute)
		})
	}
}
