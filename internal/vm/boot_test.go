package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// A VM boots the boot store's copy of its kernel, owned by QEMU's user,
// while vm show keeps the file the spec named; two VMs of one kernel
// share one copy.
func TestBootFilesAreCopied(t *testing.T) {
	e := newEnv(t)
	me := &hypervisor.DACLabel{UID: os.Getuid(), GID: os.Getgid()}
	h, _ := e.f.HostInfo(e.ctx)
	h.QEMU = me
	e.f.SetHostInfo(h)
	e.create(e.spec("a"), false)
	e.create(e.spec("b"), false)
	xmlA, _ := e.f.XML(e.ctx, "a", true)
	xmlB, _ := e.f.XML(e.ctx, "b", true)
	store := filepath.Join(e.dir, "boot") + "/"
	if strings.Contains(xmlA, "<kernel>"+e.kernel+"<") || !strings.Contains(xmlA, "<kernel>"+store) || !strings.Contains(xmlA, "<initrd>"+store) {
		t.Fatalf("domain a does not boot the store's copies:\n%s", xmlA)
	}
	kernel := between(xmlA, "<kernel>", "</kernel>")
	if got := between(xmlB, "<kernel>", "</kernel>"); got != kernel {
		t.Errorf("two VMs of one kernel boot %s and %s, want one copy", kernel, got)
	}
	body, err := os.ReadFile(kernel)
	orig, _ := os.ReadFile(e.kernel)
	if err != nil || string(body) != string(orig) {
		t.Errorf("copy %s: %q (%v), want the kernel's bytes", kernel, body, err)
	}
	v, _ := e.svc.Get(e.ctx, "a")
	if v.Spec.Boot.Kernel != e.kernel {
		t.Errorf("vm show's spec names %s, want the user's %s", v.Spec.Boot.Kernel, e.kernel)
	}
	// Deleting both leaves the (fresh) copy to a later prune, never a
	// copy that a VM still boots.
	e.succeed(e.svc.Delete(e.ctx, "a", DeleteOptions{}))
	if _, err := os.Stat(kernel); err != nil {
		t.Errorf("b still boots %s, which went with a: %v", kernel, err)
	}
}

// A file QEMU's user cannot reach is refused before anything is made,
// with the path, the user, the directory in the way and the fix.
func TestUnreachableDiskImageRefused(t *testing.T) {
	e := newEnv(t)
	h, _ := e.f.HostInfo(e.ctx)
	h.QEMU = &hypervisor.DACLabel{UID: 64055, GID: 64055}
	e.f.SetHostInfo(h)
	closed := openTree(t, "home")
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(closed, "base.qcow2")
	e.svc.img = fakeImages{img: {Format: "qcow2", VirtualSize: uint64(api.GiB)}}
	spec := e.spec("c")
	spec.Disks = []api.Disk{{Name: "root", Image: img}}
	_, err := e.svc.Create(e.ctx, spec, CreateOptions{})
	wantStatus(t, "image under a 0700 dir", err, 400, "disks[0].image: "+img)
	for _, want := range []string{"uid 64055", "cannot enter " + closed, "chmod o+x " + closed} {
		if err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if names := e.f.DomainNames(); len(names) != 0 || len(e.volumes()) != 0 {
		t.Errorf("a refused create left domains %v, volumes %v", names, e.volumes())
	}
	if err := os.Chmod(closed, 0o711); err != nil {
		t.Fatal(err)
	}
	e.create(spec, false)
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	out, _, _ := strings.Cut(rest, b)
	return out
}

// openTree makes a directory that others may search down to it (unlike
// t.TempDir, which is 0700), with a subdirectory sub, and returns sub.
func openTree(t *testing.T, sub string) string {
	t.Helper()
	top, err := os.MkdirTemp("", "godwit-access-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(top, sub)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
