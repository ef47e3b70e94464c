package vm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/image"
)

// catalog is a fake image catalog.
type catalog map[string]image.Resolved

func (c catalog) Resolve(_ context.Context, name string) (image.Resolved, error) {
	if r, ok := c[name]; ok {
		return r, nil
	}
	return image.Resolved{}, api.NotFound("image %s not found", name)
}

func (e *env) withCatalog() {
	cat := filepath.Join(e.dir, "cat")
	if err := os.MkdirAll(cat, 0o711); err != nil {
		e.t.Fatal(err)
	}
	for _, f := range []string{"deb.vmlinuz", "deb.initrd"} {
		if err := os.WriteFile(filepath.Join(cat, f), []byte("catalog "+f), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	e.svc.SetImages(catalog{
		"deb": {Name: "deb", Path: "/cat/deb.qcow2", Format: "qcow2", VirtualSize: uint64(2 * api.GiB),
			Boot: &api.Boot{Kernel: filepath.Join(cat, "deb.vmlinuz"), Initrd: filepath.Join(cat, "deb.initrd"), Cmdline: "root=LABEL=root"}},
		"plain": {Name: "plain", Path: "/cat/plain.raw", Format: "raw", VirtualSize: uint64(api.GiB)},
	})
}

func TestDiskSpecValidation(t *testing.T) {
	base := api.VMSpec{Name: "v", CPUs: 1, Memory: 64 * api.MiB, Boot: &api.Boot{Kernel: "/k"}}
	for _, c := range []struct {
		disk api.Disk
		want string
	}{
		{api.Disk{Name: "a", Image: "x", Volume: "p/v"}, "exclude"},
		{api.Disk{Name: "a", Volume: "p/v", Size: api.GiB}, "volume's size"},
		{api.Disk{Name: "a", Volume: "novolume"}, "POOL/VOLUME"},
		{api.Disk{Name: "a", Volume: "p/../../etc"}, "'/'"},
		{api.Disk{Name: "a", Size: api.GiB, Clone: "full"}, "clone"},
		{api.Disk{Name: "a", Image: "x", Clone: "deep"}, "overlay or full"},
		{api.Disk{Name: "a", Image: "../x"}, "'/'"},
		{api.Disk{Name: "a", Image: "a..b"}, "'..'"},
		{api.Disk{Name: "a", Image: "/srv/../etc/x.img"}, "clean absolute path"},
		{api.Disk{Name: "a"}, "a volume"},
	} {
		s := base
		s.Disks = []api.Disk{c.disk}
		wantStatus(t, c.disk.Name+" "+c.want, ValidateStatic(s), 400, c.want)
	}
	s := base
	s.Boot = &api.Boot{Image: "deb", Kernel: "/k"}
	wantStatus(t, "boot.image with kernel", ValidateStatic(s), 400, "boot.image")
	s.Boot = &api.Boot{Image: "deb", Cmdline: "quiet"}
	s.Disks = nil
	if err := ValidateStatic(s); err != nil {
		t.Errorf("boot.image with a cmdline and no disks: %v", err)
	}
	s.CloudInit = &api.CloudInit{Hostname: "no_underscores!"}
	wantStatus(t, "cloudInit", ValidateStatic(s), 400, "cloudInit.hostname")
}

// Catalog images: the disk is an overlay on the image's file, the boot
// takes the image's kernel, and the VM counts as the image's user.
func TestCreateFromCatalogImage(t *testing.T) {
	e := newEnv(t)
	e.withCatalog()
	spec := e.spec("c1")
	spec.Boot = &api.Boot{Image: "deb"}
	spec.Disks = []api.Disk{{Name: "root", Image: "deb", Size: 4 * api.GiB}, {Name: "copy", Image: "plain", Clone: "full"}}
	spec.CloudInit = &api.CloudInit{Hostname: "h1"}
	// clone: full runs qemu-img on the image file, which the fake cannot
	// give; the failure must undo everything.
	op, err := e.svc.Create(e.ctx, spec, CreateOptions{})
	e.fail(op, err)
	if vols := e.volumes(); len(vols) != 0 {
		t.Fatalf("a failed create left volumes %v", vols)
	}
	if _, err := os.Stat(e.svc.seedPath("c1")); !os.IsNotExist(err) {
		t.Fatalf("a failed create left its seed: %v", err)
	}
	spec.Disks = spec.Disks[:1]
	e.create(spec, false)
	v, _ := e.svc.Get(e.ctx, "c1")
	if d := v.Disks[0]; d.Image != "deb" || d.Backing != "/cat/deb.qcow2" || d.Size != 4*api.GiB || d.External {
		t.Fatalf("disk = %+v", d)
	}
	xml, _ := e.f.XML(e.ctx, "c1", true)
	// The domain boots the boot store's copies of the image's files.
	for _, want := range []string{"/boot/", "-deb.vmlinuz<", "-deb.initrd<", "root=LABEL=root", "device=\"cdrom\"", "seeds/c1.iso"} {
		if !strings.Contains(xml, want) {
			t.Errorf("domain XML lacks %s:\n%s", want, xml)
		}
	}
	if _, err := os.Stat(e.svc.seedPath("c1")); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if users, _ := e.svc.ImageUsers(e.ctx, "deb"); len(users) != 1 || users[0] != "c1" {
		t.Fatalf("ImageUsers = %v", users)
	}
	// Smaller than the image, or a missing image: 400s before any op.
	bad := e.spec("c2")
	bad.Disks = []api.Disk{{Name: "root", Image: "deb", Size: api.GiB}}
	_, err = e.svc.Create(e.ctx, bad, CreateOptions{})
	wantStatus(t, "disk smaller than its image", err, 400, "smaller than the image")
	bad.Disks = []api.Disk{{Name: "root", Image: "nope"}}
	_, err = e.svc.Create(e.ctx, bad, CreateOptions{})
	wantStatus(t, "missing image", err, 400, "nope")
	bad.Disks = []api.Disk{{Name: "root", Size: api.GiB}}
	bad.Boot = &api.Boot{Image: "plain"}
	_, err = e.svc.Create(e.ctx, bad, CreateOptions{})
	wantStatus(t, "boot.image without a kernel", err, 400, "no kernel")

	e.succeed(e.svc.Delete(e.ctx, "c1", DeleteOptions{}))
	if _, err := os.Stat(e.svc.seedPath("c1")); !os.IsNotExist(err) {
		t.Fatalf("the seed outlived the VM: %v", err)
	}
}

// Volumes: a spec's volume is attached, not owned; attach and detach on a
// running VM go live; one volume, one VM.
func TestVolumeDisksAndHotplug(t *testing.T) {
	e := newEnv(t)
	if _, err := e.f.EnsurePool(e.ctx, hypervisor.Pool{Name: "data", Path: "/data"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"v1", "v2"} {
		if _, err := e.f.CreateVolume(e.ctx, "data", hypervisor.Volume{Name: n, Capacity: uint64(api.GiB), Format: "raw"}); err != nil {
			t.Fatal(err)
		}
	}
	spec := e.spec("h1")
	spec.Disks = append(spec.Disks, api.Disk{Name: "data", Volume: "data/v1"})
	e.create(spec, true)
	v, _ := e.svc.Get(e.ctx, "h1")
	if d := v.Disks[1]; !d.External || d.Pool != "data" || d.Volume != "v1" || d.Format != "raw" || d.Target != "vdb" {
		t.Fatalf("volume disk = %+v", d)
	}
	other := e.spec("h2")
	other.Disks = []api.Disk{{Name: "data", Volume: "data/v1"}}
	_, err := e.svc.Create(e.ctx, other, CreateOptions{})
	wantStatus(t, "a second VM on v1", err, 409, "h1")

	v, err = e.svc.AttachDisk(e.ctx, "h1", api.DiskAttach{Volume: "data/v2"})
	if err != nil {
		t.Fatal(err)
	}
	if d := v.Disks[2]; d.Name != "v2" || d.Target != "vdc" || !d.External {
		t.Fatalf("attached = %+v", d)
	}
	live, _ := e.f.XML(e.ctx, "h1", false)
	if !strings.Contains(live, "vdc") {
		t.Fatalf("not attached live:\n%s", live)
	}
	_, err = e.svc.AttachDisk(e.ctx, "h1", api.DiskAttach{Volume: "data/v2", Name: "again"})
	wantStatus(t, "attach twice", err, 409, "already attached")
	_, err = e.svc.AttachDisk(e.ctx, "h1", api.DiskAttach{Volume: "data/missing"})
	wantStatus(t, "attach a missing volume", err, 400, "no such volume")
	if users, _ := e.svc.VolumeUsers(e.ctx, "data", "v2"); len(users) != 1 || users[0] != "h1" {
		t.Fatalf("VolumeUsers = %v", users)
	}
	// Online grow goes through the running domain.
	if err := e.svc.ResizeDisk(e.ctx, "h1", "data", "v2", uint64(2*api.GiB)); err != nil {
		t.Fatal(err)
	}
	if calls := strings.Join(e.f.Calls(), "\n"); !strings.Contains(calls, "BlockResize h1/vdc") {
		t.Fatalf("no BlockResize:\n%s", calls)
	}
	wantStatus(t, "shrink", e.svc.ResizeDisk(e.ctx, "h1", "data", "v2", uint64(api.GiB)), 400, "only grow")

	_, err = e.svc.DetachDisk(e.ctx, "h1", "root")
	wantStatus(t, "detach the root disk", err, 409, "only attached volumes")
	if v, err = e.svc.DetachDisk(e.ctx, "h1", "v2"); err != nil || len(v.Disks) != 2 || len(v.Spec.Disks) != 2 {
		t.Fatalf("detach: %+v %v", v.Disks, err)
	}
	// A redefine (apply) keeps the attached volume disk the same.
	xml, _ := e.f.XML(e.ctx, "h1", true)
	if !strings.Contains(xml, "/data/v1") || strings.Contains(xml, "/data/v2") {
		t.Fatalf("definition after detach:\n%s", xml)
	}
	e.succeed(e.svc.Delete(e.ctx, "h1", DeleteOptions{Force: true}))
	if _, err := e.f.VolumeInfo(e.ctx, "data", "v1"); err != nil {
		t.Fatalf("deleting the VM deleted its attached volume: %v", err)
	}
}
