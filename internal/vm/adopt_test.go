package vm

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// foreignXML is a domain as virsh define takes it: a disk volume of the
// test pool, a NIC on a libvirt network godwit does not manage, a VNC
// display and a tablet.
func (e *env) foreignXML(name, disk string) string {
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>128</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel><cmdline>console=ttyS0</cmdline></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/><target dev='vda' bus='virtio'/></disk>
    <interface type='network'><mac address='52:54:00:aa:bb:01'/><source network='outside'/><model type='virtio'/></interface>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <input type='tablet' bus='usb'/>
    <graphics type='vnc' port='-1' autoport='yes'/>
  </devices>
</domain>`, name, e.kernel, disk)
}

// defineAdoptable defines a domain godwit did not make, on a volume of the
// test pool, and returns its XML as libvirt keeps it.
func (e *env) defineAdoptable(name string) string {
	e.t.Helper()
	vol, err := e.f.CreateVolume(e.ctx, testPool, hypervisor.Volume{Name: name + ".qcow2", Capacity: uint64(api.GiB), Format: "qcow2"})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.f.Define(e.ctx, e.foreignXML(name, vol.Path)); err != nil {
		e.t.Fatal(err)
	}
	x, err := e.f.XML(e.ctx, name, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

func TestAdoptDerivesKeepsAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	if _, err := e.f.DefineNetwork(e.ctx, "<network><name>outside</name></network>"); err != nil {
		t.Fatal(err)
	}
	if err := e.f.StartNetwork(e.ctx, "outside"); err != nil {
		t.Fatal(err)
	}
	before := e.defineAdoptable("old1")

	dry, err := e.svc.Adopt(e.ctx, "old1", true)
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || !dry.VM.Adopted || !dry.VM.Managed {
		t.Fatalf("dry run: %+v", dry)
	}
	if v, _ := e.svc.Get(e.ctx, "old1"); v.Managed {
		t.Fatal("a dry run recorded the VM")
	}

	res, err := e.svc.Adopt(e.ctx, "old1", false)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.Get(e.ctx, "old1")
	if err != nil || !v.Managed || !v.Adopted || res.DryRun {
		t.Fatalf("after adopt: %+v, %v", v, err)
	}
	s := v.Spec
	if s.CPUs != 2 || s.Memory != 128*api.MiB || s.Boot == nil || s.Boot.Kernel != e.kernel || len(s.Disks) != 1 || s.Disks[0].Volume != testPool+"/old1.qcow2" {
		t.Fatalf("derived spec %+v", s)
	}
	if len(v.Disks) != 1 || !v.Disks[0].External || v.Disks[0].Target != "vda" || v.Disks[0].Size != api.GiB {
		t.Fatalf("disks %+v", v.Disks)
	}
	// The NIC is on a network godwit does not manage: kept, with the
	// display and the tablet.
	for _, want := range []string{`<graphics type="vnc"`, `<input type="tablet" bus="usb"/>`, `<source network="outside"/>`} {
		if !slices.ContainsFunc(v.Kept, func(k string) bool { return strings.Contains(k, want) }) {
			t.Errorf("kept %q lacks %s", v.Kept, want)
		}
	}
	if len(s.NICs) != 0 {
		t.Errorf("spec NICs %+v", s.NICs)
	}
	if after, _ := e.f.XML(e.ctx, "old1", true); after != before {
		t.Errorf("adopting changed the domain:\n%s\nwas\n%s", after, before)
	}

	// godwit runs it now; it does not rewrite it from a spec.
	e.succeed(e.svc.Start(e.ctx, "old1"))
	if _, err := e.svc.Apply(e.ctx, *s, ApplyOptions{}); api.Status(err) != 409 || !strings.Contains(err.Error(), "adopted") {
		t.Fatalf("apply an adopted VM: %v", err)
	}
	if _, err := e.svc.Adopt(e.ctx, "old1", false); api.Status(err) != 409 {
		t.Fatalf("adopt twice: %v", err)
	}

	// Release: godwit forgets it; it runs on, as it was.
	rv, err := e.svc.Release(e.ctx, "old1")
	if err != nil || rv.Managed || rv.State != api.VMRunning {
		t.Fatalf("release: %+v, %v", rv, err)
	}
	if after, _ := e.f.XML(e.ctx, "old1", true); after != before {
		t.Errorf("adopt and release changed the domain")
	}
	if _, err := e.svc.Release(e.ctx, "old1"); api.Status(err) != 409 {
		t.Fatalf("release an unmanaged domain: %v", err)
	}
}

// Deleting an adopted VM undefines its domain and leaves its disks.
func TestDeleteAdopted(t *testing.T) {
	e := newEnv(t)
	e.defineAdoptable("old2")
	if _, err := e.svc.Adopt(e.ctx, "old2", false); err != nil {
		t.Fatal(err)
	}
	e.succeed(e.svc.Delete(e.ctx, "old2", DeleteOptions{}))
	if _, err := e.f.Lookup(e.ctx, "old2"); err == nil {
		t.Fatal("the domain is still there")
	}
	if _, err := e.f.VolumeInfo(e.ctx, testPool, "old2.qcow2"); err != nil {
		t.Fatalf("its disk went too: %v", err)
	}
}

func TestAdoptRefuses(t *testing.T) {
	e := newEnv(t)
	e.succeed(e.svc.Create(e.ctx, e.spec("mine"), CreateOptions{}))
	if _, err := e.f.Define(e.ctx, e.foreignXML("nopool", "/somewhere/else.qcow2")); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(e.foreignXML("theirs", "/x.qcow2"), "<devices>",
		`<metadata><g:vm xmlns:g="https://godwit.dev/xmlns/vm/1"><g:owner>another-daemon</g:owner></g:vm></metadata><devices>`, 1)
	if _, err := e.f.Define(e.ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := e.f.RunTransient(e.ctx, e.foreignXML("fleeting", filepath.Join(e.dir, "pool", "x"))); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct {
		status int
		says   string
	}{
		"mine":     {409, "already"},
		"nope":     {404, "nope"},
		"nopool":   {409, "no libvirt storage pool"},
		"theirs":   {409, "another godwit daemon"},
		"fleeting": {409, "transient"},
		"bad name": {400, "domrename"},
	} {
		_, err := e.svc.Adopt(e.ctx, name, true)
		if api.Status(err) != want.status || !strings.Contains(err.Error(), want.says) {
			t.Errorf("adopt %s: %v, want %d saying %q", name, err, want.status, want.says)
		}
	}
	if _, err := e.svc.Release(e.ctx, "mine"); api.Status(err) != 409 || !strings.Contains(err.Error(), "not adopted") {
		t.Errorf("release a VM godwit made: %v", err)
	}
}

// A NIC on one of godwit's networks is in the spec, by the network's name.
func TestAdoptNICOnGodwitNetwork(t *testing.T) {
	e, nets := newNetEnv(t)
	lab, err := nets.Get(e.ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	vol, err := e.f.CreateVolume(e.ctx, testPool, hypervisor.Volume{Name: "n1.qcow2", Capacity: uint64(api.GiB)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Define(e.ctx, strings.Replace(e.foreignXML("n1", vol.Path), "network='outside'", "network='"+lab.Libvirt+"'", 1)); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Adopt(e.ctx, "n1", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.VM.Spec.NICs; len(n) != 1 || n[0].Network != "lab" || n[0].MAC != "52:54:00:aa:bb:01" || n[0].Model != "virtio" {
		t.Fatalf("spec NICs %+v", n)
	}
	if len(res.VM.NICs) != 1 || res.VM.NICs[0].Network != "lab" {
		t.Fatalf("NICs %+v", res.VM.NICs)
	}
	for _, k := range res.VM.Kept {
		if strings.Contains(k, "<interface") {
			t.Errorf("the NIC is kept too: %s", k)
		}
	}
	if users, _ := e.svc.NetworkUsers(e.ctx, "lab"); !slices.Contains(users, "n1") {
		t.Errorf("lab's users %v lack n1", users)
	}
}

// An adopted VM that arrives from another host stays adopted, its disks
// its own, its spec naming them where they are now.
func TestAdoptedVMArrives(t *testing.T) {
	e := newEnv(t)
	m := Moving{Name: "old3", UUID: "1234", Adopted: true, Kept: []string{"<sound model=\"ich9\"/>"},
		Spec:  api.VMSpec{Name: "old3", CPUs: 1, Memory: 64 * api.MiB, Disks: []api.Disk{{Name: "vda", Volume: "images/old3.qcow2"}}},
		Disks: []api.VMDisk{{Name: "vda", Target: "vda", Pool: testPool, Volume: "old3-vda", Path: "/p/old3-vda"}}}
	if err := e.svc.AdoptMoved(e.ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.Get(e.ctx, "old3")
	if err != nil {
		t.Fatal(err)
	}
	if !v.Adopted || len(v.Kept) != 1 || !v.Disks[0].External || v.Spec.Disks[0].Volume != testPool+"/old3-vda" {
		t.Fatalf("arrived: %+v", v)
	}
	if m.Spec.Disks[0].Volume != "images/old3.qcow2" {
		t.Fatal("the move's spec was changed in place")
	}
}
