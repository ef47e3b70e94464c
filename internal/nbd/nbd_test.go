package nbd

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/testenv"
)

// serve runs qemu-nbd on image (qcow2) behind a unix socket until the test
// ends (or stop), and returns the socket.
func serve(t *testing.T, image string, args ...string) string {
	sock, _ := serveStop(t, image, args...)
	return sock
}

func serveStop(t *testing.T, image string, args ...string) (string, func()) {
	t.Helper()
	testenv.RequireCommand(t, "qemu-nbd")
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	cmd := exec.Command("qemu-nbd", append([]string{"-f", "qcow2", "-k", sock, "-x", "disk", "-t"}, append(args, image)...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			// SIGTERM: a killed qemu-nbd leaves bitmaps marked in use.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock, stop
		}
		if time.Now().After(deadline) {
			t.Fatal("qemu-nbd did not make its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	testenv.RequireCommand(t, "qemu-img")
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

// Write through one connection, then read back, list allocation, and see
// untouched areas as holes, through another.
func TestWriteReadExtents(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "d.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", img, "8M")
	sock := serve(t, img)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w, err := Dial(ctx, sock, "disk")
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != 8<<20 || w.ReadOnly() {
		t.Fatalf("size %d readOnly %v", w.Size(), w.ReadOnly())
	}
	data := make([]byte, 256<<10)
	rand.Read(data)
	if err := w.WriteAt(data, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	w.Close()

	r, err := Dial(ctx, sock, "disk", BaseAllocation)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, len(data))
	if err := r.ReadAt(got, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs from what was written")
	}
	// A read across a hole comes back zeroed even over a dirty buffer.
	hole := bytes.Repeat([]byte{0xff}, 64<<10)
	if err := r.ReadAt(hole, 4<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hole, make([]byte, len(hole))) {
		t.Fatal("a hole did not read as zeroes")
	}
	ext, err := r.Extents(BaseAllocation, 0, r.Size())
	if err != nil {
		t.Fatal(err)
	}
	var dataBytes, total uint64
	for _, e := range ext {
		total += e.Length
		if e.Flags&FlagZero == 0 {
			dataBytes += e.Length
			if e.Offset > 1<<20 || e.Offset+e.Length < 1<<20+uint64(len(data)) {
				t.Errorf("data extent %+v does not cover the write", e)
			}
		}
	}
	if total != r.Size() || dataBytes != uint64(len(data)) {
		t.Fatalf("extents %+v: %d data bytes of %d; want %d of %d", ext, dataBytes, total, len(data), r.Size())
	}
	if _, err := r.Extents("qemu:dirty-bitmap:nope", 0, 1); err == nil {
		t.Fatal("an unnegotiated context gave extents")
	}
}

// A dirty bitmap exported by qemu-nbd -B lists exactly what was written
// after the bitmap was added.
func TestDirtyBitmapExtents(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "d.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", img, "4M")
	qemuImg(t, "bitmap", "--add", img, "b0")
	sock, stop := serveStop(t, img)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := Dial(ctx, sock, "disk")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAt(bytes.Repeat([]byte{7}, 128<<10), 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	stop()

	sock2 := serve(t, img, "-r", "-B", "b0")
	r, err := Dial(ctx, sock2, "disk", "qemu:dirty-bitmap:b0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ext, err := r.Extents("qemu:dirty-bitmap:b0", 0, r.Size())
	if err != nil {
		t.Fatal(err)
	}
	var dirty []Extent
	for _, e := range ext {
		if e.Flags&FlagDirty != 0 {
			dirty = append(dirty, e)
		}
	}
	if len(dirty) != 1 || dirty[0].Offset != 2<<20 || dirty[0].Length != 128<<10 {
		t.Fatalf("dirty extents %+v, want one at 2MiB of 128KiB", dirty)
	}
}
