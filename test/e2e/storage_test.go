package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/testenv"
)

// poolJSON reads `godwit pool show -o json`.
func (d *Daemon) poolJSON(name string) api.Pool {
	d.t.Helper()
	var p api.Pool
	if err := json.Unmarshal([]byte(d.MustCLI("pool", "show", name, "-o", "json")), &p); err != nil {
		d.t.Fatal(err)
	}
	return p
}

// removePool is a cleanup for a pool a test made: godwit first, virsh if
// that failed half-way.
func (d *Daemon) removePool(name string) {
	d.t.Cleanup(func() {
		if _, _, code := d.CLI("pool", "delete", name); code != 0 {
			virsh(d.t, "pool-destroy", name)
			virsh(d.t, "pool-undefine", name)
		}
	})
}

// A dir pool: made where its parent exists, refused where it does not,
// marked shared, listed with the daemon's default pool, deleted only once
// empty (and its directory with it).
func TestPoolDir(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	name := "e2e-pool-" + uniq()
	path := filepath.Join(d.Dir, "dirpool")
	d.removePool(name)

	_, errOut, code := d.CLI("pool", "create", name, "--path", filepath.Join(d.Dir, "missing", "sub"))
	if code != 1 || !strings.Contains(errOut, "does not exist on this host") {
		t.Fatalf("pool on a missing path: exit %d, %q", code, errOut)
	}
	if _, err := virsh(t, "pool-info", name); err == nil {
		t.Fatal("a refused pool was defined in libvirt")
	}
	d.MustCLI("pool", "create", name, "--path", path, "--shared")
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		t.Fatalf("pool directory: %v", err)
	}
	p := d.poolJSON(name)
	if !p.Shared || !p.Active || p.Type != "dir" || p.Capacity == 0 || p.Available == 0 || p.Default {
		t.Fatalf("pool = %+v", p)
	}
	if _, _, code := d.CLI("pool", "create", name, "--path", path); code != 1 {
		t.Fatal("a second pool of the same name was accepted")
	}
	list := d.MustCLI("pool", "list")
	if !strings.Contains(list, name) || !strings.Contains(list, "default") || !strings.Contains(list, "shared") {
		t.Fatalf("pool list:\n%s", list)
	}
	d.MustCLI("volume", "create", name+"/v1", "--size", "8MiB")
	if _, errOut, code := d.CLI("pool", "delete", name); code != 1 || !strings.Contains(errOut, "v1") {
		t.Fatalf("deleting a pool with a volume: exit %d, %q", code, errOut)
	}
	d.MustCLI("volume", "delete", name+"/v1")
	d.MustCLI("pool", "delete", name)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the empty pool directory stayed: %v", err)
	}
	if _, err := virsh(t, "pool-info", name); err == nil {
		t.Fatal("libvirt still has the deleted pool")
	}
	// The daemon's own pool is not for deleting.
	h, _ := d.C.Host(ctxT(t, 10*time.Second))
	if _, errOut, code := d.CLI("pool", "delete", h.Pool); code != 1 || !strings.Contains(errOut, "own disk pool") {
		t.Fatalf("deleting the default pool: exit %d, %q", code, errOut)
	}
}

// loopDevice attaches a new file of size bytes as a loop device.
func loopDevice(t *testing.T, dir string, size int64) string {
	t.Helper()
	testenv.RequireCommand(t, "losetup")
	f := filepath.Join(dir, "loop-"+uniq()+".img")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", f).CombinedOutput()
	if err != nil {
		testenv.Skip(t, "no free loop device: "+strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// An fs pool: libvirt makes the filesystem on a loop device (--build)
// and mounts it; volumes go in it; deleting the pool unmounts it.
func TestPoolFSOnLoopDevice(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	dev := loopDevice(t, d.Dir, 128<<20)
	name := "e2e-fs-" + uniq()
	mnt := filepath.Join(d.Dir, "fsmnt")
	d.removePool(name)
	if _, errOut, code := d.CLI("pool", "create", name, "--type", "fs", "--device", "/dev/no-such-disk", "--path", mnt); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("fs pool on a missing device: exit %d, %q", code, errOut)
	}
	d.MustCLI("pool", "create", name, "--type", "fs", "--device", dev, "--path", mnt, "--build")
	p := d.poolJSON(name)
	if p.Type != "fs" || p.Source != dev || p.Capacity < 100<<20 || p.Capacity > 128<<20 || p.Volumes != 0 {
		t.Fatalf("fs pool = %+v", p)
	}
	if m, _ := os.ReadFile("/proc/self/mounts"); !strings.Contains(string(m), dev+" "+mnt+" ext4") {
		t.Fatalf("%s is not mounted on %s:\n%s", dev, mnt, m)
	}
	d.MustCLI("volume", "create", name+"/v1", "--size", "16MiB")
	if _, err := os.Stat(filepath.Join(mnt, "v1")); err != nil {
		t.Fatalf("volume file on the fs pool: %v", err)
	}
	d.MustCLI("volume", "delete", name+"/v1")
	d.MustCLI("pool", "delete", name)
	if m, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(m), mnt) {
		t.Fatalf("%s still mounted after pool delete", mnt)
	}
}

// LVM needs device-mapper, which this machine's kernel lacks.
func TestPoolLogical(t *testing.T) {
	if b, _ := os.ReadFile("/proc/misc"); !strings.Contains(string(b), "device-mapper") {
		testenv.SkipUnsupported(t, "no device-mapper (no /proc/misc entry), so no LVM; unit tests pin the pool XML")
	}
	testenv.RequireCommand(t, "vgcreate")
	d := StartDaemon(t)
	dev := loopDevice(t, d.Dir, 128<<20)
	name := "e2e-vg-" + uniq()
	d.removePool(name)
	t.Cleanup(func() { exec.Command("vgremove", "-f", name).Run(); exec.Command("pvremove", "-f", dev).Run() })
	d.MustCLI("pool", "create", name, "--type", "logical", "--device", dev, "--build")
	if p := d.poolJSON(name); p.Type != "logical" || p.Path != "/dev/"+name || p.Capacity == 0 {
		t.Fatalf("logical pool = %+v", p)
	}
	d.MustCLI("volume", "create", name+"/lv1", "--size", "16MiB", "--format", "raw")
	if st, err := os.Stat("/dev/" + name + "/lv1"); err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Fatalf("logical volume device: %v", err)
	}
	d.MustCLI("volume", "delete", name+"/lv1")
	d.MustCLI("pool", "delete", name)
}

// NFS needs the kernel's NFS client and a server; this machine has neither.
func TestPoolNetFS(t *testing.T) {
	if b, _ := os.ReadFile("/proc/filesystems"); !strings.Contains(string(b), "\tnfs\n") && !strings.Contains(string(b), "\tnfs4\n") {
		testenv.SkipUnsupported(t, "no NFS client (nfs is not in /proc/filesystems); unit tests pin the pool XML")
	}
	testenv.RequireCommand(t, "exportfs")
	d := StartDaemon(t)
	export := filepath.Join(d.Dir, "export")
	os.MkdirAll(export, 0o755)
	if out, err := exec.Command("exportfs", "-o", "rw,no_root_squash,insecure", "127.0.0.1:"+export).CombinedOutput(); err != nil {
		testenv.Skip(t, "no NFS server to export from: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("exportfs", "-u", "127.0.0.1:"+export).Run() })
	name := "e2e-nfs-" + uniq()
	mnt := filepath.Join(d.Dir, "nfsmnt")
	d.removePool(name)
	d.MustCLI("pool", "create", name, "--type", "netfs", "--source-host", "127.0.0.1", "--export", export, "--path", mnt, "--shared")
	if p := d.poolJSON(name); p.Type != "netfs" || !p.Shared || p.Source != "127.0.0.1:"+export {
		t.Fatalf("netfs pool = %+v", p)
	}
	d.MustCLI("volume", "create", name+"/v1", "--size", "8MiB")
	if _, err := os.Stat(filepath.Join(export, "v1")); err != nil {
		t.Fatalf("the volume is not on the export: %v", err)
	}
	d.MustCLI("volume", "delete", name+"/v1")
	d.MustCLI("pool", "delete", name)
}

// Volumes: create, upload (streamed, checked), download, grow but never
// shrink, clone, bad input, and nothing half-made after a failed upload.
func TestVolumes(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	pool := d.pool
	file := filepath.Join(d.Dir, "data.bin")
	data := make([]byte, 24<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	os.WriteFile(file, data, 0o644)
	want := sha(t, file)

	out := d.MustCLI("volume", "upload", pool+"/up", file, "--create")
	if !strings.Contains(out, want) {
		t.Fatalf("upload said %q, want sha256 %s", out, want)
	}
	back := filepath.Join(d.Dir, "back.bin")
	d.MustCLI("volume", "download", pool+"/up", back)
	if got := sha(t, back); got != want {
		t.Fatalf("downloaded sha256 %s, uploaded %s", got, want)
	}
	// A wrong checksum fails the upload, and the volume it made is gone.
	_, errOut, code := d.CLI("volume", "upload", pool+"/up2", file, "--create", "--sha256", strings.Repeat("0", 64))
	if code != 1 || !strings.Contains(errOut, "sha256") {
		t.Fatalf("upload with a wrong sha256: exit %d, %q", code, errOut)
	}
	if _, _, code := d.CLI("volume", "show", pool+"/up2"); code != 1 {
		t.Fatal("a failed upload left its volume")
	}
	// Bad input.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", pool + "/v", "--size", "10XB"}, "unknown unit"},
		{[]string{"volume", "create", pool + "/v", "--size", "12"}, "below the minimum"},
		{[]string{"volume", "create", pool + "/..", "--size", "1GiB"}, "'..'"},
		{[]string{"volume", "create", pool + "/a..b", "--size", "1GiB"}, "'..'"},
		{[]string{"volume", "create", "no-such-pool-" + uniq() + "/v", "--size", "1GiB"}, "not found"},
		{[]string{"volume", "create", "novolume", "--size", "1GiB"}, "POOL/VOLUME"},
	} {
		_, errOut, code := d.CLI(c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("godwit %s: exit %d, %q; want an error saying %q", strings.Join(c.args, " "), code, errOut, c.want)
		}
	}
	// Grow, never shrink.
	d.MustCLI("volume", "create", pool+"/g", "--size", "32MiB")
	if _, errOut, code := d.CLI("volume", "resize", pool+"/g", "--size", "16MiB"); code != 1 || !strings.Contains(errOut, "only grow") {
		t.Fatalf("shrink: exit %d, %q", code, errOut)
	}
	d.MustCLI("volume", "resize", pool+"/g", "--size", "64MiB")
	var v api.Volume
	json.Unmarshal([]byte(d.MustCLI("volume", "show", pool+"/g", "-o", "json")), &v)
	if v.Capacity != 64*api.MiB {
		t.Fatalf("after grow: %+v", v)
	}
	// A clone is an independent copy.
	d.MustCLI("volume", "clone", pool+"/up", "up-copy")
	d.MustCLI("volume", "download", pool+"/up-copy", back)
	if got := sha(t, back); got != want {
		t.Fatalf("clone sha256 %s, want %s", got, want)
	}
	if _, _, code := d.CLI("volume", "clone", pool+"/up", "up-copy"); code != 1 {
		t.Fatal("a clone over an existing volume was accepted")
	}
	list := d.MustCLI("volume", "list", "--pool", pool)
	for _, n := range []string{"/up ", "/up-copy ", "/g "} {
		if !strings.Contains(list, n) {
			t.Errorf("volume list lacks %s:\n%s", n, list)
		}
	}
}

// Volume bytes through libvirt's RPC streams, the path block volumes take
// (the daemon moves file volumes itself unless told otherwise).
func TestVolumeStreamsThroughLibvirt(t *testing.T) {
	t.Setenv("GODWIT_VOLUME_IO", "libvirt")
	d := StartDaemon(t)
	file := filepath.Join(d.Dir, "data.bin")
	data := make([]byte, 6<<20+512)
	for i := range data {
		data[i] = byte(i>>9 + i)
	}
	os.WriteFile(file, data, 0o644)
	want := sha(t, file)
	if out := d.MustCLI("volume", "upload", d.pool+"/lv", file, "--create"); !strings.Contains(out, want) {
		t.Fatalf("upload said %q, want %s", out, want)
	}
	back := filepath.Join(d.Dir, "back.bin")
	d.MustCLI("volume", "download", d.pool+"/lv", back)
	if got := sha(t, back); got != want {
		t.Fatalf("downloaded %s, uploaded %s", got, want)
	}
}
