package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// A disk with an image is a qcow2 overlay on it: the guest's writes land in
// the overlay (the heartbeat counter in sector 0), the image stays as it
// was. --keep-disks keeps the volume, and its name stays taken.
func TestImageOverlayAndDiskCounter(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	// Not t.TempDir(): its parent is 0700 and QEMU runs as another user.
	dir := d.Dir
	base := filepath.Join(dir, "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "48M").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	baseSum := sha(t, base)
	name := "e2e-disk-" + uniq()
	spec := guestSpec(t, name, "diskcounter=1")
	spec.Disks = []api.Disk{{Name: "root", Image: base, Size: 64 * api.MiB}, {Name: "data", Size: 16 * api.MiB}}
	d.createVM(spec, true)
	d.waitConsole(name, `^tick 4 `, 0, guestWait)
	d.MustCLI("vm", "stop", name)

	v, err := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Disks) != 2 || v.Disks[0].Target != "vda" || v.Disks[1].Target != "vdb" || v.Disks[0].Backing != base {
		t.Fatalf("disks = %+v", v.Disks)
	}
	var info struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
		Backing     string `json:"backing-filename"`
	}
	out, err := exec.Command("qemu-img", "info", "--output=json", "-U", v.Disks[0].Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(out, &info)
	if info.Format != "qcow2" || info.Backing != base || info.VirtualSize != 64<<20 {
		t.Fatalf("overlay = %+v", info)
	}
	// The guest wrote its counter into the overlay; the last console tick
	// matches what the disk holds (fsync'd every tick).
	raw := filepath.Join(dir, "root.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", v.Disks[0].Path, raw).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	sector := make([]byte, 512)
	f, _ := os.Open(raw)
	f.Read(sector)
	f.Close()
	m := regexp.MustCompile(`^tick (\d{8}) `).FindSubmatch(sector)
	if m == nil {
		t.Fatalf("sector 0 of the overlay: %q", bytes.TrimRight(sector[:40], "\x00"))
	}
	if got, want := atoi(string(m[1])), lastTick(d.console(name)); got != want {
		t.Fatalf("disk counter %d, console's last tick %d", got, want)
	}
	if sha(t, base) != baseSum {
		t.Fatal("the guest's writes reached the base image")
	}

	// Delete with --keep-disks keeps both volumes.
	d.MustCLI("vm", "delete", "--keep-disks", name)
	for _, disk := range v.Disks {
		if _, err := os.Stat(disk.Path); err != nil {
			t.Fatalf("--keep-disks lost %s: %v", disk.Path, err)
		}
	}
	if _, err := d.C.CreateVM(ctxT(t, 10*time.Second), spec, client.CreateOptions{}); api.Status(err) != 409 || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("create over kept volumes: %v, want 409", err)
	}
	for _, disk := range v.Disks {
		virsh(t, "vol-delete", "--pool", disk.Pool, disk.Volume)
	}
}

// apply: live changes apply to a running VM, changes that need it stopped
// are refused with the reason, and apply once stopped; virsh sees them.
func TestApply(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-apply-" + uniq()
	spec := guestSpec(t, name)
	spec.Labels = map[string]string{"tier": "one"}
	d.createVM(spec, true)

	spec.Labels = map[string]string{"tier": "two"}
	spec.Autostart = true
	out := d.MustCLI("vm", "apply", "-f", specYAML(t, spec))
	if !strings.Contains(out, "labels: changed") || !strings.Contains(out, "autostart: false -> true") {
		t.Fatalf("apply said %q", out)
	}
	if out, _ := virsh(t, "dominfo", name); !regexp.MustCompile(`Autostart:\s+enable`).MatchString(out) {
		t.Fatalf("virsh dominfo after autostart: true:\n%s", out)
	}
	if out := d.MustCLI("vm", "apply", "-f", specYAML(t, spec)); !strings.Contains(out, "nothing to change") {
		t.Fatalf("second apply said %q", out)
	}

	spec.Memory = 256 * api.MiB
	spec.Disks = append(spec.Disks, api.Disk{Name: "extra", Size: 8 * api.MiB})
	_, errOut, code := d.CLI("vm", "apply", "-f", specYAML(t, spec))
	if code != 1 || !strings.Contains(errOut, "need it stopped") || !strings.Contains(errOut, "memory: 192MiB -> 256MiB") || !strings.Contains(errOut, "add extra") {
		t.Fatalf("offline changes on a running VM: exit %d, %q", code, errOut)
	}
	d.MustCLI("vm", "stop", name)
	out = d.MustCLI("vm", "apply", "-f", specYAML(t, spec))
	if !strings.Contains(out, "memory: 192MiB -> 256MiB") {
		t.Fatalf("apply when stopped said %q", out)
	}
	if xml, _ := virsh(t, "dumpxml", "--inactive", name); !strings.Contains(xml, "<memory unit='KiB'>262144</memory>") || !strings.Contains(xml, "dev='vdb'") {
		t.Fatalf("libvirt did not get the new memory and disk:\n%s", xml)
	}
	d.MustCLI("vm", "start", name, "--wait-for", "GUEST-DEVICES blk=vda,vdb")

	// Never removes or shrinks a disk.
	spec.Disks = spec.Disks[:1]
	if _, errOut, code := d.CLI("vm", "apply", "-f", specYAML(t, spec)); code != 1 || !strings.Contains(errOut, "removing disk extra") {
		t.Fatalf("removing a disk: exit %d, %q", code, errOut)
	}
	// A VM that does not exist is created.
	other := guestSpec(t, "e2e-apply2-"+uniq())
	if out := d.MustCLI("vm", "apply", "-f", specYAML(t, other)); !strings.Contains(out, "created") {
		t.Fatalf("apply of a new VM said %q", out)
	}
}

// The console follows the guest live from the CLI.
func TestConsoleFollow(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-con-" + uniq()
	d.createVM(guestSpec(t, name), true)
	cmd := exec.Command(godwitBin, "vm", "console", name)
	cmd.Env = append(os.Environ(), "GODWIT_SOCKET="+d.Socket)
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	eventually(t, time.Minute, "the followed console to show tick 3", func() bool {
		return strings.Contains(out.String(), "tick 3 ")
	})
	if !strings.Contains(out.String(), "GODWIT-GUEST-UP") {
		t.Fatalf("follow missed the boot line:\n%s", out.String())
	}
	if tail := d.MustCLI("vm", "console", name, "--no-follow", "--lines", "1"); strings.Count(tail, "\n") != 1 || !strings.HasPrefix(tail, "tick ") {
		t.Fatalf("--lines 1 gave %q", tail)
	}
}
