package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/testenv"
	"github.com/godwit-project/godwit/test/testbed"
)

// adoptable is a domain godwit did not make, defined with virsh: the test
// guest on a qcow2 disk in a dir pool of its own, its console logged to a
// file, a VNC display, a USB tablet and a watchdog (things a spec does not
// say), and a NIC on network when one is given. Its files live under dir,
// so the sweeper removes what a killed run leaves.
type adoptable struct {
	name, pool, dir, disk, log string
	kernel, initrd             string // copies of the test guest's
	virsh                      func(args ...string) (string, error)
	// real is where this machine sees a path of the domain's host.
	real func(string) string
}

// With ownBoot the domain boots copies of the guest's kernel and initrd
// kept next to its disk (see bootFiles); without, the guest's own files,
// which every test-bed host sees at one path, as hosts sharing a
// directory of kernels would.
func defineAdoptable(t *testing.T, virsh func(args ...string) (string, error), real func(string) string, dir, name, network string, ownBoot bool) *adoptable {
	t.Helper()
	g := Guest(t)
	a := &adoptable{name: name, pool: "e2e-adopt-" + uniq(), dir: filepath.Join(dir, "adopt-"+name), virsh: virsh, real: real}
	a.disk, a.log = filepath.Join(a.dir, name+".qcow2"), filepath.Join(a.dir, name+".log")
	if err := os.MkdirAll(real(a.dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", real(a.disk), "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	a.kernel, a.initrd = g.Kernel, g.Initrd
	if ownBoot {
		a.bootFiles(t, g)
	}
	t.Cleanup(func() {
		_, _ = virsh("destroy", name)
		_, _ = virsh("undefine", "--checkpoints-metadata", "--snapshots-metadata", name)
		_, _ = virsh("pool-destroy", a.pool)
		_, _ = virsh("pool-undefine", a.pool)
	})
	for _, args := range [][]string{{"pool-define-as", a.pool, "dir", "--target", a.dir}, {"pool-start", a.pool}} {
		if out, err := virsh(args...); err != nil {
			t.Fatalf("virsh %v: %v %s", args, err, out)
		}
	}
	nic := ""
	if network != "" {
		nic = fmt.Sprintf(`<interface type='network'><mac address='52:54:00:ad:0b:%02x'/><source network='%s'/><model type='virtio'/></interface>`, len(name)%256, network)
	}
	x := fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel><initrd>%s</initrd><cmdline>console=ttyS0 quiet</cmdline></os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/><target dev='vda' bus='virtio'/></disk>
    %s
    <serial type='pty'><log file='%s' append='on'/><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <input type='tablet' bus='usb'/>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <watchdog model='i6300esb' action='reset'/>
  </devices>
</domain>`, name, a.kernel, a.initrd, a.disk, nic, a.log)
	file := filepath.Join(a.dir, name+".xml")
	if err := os.WriteFile(real(file), []byte(x), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"define", file}, {"start", name}} {
		if out, err := virsh(args...); err != nil {
			t.Fatalf("virsh %v: %v %s", args, err, out)
		}
	}
	a.waitLog(t, `^tick 2 `, 0)
	return a
}

// bootFiles copies the guest's kernel and initrd next to the domain's
// disk, as its owner would keep them: the checkout may lie where QEMU's
// user cannot reach (/root is 0700), and libvirt does not relabel a
// kernel for a domain godwit did not make.
func (a *adoptable) bootFiles(t *testing.T, g testenv.Guest) {
	t.Helper()
	a.kernel, a.initrd = filepath.Join(a.dir, "vmlinuz"), filepath.Join(a.dir, "initrd.img")
	for from, to := range map[string]string{g.Kernel: a.kernel, g.Initrd: a.initrd} {
		data, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(a.real(to), data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitLog waits for a console line matching re, after byte offset.
func (a *adoptable) waitLog(t *testing.T, re string, offset int) {
	t.Helper()
	pat := regexp.MustCompile(`(?m)` + re)
	eventually(t, 2*time.Minute, "the guest's console to match "+re, func() bool {
		b, _ := os.ReadFile(a.real(a.log))
		return len(b) > offset && pat.Match(b[offset:])
	})
}

func (a *adoptable) logSize() int {
	if a.log == "" {
		return 0
	}
	b, _ := os.ReadFile(a.real(a.log))
	return len(b)
}

func (a *adoptable) xml(t *testing.T, inactive bool) string {
	t.Helper()
	args := []string{"dumpxml", a.name}
	if inactive {
		args = append(args, "--inactive")
	}
	x, err := a.virsh(args...)
	if err != nil {
		t.Fatalf("virsh %v: %v", args, err)
	}
	return x
}

// devices sums up a domain's devices: kind and what tells them apart,
// without where their files are (a migration moves them).
func devices(t *testing.T, x string) []string {
	t.Helper()
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	dev := d.Devices
	var out []string
	for _, k := range dev.Disks {
		out = append(out, "disk "+k.Device+" "+k.Target.Dev+" "+k.Target.Bus+" "+k.Driver.Type)
	}
	for _, i := range dev.Interfaces {
		out = append(out, "interface "+i.MAC.Address+" "+i.Model.Type)
	}
	for _, in := range dev.Inputs {
		out = append(out, "input "+in.Type+" "+in.Bus)
	}
	for _, g := range dev.Graphics {
		kind := "?"
		if g.VNC != nil {
			kind = "vnc"
		}
		out = append(out, "graphics "+kind)
	}
	for _, v := range dev.Videos {
		out = append(out, "video "+v.Model.Type)
	}
	for _, w := range dev.Watchdogs {
		out = append(out, "watchdog "+w.Model+" "+w.Action)
	}
	for _, c := range dev.Controllers {
		out = append(out, "controller "+c.Type+" "+c.Model)
	}
	out = append(out, fmt.Sprintf("serials %d consoles %d channels %d", len(dev.Serials), len(dev.Consoles), len(dev.Channels)))
	if dev.MemBalloon != nil {
		out = append(out, "memballoon "+dev.MemBalloon.Model)
	}
	slices.Sort(out)
	return out
}

// checkKept says whether an adopted VM lists what its spec cannot say.
func checkKept(t *testing.T, v api.VM) {
	t.Helper()
	for _, want := range []string{`<graphics type="vnc"`, `<watchdog model="i6300esb" action="reset"/>`, `<input type="tablet" bus="usb"/>`} {
		if !slices.ContainsFunc(v.Kept, func(k string) bool { return strings.Contains(k, want) }) {
			t.Errorf("%s keeps %q, without %s", v.Name, v.Kept, want)
		}
	}
}

func systemVirsh(args ...string) (string, error) {
	out, err := exec.Command("virsh", args...).CombinedOutput()
	return string(out), err
}

// A domain made with virsh define, running, is adopted without a change
// to it, listed with what its spec cannot say, run, backed up twice,
// snapshotted and watched by godwit, then released: it runs on, and its
// definition is the one it had.
func TestAdoptVirshDomain(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-adopt-" + uniq()
	a := defineAdoptable(t, systemVirsh, func(p string) string { return p }, d.Dir, name, "", true)
	adoptRunRelease(t, d, a, true)
}

// The same with a domain virt-install --import made (Debian's virtinst):
// a q35 machine, a VNC display and whatever else it adds, no console log.
func TestAdoptVirtInstallDomain(t *testing.T) {
	concurrent(t)
	testenv.RequireCommand(t, "virt-install")
	d := StartDaemon(t)
	g := Guest(t)
	name := "e2e-adopt-vi-" + uniq()
	a := &adoptable{name: name, pool: "e2e-adopt-" + uniq(), dir: filepath.Join(d.Dir, "adopt-"+name), virsh: systemVirsh,
		real: func(p string) string { return p }}
	a.disk = filepath.Join(a.dir, name+".qcow2")
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", a.disk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	a.bootFiles(t, g)
	t.Cleanup(func() {
		_, _ = systemVirsh("destroy", name)
		_, _ = systemVirsh("undefine", "--checkpoints-metadata", "--snapshots-metadata", name)
		_, _ = systemVirsh("pool-destroy", a.pool)
		_, _ = systemVirsh("pool-undefine", a.pool)
	})
	for _, args := range [][]string{{"pool-define-as", a.pool, "dir", "--target", a.dir}, {"pool-start", a.pool}} {
		if out, err := systemVirsh(args...); err != nil {
			t.Fatalf("virsh %v: %v %s", args, err, out)
		}
	}
	cmd := exec.Command("virt-install", "--connect", "qemu:///system", "--import", "--name", name, "--virt-type", "qemu",
		"--memory", "192", "--vcpus", "1", "--disk", "path="+a.disk+",format=qcow2,bus=virtio",
		"--boot", "kernel="+a.kernel+",initrd="+a.initrd+",kernel_args=console=ttyS0 quiet",
		"--osinfo", "detect=on,require=off", "--network", "none", "--graphics", "vnc,listen=127.0.0.1",
		"--watchdog", "i6300esb,action=reset", "--input", "tablet,bus=usb", "--noautoconsole")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("virt-install: %v\n%s", err, out)
	}
	eventually(t, time.Minute, name+" to run", func() bool {
		out, _ := systemVirsh("domstate", name)
		return strings.TrimSpace(out) == "running"
	})
	adoptRunRelease(t, d, a, false)
}

// adoptRunRelease adopts a running domain godwit did not make, checks
// that nothing in it changed and that godwit lists what its spec cannot
// say, backs it up twice, snapshots it, reads its stats and metrics,
// stops and starts it, and releases it: it runs on, with the devices it
// had. With logged, the console log shows the guest boot again.
func adoptRunRelease(t *testing.T, d *Daemon, a *adoptable, logged bool) {
	t.Helper()
	name := a.name
	before, beforeLive := a.xml(t, true), a.xml(t, false)

	out := d.MustCLI("vm", "adopt", name, "--dry-run")
	t.Logf("vm adopt %s --dry-run:\n%s", name, out)
	for _, want := range []string{"would be adopted", "cpus: 1", "memory: 192MiB", "volume: " + a.pool + "/" + name + ".qcow2", "<watchdog", "Kept as is"} {
		if !strings.Contains(out, want) {
			t.Errorf("vm adopt --dry-run lacks %q:\n%s", want, out)
		}
	}
	if v, err := d.C.GetVM(ctxT(t, 30*time.Second), name); err != nil || v.Managed {
		t.Fatalf("after a dry run: %+v, %v", v, err)
	}

	if out := d.MustCLI("vm", "adopt", name); !strings.Contains(out, "adopted (running)") {
		t.Errorf("vm adopt: %s", out)
	}
	ctx := ctxT(t, 5*time.Minute)
	v, err := d.C.GetVM(ctx, name)
	if err != nil || !v.Managed || !v.Adopted || v.State != api.VMRunning || v.ConsoleLog != a.log {
		t.Fatalf("adopted: %+v, %v", v, err)
	}
	if s := v.Spec; s.CPUs != 1 || s.Memory != 192*api.MiB || s.Boot == nil || s.Boot.Kernel != a.kernel || len(s.Disks) != 1 {
		t.Fatalf("derived spec %+v", s)
	}
	checkKept(t, v)
	if got := a.xml(t, true); got != before {
		t.Errorf("adopting changed the domain's definition:\n%s\nwas\n%s", got, before)
	}
	if got := a.xml(t, false); !slices.Equal(devices(t, got), devices(t, beforeLive)) {
		t.Errorf("adopting changed the running domain's devices: %v, were %v", devices(t, got), devices(t, beforeLive))
	}
	if show := d.MustCLI("vm", "show", name); !strings.Contains(show, "Adopted:") || !strings.Contains(show, "<watchdog") {
		t.Errorf("vm show:\n%s", show)
	}
	// JSON is YAML: the derived spec as the CLI reads it.
	specFile := filepath.Join(d.Dir, name+"-spec.yaml")
	if b, err := json.Marshal(v.Spec); err != nil || os.WriteFile(specFile, b, 0o644) != nil {
		t.Fatal(err)
	}
	if _, errOut, code := d.CLI("vm", "apply", "-f", specFile); code != 1 || !strings.Contains(errOut, "adopted") {
		t.Errorf("vm apply of an adopted VM: exit %d %s", code, errOut)
	}

	// Backups: a full one, then an incremental one.
	for _, mode := range []string{"full", "incremental"} {
		d.waitOp(d.C.CreateBackup(ctx, name, api.BackupRequest{}))
		b, err := d.C.GetBackup(ctx, name)
		if err != nil || b.Mode != mode || len(b.Disks) != 1 || b.Disks[0].Target != "vda" {
			t.Fatalf("backup %s: %+v, %v", mode, b, err)
		}
	}
	// A snapshot, listed and deleted.
	d.MustCLI("snapshot", "create", name, "s1")
	if out := d.MustCLI("snapshot", "list", name); !strings.Contains(out, "s1") {
		t.Errorf("snapshot list:\n%s", out)
	}
	d.MustCLI("snapshot", "delete", name, "s1")
	// Stats and metrics see it.
	if st, err := d.C.Stats(ctx, name); err != nil || len(st.VMs) != 1 || st.VMs[0].CPUTimeNs == 0 {
		t.Errorf("stats: %+v, %v", st, err)
	}
	m, err := d.C.Metrics(ctx)
	m = withoutHost(m) // every sample carries host="NAME" since the cluster
	if err != nil || !strings.Contains(m, `godwit_vm_cpu_seconds_total{vm="`+name+`"}`) {
		t.Errorf("metrics lack %s's CPU time (%v)", name, err)
	}
	if !regexp.MustCompile(`(?m)^godwit_vm_info\{managed="true",uuid="[^"]+",vm="` + regexp.QuoteMeta(name) + `"\} 1$`).MatchString(m) {
		t.Errorf("metrics do not count %s as managed", name)
	}
	// godwit stops it (ACPI) and starts it.
	d.waitOp(d.C.StopVM(ctx, name, api.StopRequest{Timeout: 120}))
	if v, _ := d.C.GetVM(ctx, name); v.State != api.VMStopped {
		t.Errorf("after vm stop: %s", v.State)
	}
	offset := a.logSize()
	d.waitOp(d.C.StartVM(ctx, name))
	if logged {
		a.waitLog(t, `^tick 2 `, offset)
	}

	// Released, it runs on as plain libvirt's, defined as it was.
	if out := d.MustCLI("vm", "release", name); !strings.Contains(out, "released") {
		t.Errorf("vm release: %s", out)
	}
	if v, err := d.C.GetVM(ctx, name); err != nil || v.Managed || v.State != api.VMRunning {
		t.Fatalf("released: %+v, %v", v, err)
	}
	after := a.xml(t, true)
	if !slices.Equal(devices(t, after), devices(t, before)) {
		t.Errorf("devices after: %v\nbefore: %v", devices(t, after), devices(t, before))
	}
	if after != before {
		t.Logf("the definition after adopt, backups, a snapshot and release differs from before (devices are the same):\n%s\nwas\n%s", after, before)
	}
}

// On two hosts: a domain defined with virsh on the first is adopted,
// backed up, migrated live to the second (its disk copied), backed up
// there, and released there, with the devices it had.
func TestAdoptThenMigrate(t *testing.T) {
	concurrent(t)
	b := migrationBed(t, 2, false)
	src, dst := b.Hosts[0], b.Hosts[1]
	ctx := ctxT(t, 5*time.Minute)
	h, err := src.C.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := "e2e-adopt-mig-" + uniq()
	// A NIC on the daemon's default network, which both hosts have, and
	// the disk in a directory only the first host sees: it is copied.
	a := defineAdoptable(t, src.Virsh, src.RealPath, testbed.HostStateDir, name, h.NetworkPrefix+"-default", false)
	before := a.xml(t, true)

	if out, err := src.CLI("vm", "adopt", name); err != nil {
		t.Fatalf("vm adopt: %v %s", err, out)
	}
	v, err := src.C.GetVM(ctx, name)
	if err != nil || !v.Adopted || len(v.Spec.NICs) != 1 || v.Spec.NICs[0].Network != "default" {
		t.Fatalf("adopted on %s: %+v, %v", src.Name, v, err)
	}
	op, err := src.C.CreateBackup(ctx, name, api.BackupRequest{})
	if err == nil {
		_, err = src.C.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		t.Fatalf("backup on %s: %v", src.Name, err)
	}

	rep := migrate(t, src, name, dst.Name)
	if rep.Mode != "live" || rep.CopiedDisks != 1 {
		t.Fatalf("report %+v", rep)
	}
	moved, err := dst.C.GetVM(ctx, name)
	if err != nil || !moved.Adopted || moved.State != api.VMRunning || !moved.Disks[0].External {
		t.Fatalf("on %s: %+v, %v", dst.Name, moved, err)
	}
	// The spec names the disk where it is now: the copy in the
	// destination's pool.
	if d := moved.Disks[0]; moved.Spec.Disks[0].Volume != d.Pool+"/"+d.Volume || d.Pool == a.pool {
		t.Errorf("on %s: spec disks %+v, disks %+v", dst.Name, moved.Spec.Disks, moved.Disks)
	}
	checkKept(t, moved)
	if _, err := src.Virsh("domstate", name); err == nil {
		t.Errorf("%s still has the domain", src.Name)
	}
	x, err := dst.Virsh("dumpxml", "--inactive", name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(devices(t, x), devices(t, before)) {
		t.Errorf("devices on %s: %v\non %s before: %v", dst.Name, devices(t, x), src.Name, devices(t, before))
	}
	op, err = dst.C.CreateBackup(ctx, name, api.BackupRequest{})
	if err == nil {
		_, err = dst.C.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		t.Fatalf("backup on %s: %v", dst.Name, err)
	}
	t.Cleanup(func() {
		_, _ = dst.Virsh("destroy", name)
		_, _ = dst.Virsh("undefine", "--checkpoints-metadata", "--snapshots-metadata", name)
	})
	if out, err := dst.CLI("vm", "release", name); err != nil {
		t.Fatalf("vm release on %s: %v %s", dst.Name, err, out)
	}
	if v, err := dst.C.GetVM(ctx, name); err != nil || v.Managed || v.State != api.VMRunning {
		t.Fatalf("released on %s: %+v, %v", dst.Name, v, err)
	}
	x, _ = dst.Virsh("dumpxml", "--inactive", name)
	if !slices.Equal(devices(t, x), devices(t, before)) {
		t.Errorf("devices after release: %v\nbefore: %v", devices(t, x), devices(t, before))
	}
}
