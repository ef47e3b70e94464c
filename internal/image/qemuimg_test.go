package image

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/store/bolt"
	"github.com/godwit-project/godwit/internal/testenv"
)

func TestInspect(t *testing.T) {
	testenv.RequireCommand(t, "qemu-img")
	dir := t.TempDir()
	q := filepath.Join(dir, "a.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", q, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v %s", err, out)
	}
	info, err := QemuImg{}.Inspect(context.Background(), q)
	if err != nil || info.Format != "qcow2" || info.VirtualSize != 64<<20 {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}

	// A truncated qcow2 is refused as not an image.
	bad := filepath.Join(dir, "bad.qcow2")
	raw, _ := os.ReadFile(q)
	os.WriteFile(bad, raw[:100], 0o644)
	if _, err := (QemuImg{}).Inspect(context.Background(), bad); !errors.Is(err, ErrNotImage) {
		t.Fatalf("truncated image: %v, want ErrNotImage", err)
	}
	// A header with nothing behind it passes qemu-img info; check catches it.
	os.WriteFile(bad, raw[:200], 0o644)
	if _, err := (QemuImg{}).Inspect(context.Background(), bad); !errors.Is(err, ErrNotImage) {
		t.Fatalf("qcow2 header only: %v, want ErrNotImage", err)
	}
	if _, err := (QemuImg{}).Inspect(context.Background(), filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := (QemuImg{}).Inspect(context.Background(), dir); err == nil {
		t.Fatal("a directory was accepted as an image")
	}
}

// Work files of jobs a crash cut off go at the next start; images stay.
func TestCatalogRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{".web.import-123", ".deb.build.qcow2", "keep.qcow2"} {
		os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644)
	}
	os.MkdirAll(filepath.Join(dir, ".deb.build-9", "rootfs", "etc"), 0o755)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := NewCatalog(dir, st, ops.NewManager(st, log), log); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "keep.qcow2" {
		t.Fatalf("left: %v", ents)
	}
}
