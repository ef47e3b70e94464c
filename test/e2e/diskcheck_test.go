package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/test/testbed"
)

// The data the migration tests follow: 16 MiB of random bytes the guest
// writes at 1 MiB into its disk. After a move that carries the guest's RAM,
// a plain read would be answered from the guest's page cache, so a lost or
// empty disk copy would pass; these read past every cache: the guest drops
// its caches and reads with O_DIRECT, and the host reads the disk file.
const (
	dataOffMiB = 1
	dataLenMiB = 16
)

// writeGuestData writes the data (fsync'd) and returns its SHA-256 as the
// guest reads it back from the disk.
func writeGuestData(t *testing.T, h *testbed.Host, vm string) string {
	t.Helper()
	out, rc := hostGuestExec(t, h, vm, fmt.Sprintf("dd if=/dev/urandom of=/dev/vda bs=1M seek=%d count=%d conv=fsync 2>/dev/null", dataOffMiB, dataLenMiB))
	if rc != 0 {
		t.Fatalf("write data in %s on %s: rc=%d %s", vm, h.Name, rc, out)
	}
	return guestDiskSum(t, h, vm)
}

// guestDiskSum is the guest's SHA-256 of the data, read from the disk
// itself: page cache dropped, O_DIRECT.
func guestDiskSum(t *testing.T, h *testbed.Host, vm string) string {
	t.Helper()
	cmd := fmt.Sprintf("sync; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=1M skip=%d count=%d iflag=direct 2>/dev/null | sha256sum", dataOffMiB, dataLenMiB)
	out, rc := hostGuestExec(t, h, vm, cmd)
	f := strings.Fields(out)
	if rc != 0 || len(f) == 0 || len(f[0]) != 64 {
		t.Fatalf("read data in %s on %s: %q rc=%d", vm, h.Name, out, rc)
	}
	return f[0]
}

var diskTickRE = regexp.MustCompile(`^tick (\d{8}) `)

// hostDisk reads a disk file on the host (qemu-img -U: while QEMU holds
// it) and returns the SHA-256 of the data range and the tick the guest's
// disk counter (diskcounter=1) last wrote to sector 0 (0 for none).
func hostDisk(t *testing.T, path string) (sum string, tick int) {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-U", "-O", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("read disk %s: %v: %s", path, err, out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	if len(b) < (dataOffMiB+dataLenMiB)<<20 {
		t.Fatalf("disk %s holds %d bytes, less than the data's end", path, len(b))
	}
	h := sha256.Sum256(b[dataOffMiB<<20 : (dataOffMiB+dataLenMiB)<<20])
	if m := diskTickRE.FindSubmatch(b[:512]); m != nil {
		tick = atoi(string(m[1]))
	}
	return hex.EncodeToString(h[:]), tick
}

// hostDiskAll is the SHA-256 of all a disk file holds, as the guest sees
// it (qemu-img -U, raw).
func hostDiskAll(t *testing.T, path string) string {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-U", "-O", "raw", path, raw).CombinedOutput(); err != nil {
		t.Fatalf("read disk %s: %v: %s", path, err, out)
	}
	defer os.Remove(raw)
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// diskPath is where the VM's first disk is, as this machine sees it.
func diskPath(t *testing.T, h *testbed.Host, vm string) string {
	t.Helper()
	v, err := h.C.GetVM(ctxT(t, 30*time.Second), vm)
	if err != nil || len(v.Disks) == 0 {
		t.Fatalf("vm %s on %s: %+v %v", vm, h.Name, v, err)
	}
	return h.RealPath(v.Disks[0].Path)
}

// checkDisk checks the VM's disk on h holds the data, as the guest and as
// the host read it, and that the guest's disk counter there passed after
// (its writes land on this disk, not on one left behind).
func checkDisk(t *testing.T, h *testbed.Host, vm, want string, after int) {
	t.Helper()
	path := diskPath(t, h, vm)
	if got := guestDiskSum(t, h, vm); got != want {
		t.Fatalf("vm %s on %s: the guest reads %s from its disk, want %s", vm, h.Name, got, want)
	}
	var sum string
	var tick int
	eventually(t, 30*time.Second, fmt.Sprintf("the disk counter in %s to pass %d", path, after), func() bool {
		sum, tick = hostDisk(t, path)
		return tick > after
	})
	if sum != want {
		t.Fatalf("vm %s on %s: the disk file %s holds %s at the data, want %s", vm, h.Name, path, sum, want)
	}
	t.Logf("disk of %s on %s: data %s…, counter at tick %d (after %d)", vm, h.Name, sum[:12], tick, after)
}

// noQEMU checks that h runs no QEMU for vm (a failed move must not leave
// one behind on the destination).
func noQEMU(t *testing.T, h *testbed.Host, vm string) {
	t.Helper()
	eventually(t, 30*time.Second, "no QEMU of "+vm+" on "+h.Name, func() bool { return len(h.QEMUs(vm)) == 0 })
}
