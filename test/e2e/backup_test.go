package e2e

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// fillVolume writes n random bytes at the start of a stopped VM's qcow2
// volume.
func fillVolume(t *testing.T, d *Daemon, path string, n int) {
	t.Helper()
	raw := filepath.Join(d.Dir, "fill.raw")
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(raw, b, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(raw)
	if out, err := exec.Command("qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", raw, path).CombinedOutput(); err != nil {
		t.Fatalf("fill %s: %v\n%s", path, err, out)
	}
}

// rawSHA is the sha256 of a qcow2 volume's guest-visible bytes.
func rawSHA(t *testing.T, d *Daemon, path string) string {
	t.Helper()
	raw := filepath.Join(d.Dir, "sha-"+uniq()+".raw")
	defer os.Remove(raw)
	if out, err := exec.Command("qemu-img", "convert", "-U", "-O", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("read %s: %v\n%s", path, err, out)
	}
	return sha(t, raw)
}

func (d *Daemon) backup(vm string, extra ...string) api.Backup {
	d.t.Helper()
	out := d.MustCLI(append([]string{"backup", "create", vm, "-o", "json"}, extra...)...)
	var b api.Backup
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		d.t.Fatalf("backup create said %q: %v", out, err)
	}
	return b
}

// pausedBackup backs a running VM up while it is paused, and returns the
// backup with the sha256 of the disk at that instant.
func (d *Daemon) pausedBackup(vm, path string) (api.Backup, string) {
	d.t.Helper()
	d.MustCLI("vm", "pause", vm)
	sum := rawSHA(d.t, d, path)
	b := d.backup(vm)
	d.MustCLI("vm", "resume", vm)
	return b, sum
}

func (d *Daemon) restoredSHA(backupID, as string) string {
	d.t.Helper()
	d.MustCLI("backup", "restore", backupID, "--as", as)
	v, err := d.C.GetVM(ctxT(d.t, 10*time.Second), as)
	if err != nil {
		d.t.Fatal(err)
	}
	return rawSHA(d.t, d, v.Disks[0].Path)
}

// A running guest's disk: a full backup, then the guest changes about 1%
// of its blocks and the incremental reads and stores only about that;
// both restore to the exact bytes the disk had at their instant. A daemon
// killed mid-backup leaves the repository consistent; prune keeps exactly
// the newest N; a QEMU crash breaks the checkpoint and the next backup
// falls back to full by itself.
func TestBackupIncrementalRestorePrune(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-bk-" + uniq()
	spec := guestSpec(t, name)
	spec.Disks[0].Size = 128 * api.MiB
	d.createVM(spec, false)
	v, err := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	path := v.Disks[0].Path
	fillVolume(t, d, path, 96<<20)
	op := d.waitOp(d.C.StartVM(ctxT(t, time.Minute), name))
	var sr api.StartResult
	json.Unmarshal(op.Result, &sr)
	d.waitConsole(name, `^tick 1 `, sr.ConsoleOffset, guestWait)

	full, sum1 := d.pausedBackup(name, path)
	if full.Mode != "full" || full.Stats.BytesRead < 96*api.MiB || full.Stats.BytesRead > 97*api.MiB {
		t.Fatalf("first backup: %+v", full)
	}

	// The guest rewrites 5 x 256 KiB at scattered offsets: 1.25 MiB, about
	// 1% of the 128 MiB disk.
	if out, rc := d.guestExec(name, "for o in 37 101 222 305 444; do dd if=/dev/urandom of=/dev/vda bs=4096 count=64 seek=$((o*64)) conv=notrunc 2>/dev/null || exit 1; done; sync", 2*time.Minute); rc != 0 {
		t.Fatalf("guest writes: rc=%d %s", rc, out)
	}
	inc, sum2 := d.pausedBackup(name, path)
	if sum1 == sum2 {
		t.Fatal("the guest's writes did not change the disk")
	}
	changed := api.Size(5 * 256 << 10)
	if inc.Mode != "incremental" || inc.Parent != full.ID {
		t.Fatalf("second backup is not an incremental of the first: %+v", inc)
	}
	if inc.Stats.BytesRead < changed || inc.Stats.BytesRead > changed+512*api.KiB {
		t.Fatalf("incremental read %s for %s changed", inc.Stats.BytesRead.Human(), changed.Human())
	}
	if inc.Stats.BytesStored < changed || inc.Stats.BytesStored > changed+512*api.KiB {
		t.Fatalf("incremental stored %s for %s changed", inc.Stats.BytesStored.Human(), changed.Human())
	}
	if inc.Stats.BytesRead*20 > full.Stats.BytesRead {
		t.Fatalf("incremental read %s, over 5%% of the full's %s", inc.Stats.BytesRead.Human(), full.Stats.BytesRead.Human())
	}
	t.Logf("full: read %s stored %s in %.2fs; incremental: read %s stored %s in %.2fs",
		full.Stats.BytesRead.Human(), full.Stats.BytesStored.Human(), full.Stats.Seconds,
		inc.Stats.BytesRead.Human(), inc.Stats.BytesStored.Human(), inc.Stats.Seconds)

	// Both restore alone, byte for byte.
	if got := d.restoredSHA(full.ID, name+"-r1"); got != sum1 {
		t.Fatalf("restored full backup: sha256 %s, the disk had %s", got, sum1)
	}
	if got := d.restoredSHA(inc.ID, name+"-r2"); got != sum2 {
		t.Fatalf("restored incremental backup: sha256 %s, the disk had %s", got, sum2)
	}
	if _, errOut, code := d.CLI("backup", "restore", inc.ID); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("restore over the running VM: exit %d, %s", code, errOut)
	}

	// Kill the daemon in the middle of a (full) backup, start it again:
	// the next backup works and the repository verifies.
	killed := false
	for try := 0; try < 5 && !killed; try++ {
		op, err := d.C.CreateBackup(ctxT(t, 30*time.Second), name, api.BackupRequest{Full: true})
		if err != nil {
			t.Fatal(err)
		}
		for {
			o, err := d.C.GetOperation(ctxT(t, 10*time.Second), op.ID)
			if err != nil {
				t.Fatal(err)
			}
			if o.State.Final() {
				break
			}
			if strings.HasPrefix(o.Progress.Message, "reading") {
				d.Stop(syscall.SIGKILL)
				d.Start()
				o, err = d.C.GetOperation(ctxT(t, 10*time.Second), op.ID)
				if err != nil || o.State != api.OpFailed || !strings.Contains(o.Error, "interrupted") {
					t.Fatalf("the backup cut off by the kill: %+v, %v", o, err)
				}
				killed = true
				t.Logf("daemon killed mid-backup at %s of %s", api.Size(o.Progress.Current).Human(), api.Size(o.Progress.Total).Human())
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !killed {
		t.Fatal("every backup ended before the daemon could be killed in its middle")
	}
	offset := int64(len(d.console(name)))
	after := d.backup(name)
	if after.Mode != "incremental" {
		t.Fatalf("backup after the daemon's restart: %+v", after)
	}
	// The guest ran through it (never paused by the backup).
	if st := domainState(t, name); st != "running" {
		t.Fatalf("vm is %s after a backup of it running", st)
	}
	d.waitConsole(name, `^tick \d+ `, offset, guestWait)
	d.MustCLI("backup", "verify")

	// Prune keeps exactly the newest two of this VM.
	var list api.BackupList
	json.Unmarshal([]byte(d.MustCLI("backup", "list", name, "-o", "json")), &list)
	if len(list.Backups) < 3 {
		t.Fatalf("%d backups before prune", len(list.Backups))
	}
	newest := []string{list.Backups[len(list.Backups)-2].ID, list.Backups[len(list.Backups)-1].ID}
	d.MustCLI("backup", "prune", "--vm", name, "--keep-last", "2")
	list = api.BackupList{}
	json.Unmarshal([]byte(d.MustCLI("backup", "list", name, "-o", "json")), &list)
	if len(list.Backups) != 2 || list.Backups[0].ID != newest[0] || list.Backups[1].ID != newest[1] {
		t.Fatalf("after prune --keep-last 2: %+v, want %v", list.Backups, newest)
	}
	if out := d.MustCLI("backup", "verify"); !strings.Contains(out, "ok") {
		t.Fatalf("verify after prune: %s", out)
	}
	// The pruned chain's newest still restores exactly: the incremental
	// "after" needed chunks of the pruned full backup.
	d.MustCLI("vm", "pause", name)
	sumNow := rawSHA(t, d, path)
	last := d.backup(name)
	d.MustCLI("vm", "resume", name)
	if got := d.restoredSHA(last.ID, name+"-r3"); got != sumNow {
		t.Fatalf("restored %s after prune: sha256 %s, the disk had %s", last.ID, got, sumNow)
	}

	// A QEMU crash breaks the checkpoint: the next backup is full and says why.
	pid, err := os.ReadFile("/run/libvirt/qemu/" + name + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(atoi(strings.TrimSpace(string(pid))), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the VM to be shut off", func() bool { return domainState(t, name) == "shut off" })
	d.waitOp(d.C.StartVM(ctxT(t, time.Minute), name))
	fb := d.backup(name)
	if fb.Mode != "full" || !(strings.Contains(fb.Note, "broken") || strings.Contains(fb.Note, "gone")) {
		t.Fatalf("backup after a QEMU crash: mode %s, note %q", fb.Mode, fb.Note)
	}
	if next := d.backup(name); next.Mode != "incremental" {
		t.Fatalf("backup after the fallback: %+v", next)
	}
	if _, err := virsh(t, "uri"); err != nil {
		t.Fatalf("libvirtd after the broken checkpoint: %v", err)
	}
}

// A stopped VM is backed up too (started paused for it, stopped again),
// incrementally after the first, its cloud-init seed left out; a VM with
// backups deletes cleanly.
func TestBackupStoppedVM(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-bks-" + uniq()
	spec := guestSpec(t, name)
	// A cloud-init seed CD-ROM is not a disk to back up.
	spec.CloudInit = &api.CloudInit{Hostname: name}
	d.createVM(spec, false)
	v, err := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	fillVolume(t, d, v.Disks[0].Path, 8<<20)
	sum := rawSHA(t, d, v.Disks[0].Path)
	b1 := d.backup(name)
	if domainState(t, name) != "shut off" {
		t.Fatalf("vm is %s after backing it up stopped", domainState(t, name))
	}
	b2 := d.backup(name)
	if b1.Mode != "full" || b2.Mode != "incremental" || b2.Stats.BytesRead > 64*api.KiB {
		t.Fatalf("backups of a stopped VM: %+v / %+v", b1, b2)
	}
	if got := d.restoredSHA(b2.ID, name+"-r"); got != sum {
		t.Fatalf("restored %s: sha256 %s, want %s", b2.ID, got, sum)
	}
	// Schedules: a new schedule runs at once (then every period).
	d.MustCLI("backup", "schedule", name, "--every", "1h", "--keep-last", "1")
	eventually(t, 2*time.Minute, "the scheduled backup", func() bool {
		list, err := d.C.ListBackupSchedules(ctxT(t, 10*time.Second))
		return err == nil && len(list) == 1 && list[0].LastBackup != ""
	})
	list, _ := d.C.ListBackups(ctxT(t, 10*time.Second), name)
	if len(list) != 1 {
		t.Fatalf("after a scheduled run with --keep-last 1: %d backups", len(list))
	}
	d.MustCLI("backup", "schedule", name, "--remove")

	// verify finds a damaged chunk (a byte of a pack's first frame) and
	// names the backup it hurts.
	packs, _ := filepath.Glob(filepath.Join(d.Dir, "state", "backups", "packs", "*", "*"))
	if len(packs) == 0 {
		t.Fatal("no pack files in the repository")
	}
	pf, err := os.OpenFile(packs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pf.WriteAt([]byte("not a zstd frame"), 0)
	if cerr := pf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	out, _, code := d.CLI("backup", "verify")
	if code != 1 || !strings.Contains(out, "DAMAGED "+list[0].ID) {
		t.Fatalf("verify of a damaged repository: exit %d\n%s", code, out)
	}
	op, err := d.C.DeleteVM(ctxT(t, time.Minute), name, client.DeleteOptions{})
	d.waitOp(op, err)
	if out, _ := virsh(t, "list", "--all", "--name"); strings.Contains(out, name+"\n") || strings.HasSuffix(out, name) {
		t.Fatalf("domain left after delete: %s", out)
	}
}

// restore --to: the VM comes back on a peer host (restored here, moved
// there cold) with the data it had at backup time, and nothing is left
// here.
func TestBackupRestoreToPeer(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, false)
	a, bb := b.Hosts[0], b.Hosts[1]
	name := "bk-to-" + uniq()
	sum := onHost(t, a, name)
	out, err := a.CLI("backup", "create", name, "-o", "json")
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	var bk api.Backup
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &bk); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	copyName := name + "-r"
	if out, err := a.CLI("backup", "restore", bk.ID, "--as", copyName, "--to", bb.Name); err != nil || !strings.Contains(out, "on "+bb.Name) {
		t.Fatalf("restore --to %s: %v\n%s", bb.Name, err, out)
	}
	ctx := ctxT(t, time.Minute)
	if _, err := a.C.GetVM(ctx, copyName); api.Status(err) != 404 {
		t.Fatalf("the restored VM is still on %s: %v", a.Name, err)
	}
	if v, err := bb.C.GetVM(ctx, copyName); err != nil || v.State != api.VMStopped {
		t.Fatalf("on %s: %+v %v", bb.Name, v, err)
	}
	if out, err := bb.CLI("vm", "start", copyName, "--wait-for", "GODWIT-GUEST-UP"); err != nil {
		t.Fatalf("start on %s: %v %s", bb.Name, err, out)
	}
	hostWaitConsole(t, bb, copyName, `^tick 1 `, 0, time.Minute)
	checkDisk(t, bb, copyName, sum, 0)
}
