package fake

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/nbd"
)

const backupDom = `<domain type='qemu'><name>b</name><devices>
<disk type='file' device='disk'><source file='/p/b-root.qcow2'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>`

func pullXML(incremental string) string {
	x := `<domainbackup mode='pull'>`
	if incremental != "" {
		x += `<incremental>` + incremental + `</incremental>`
	}
	return x + `<server transport='unix' socket='/w/nbd.sock'/><disks><disk name='vda' backup='yes' exportname='vda'/></disks></domainbackup>`
}

func TestBackupExports(t *testing.T) {
	ctx := context.Background()
	f := New()
	if _, err := f.EnsurePool(ctx, hypervisor.Pool{Name: "p", Path: "/p"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CreateVolume(ctx, "p", hypervisor.Volume{Name: "b-root.qcow2", Capacity: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Define(ctx, backupDom); err != nil {
		t.Fatal(err)
	}
	if err := f.StartPaused(ctx, "b"); err != nil || state(t, f, "b") != hypervisor.StatePaused {
		t.Fatalf("StartPaused: %v", err)
	}
	first := bytes.Repeat([]byte{1}, 100<<10) // blocks 0 and 1
	if err := f.WriteVolume("p", "b-root.qcow2", 0, first); err != nil {
		t.Fatal(err)
	}
	if err := f.BeginBackup(ctx, "b", pullXML(""), `<domaincheckpoint><name>c1</name></domaincheckpoint>`); err != nil {
		t.Fatal(err)
	}
	if active, backup, err := f.ActiveJob(ctx, "b"); !active || !backup || err != nil {
		t.Fatalf("ActiveJob = %v %v %v", active, backup, err)
	}
	// The export is the disk when the job began.
	if err := f.WriteVolume("p", "b-root.qcow2", 0, []byte{9}); err != nil {
		t.Fatal(err)
	}
	x, err := f.OpenExport(ctx, "/w/nbd.sock", "vda", nbd.BaseAllocation)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := x.Extents(nbd.BaseAllocation, 0, x.Size())
	if err != nil || len(ext) != 2 || ext[0].Length != 128<<10 || ext[0].Flags != 0 || ext[1].Flags != nbd.FlagHole|nbd.FlagZero {
		t.Fatalf("extents %+v, %v", ext, err)
	}
	buf := make([]byte, 4)
	if err := x.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, []byte{1, 1, 1, 1}) {
		t.Fatalf("read %v, %v", buf, err)
	}
	if err := f.AbortJob(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := x.ReadAt(buf, 0); err == nil {
		t.Fatal("read from an ended job")
	}

	// Incremental: only block 0 changed since c1.
	if err := f.BeginBackup(ctx, "b", pullXML("c1"), `<domaincheckpoint><name>c2</name></domaincheckpoint>`); err != nil {
		t.Fatal(err)
	}
	bitmap := "qemu:dirty-bitmap:backup-vda"
	x, err = f.OpenExport(ctx, "/w/nbd.sock", "vda", nbd.BaseAllocation, bitmap)
	if err != nil {
		t.Fatal(err)
	}
	ext, err = x.Extents(bitmap, 0, x.Size())
	if err != nil || len(ext) != 2 || ext[0].Length != 64<<10 || ext[0].Flags != nbd.FlagDirty {
		t.Fatalf("dirty extents %+v, %v", ext, err)
	}
	f.Inject(Fault{Method: "ReadExport", Name: "vda", Bytes: 8})
	if err := x.ReadAt(buf, 0); err != nil {
		t.Fatalf("first read: %v", err)
	}
	if err := x.ReadAt(buf, 4); !errors.Is(err, ErrInjected) {
		t.Fatalf("read reaching the fault's bytes: %v", err)
	}
	if err := f.AbortJob(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if cps, err := f.Checkpoints(ctx, "b"); err != nil || len(cps) != 2 || cps[1].Parent != "c1" {
		t.Fatalf("checkpoints %+v, %v", cps, err)
	}
	f.BreakCheckpoints("b")
	if err := f.BeginBackup(ctx, "b", pullXML("c2"), ""); !errors.Is(err, hypervisor.ErrCheckpointBroken) {
		t.Fatalf("backup from a broken checkpoint: %v", err)
	}
}
