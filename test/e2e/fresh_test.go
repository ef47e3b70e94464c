package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// qemuUID is the user QEMU runs as on the system libvirtd (its DAC label).
func qemuUID(t *testing.T) (uid, gid int) {
	t.Helper()
	out, err := virsh(t, "capabilities")
	if err != nil {
		t.Fatalf("virsh capabilities: %v", err)
	}
	m := regexp.MustCompile(`<baselabel type='qemu'>\+(\d+):\+(\d+)</baselabel>`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no DAC base label in the capabilities:\n%s", out)
	}
	uid, _ = strconv.Atoi(m[1])
	gid, _ = strconv.Atoi(m[2])
	return uid, gid
}

// What a newcomer's machine does to a stock libvirtd: boot files in a
// directory QEMU cannot enter (a checkout in /root), two VMs of the same
// kernel, initrd and base image at once, and the kernel's owner changed
// while one runs (another libvirtd, a rebuild). Each used to fail: QEMU's
// "could not open kernel file ... Permission denied", and libvirt's
// "Setting different DAC user or group ... which is already in use".
func TestSharedBootFilesOnSystemLibvirtd(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	g := Guest(t)
	uid, gid := qemuUID(t)
	if uid == 0 {
		t.Fatalf("the system libvirtd runs QEMU as root: this test needs the stock libvirt-qemu user")
	}
	home, err := os.MkdirTemp("/var/tmp", "gw-home-") // 0700, like /root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	kernel, initrd := filepath.Join(home, "vmlinuz"), filepath.Join(home, "initrd.gz")
	for src, dst := range map[string]string{g.Kernel: kernel, g.Initrd: initrd} {
		if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	base := filepath.Join(home, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	// A disk image QEMU would open in place under that directory is
	// refused before anything is made, naming the path, QEMU's user and
	// the fix.
	spec := guestSpec(t, "fresh-img-"+uniq())
	spec.Boot.Kernel, spec.Boot.Initrd = kernel, initrd
	spec.Disks = []api.Disk{{Name: "root", Image: base}}
	_, err = d.C.CreateVM(ctxT(t, time.Minute), spec, client.CreateOptions{Start: true})
	if api.Status(err) != 400 {
		t.Fatalf("an image under a 0700 dir: %v (status %d), want 400", err, api.Status(err))
	}
	for _, want := range []string{"disks[0].image: " + base, fmt.Sprintf("uid %d", uid), "cannot enter " + home, "chmod o+x " + home} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal lacks %q: %v", want, err)
		}
	}
	if st := domainState(t, spec.Name); st != "absent" {
		t.Errorf("a refused create left a domain (%s)", st)
	}

	// The same image through the catalog, which QEMU reaches: two VMs of
	// one kernel, one initrd and one base image, started at the same time.
	d.waitOp(d.C.ImportImage(ctxT(t, time.Minute), api.ImageImport{Name: "fresh-base", Path: base}))
	names := []string{"fresh-a-" + uniq(), "fresh-b-" + uniq()}
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		s := guestSpec(t, name)
		s.Boot.Kernel, s.Boot.Initrd = kernel, initrd
		s.Disks = []api.Disk{{Name: "root", Image: "fresh-base"}}
		wg.Add(1)
		go func(i int, s api.VMSpec) {
			defer wg.Done()
			op, err := d.C.CreateVM(ctxT(t, 2*time.Minute), s, client.CreateOptions{Start: true})
			if err == nil {
				op, err = d.C.WaitOperation(ctxT(t, 2*time.Minute), op.ID, nil)
			}
			if err == nil && op.State != api.OpSucceeded {
				err = fmt.Errorf("%s", op.Error)
			}
			errs[i] = err
		}(i, s)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create and start %s: %v", names[i], err)
		}
	}
	for _, name := range names {
		d.waitConsole(name, "GODWIT-GUEST-UP", 0, guestWait)
	}
	// Both boot the daemon's one copy of the kernel, owned by QEMU's user.
	var kernels []string
	for _, name := range names {
		xml, err := virsh(t, "dumpxml", "--inactive", name)
		if err != nil {
			t.Fatal(err)
		}
		k := regexp.MustCompile(`<kernel>([^<]+)</kernel>`).FindStringSubmatch(xml)
		if k == nil || k[1] == kernel || !strings.HasPrefix(k[1], filepath.Join(d.Dir, "state", "boot")+"/") {
			t.Fatalf("vm %s boots %v, want the daemon's copy of %s", name, k, kernel)
		}
		kernels = append(kernels, k[1])
	}
	if kernels[0] != kernels[1] {
		t.Errorf("the two VMs boot two copies of one kernel: %v", kernels)
	}
	st, err := os.Stat(kernels[0])
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); int(s.Uid) != uid || int(s.Gid) != gid || st.Mode().Perm() != 0o644 {
		t.Errorf("the copy is %d:%d %v, want %d:%d 0644", s.Uid, s.Gid, st.Mode().Perm(), uid, gid)
	}

	// The user's kernel changes owner while both run: a third VM of it
	// still starts, and stopping one VM leaves the other running.
	if err := os.Chown(kernel, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	third := guestSpec(t, "fresh-c-"+uniq())
	third.Boot.Kernel, third.Boot.Initrd = kernel, initrd
	if op := d.createVM(third, true); op.State != api.OpSucceeded {
		t.Fatalf("a third VM of the same kernel after its owner changed: %s", op.Error)
	}
	d.waitConsole(third.Name, "GODWIT-GUEST-UP", 0, guestWait)
	d.waitOp(d.C.StopVM(ctxT(t, time.Minute), names[0], api.StopRequest{Force: true}))
	tick := lastTick(d.console(names[1]))
	d.waitConsole(names[1], fmt.Sprintf(`tick %d `, tick+2), 0, 30*time.Second)

	// A VM that never ran: its console says so instead of printing nothing.
	quiet := guestSpec(t, "fresh-q-"+uniq())
	if op := d.createVM(quiet, false); op.State != api.OpSucceeded {
		t.Fatalf("create %s: %s", quiet.Name, op.Error)
	}
	out, errOut, code := d.CLI("vm", "console", quiet.Name, "--no-follow")
	if code != 0 || out != "" || !strings.Contains(errOut, "has not run yet") {
		t.Errorf("console of a VM that never ran: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
