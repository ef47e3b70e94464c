package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

// Volumes attach to a running guest (it sees /dev/vdb appear), grow
// online, detach again, and attach to a stopped VM; a volume is one VM's
// disk at a time and is not deleted while attached or with the VM.
func TestDiskHotplug(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	pool := d.pool
	name := "e2e-hp-" + uniq()
	d.createVM(guestSpec(t, name), true)
	d.waitConsole(name, "GUEST-DEVICES blk=vda ", 0, guestWait)
	vol := pool + "/hp-" + uniq()
	d.MustCLI("volume", "create", vol, "--size", "32MiB")

	off := consoleSize(t, d, name)
	out := d.MustCLI("vm", "disk", "attach", name, vol, "--name", "data")
	if !strings.Contains(out, "as disk data (vdb)") {
		t.Fatalf("attach said %q", out)
	}
	d.waitConsole(name, "GUEST-DEVICES blk=vda,vdb ", off, guestWait)
	if xml, _ := virsh(t, "dumpxml", "--inactive", name); !strings.Contains(xml, "dev='vdb'") {
		t.Fatalf("the definition lacks the attached disk:\n%s", xml)
	}

	// The same volume twice, or into another VM, is refused.
	if _, errOut, code := d.CLI("vm", "disk", "attach", name, vol, "--name", "again"); code != 1 || !strings.Contains(errOut, "already attached") {
		t.Fatalf("attaching twice: exit %d, %q", code, errOut)
	}
	if _, errOut, code := d.CLI("volume", "delete", vol); code != 1 || !strings.Contains(errOut, "in use by vm "+name) {
		t.Fatalf("deleting an attached volume: exit %d, %q", code, errOut)
	}

	// Grow online: the guest sees the new size; shrinking is refused.
	sectors := func() int {
		out, rc := d.guestExec(name, "cat /sys/block/vdb/size", 30*time.Second)
		if rc != 0 {
			t.Fatalf("read vdb size: rc=%d %q", rc, out)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return n
	}
	if n := sectors(); n != 32<<11 {
		t.Fatalf("vdb has %d sectors, want %d", n, 32<<11)
	}
	d.MustCLI("volume", "resize", vol, "--size", "48MiB")
	eventually(t, 30*time.Second, "the guest to see vdb grow", func() bool { return sectors() == 48<<11 })
	if _, errOut, code := d.CLI("volume", "resize", vol, "--size", "40MiB"); code != 1 || !strings.Contains(errOut, "only grow") {
		t.Fatalf("shrinking: exit %d, %q", code, errOut)
	}
	v, _ := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if len(v.Disks) != 2 || v.Disks[1].Size != 48*api.MiB || !v.Disks[1].External {
		t.Fatalf("vm disks after grow: %+v", v.Disks)
	}

	// Detach live: the guest loses vdb; the volume stays.
	off = consoleSize(t, d, name)
	d.MustCLI("vm", "disk", "detach", name, "data")
	d.waitConsole(name, "GUEST-DEVICES blk=vda ", off, guestWait)
	if xml, _ := virsh(t, "dumpxml", "--inactive", name); strings.Contains(xml, "dev='vdb'") {
		t.Fatalf("the definition still has the detached disk:\n%s", xml)
	}
	d.MustCLI("volume", "show", vol)

	// Attach to the stopped VM, grow offline, boot: it has vdb from the start.
	d.MustCLI("vm", "stop", "--force", name)
	d.MustCLI("vm", "disk", "attach", name, vol)
	d.MustCLI("volume", "resize", vol, "--size", "64MiB")
	d.MustCLI("vm", "start", name, "--wait-for", "GUEST-DEVICES blk=vda,vdb ")
	if n := sectors(); n != 64<<11 {
		t.Fatalf("after an offline grow vdb has %d sectors, want %d", n, 64<<11)
	}
	// A made-with-the-VM disk does not detach; deleting the VM leaves the
	// attached volume.
	if _, errOut, code := d.CLI("vm", "disk", "detach", name, "root"); code != 1 || !strings.Contains(errOut, "only attached volumes") {
		t.Fatalf("detaching the root disk: exit %d, %q", code, errOut)
	}
	d.MustCLI("vm", "delete", "--force", name)
	d.MustCLI("volume", "show", vol)

	// A spec's volume: disk; two VMs cannot share it.
	a := guestSpec(t, "e2e-hpa-"+uniq())
	a.Disks = append(a.Disks, api.Disk{Name: "shared", Volume: vol})
	d.createVM(a, true)
	d.waitConsole(a.Name, "GUEST-DEVICES blk=vda,vdb ", 0, guestWait)
	b := guestSpec(t, "e2e-hpb-"+uniq())
	b.Disks = append(b.Disks, api.Disk{Name: "shared", Volume: vol})
	if _, err := d.C.CreateVM(ctxT(t, 10*time.Second), b, clientCreate()); api.Status(err) != 409 || !strings.Contains(err.Error(), a.Name) {
		t.Fatalf("a second VM on the same volume: %v", err)
	}
	d.MustCLI("vm", "delete", "--force", a.Name)
	d.MustCLI("volume", "delete", vol)
}
