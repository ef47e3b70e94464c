package accel

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/testenv"
)

// probe.bin must be what probe.S assembles to (go generate keeps them equal).
func TestProbeImageMatchesSource(t *testing.T) {
	testenv.RequireCommand(t, "as")
	testenv.RequireCommand(t, "ld")
	dir := t.TempDir()
	o, bin := filepath.Join(dir, "p.o"), filepath.Join(dir, "p.bin")
	if out, err := exec.Command("as", "-o", o, "probe.S").CombinedOutput(); err != nil {
		t.Fatalf("as: %v %s", err, out)
	}
	if out, err := exec.Command("ld", "-Ttext=0x7c00", "--oformat=binary", "-o", bin, o).CombinedOutput(); err != nil {
		t.Fatalf("ld: %v %s", err, out)
	}
	got, _ := os.ReadFile(bin)
	if !bytes.Equal(got, probeImage) {
		t.Fatal("probe.bin is stale: run go generate ./internal/accel")
	}
	if len(probeImage) != 512 || probeImage[510] != 0x55 || probeImage[511] != 0xaa {
		t.Fatal("probe.bin is not a 512-byte boot sector")
	}
}

type fakeProber struct {
	types []string
	runs  []string
}

func (f *fakeProber) HostInfo(context.Context) (hypervisor.HostInfo, error) {
	return hypervisor.HostInfo{VirtTypes: f.types, LibvirtVersion: "9.0.0"}, nil
}
func (f *fakeProber) RunTransient(_ context.Context, xml string) error {
	f.runs = append(f.runs, xml)
	return nil
}
func (f *fakeProber) Destroy(context.Context, string) error { return nil }

func TestSettingsWithoutProbe(t *testing.T) {
	ctx := context.Background()
	noKVM := &fakeProber{types: []string{"qemu"}}
	r, err := Detect(ctx, Auto, noKVM, t.TempDir())
	if err != nil || r.Chosen != TCG || !strings.Contains(r.Reason, "does not offer KVM") || r.Warning() == "" {
		t.Fatalf("auto without kvm: %+v %v", r, err)
	}
	if _, err := Detect(ctx, KVM, noKVM, t.TempDir()); err == nil {
		t.Fatal("accel kvm without KVM was accepted")
	}
	if r, err := Detect(ctx, TCG, &fakeProber{types: []string{"kvm", "qemu"}}, t.TempDir()); err != nil || r.Chosen != TCG || r.VirtType() != "qemu" || r.Warning() != "" {
		t.Fatalf("tcg: %+v %v", r, err)
	}
	if r, err := Detect(ctx, KVM, &fakeProber{types: []string{"kvm", "qemu"}}, t.TempDir()); err != nil || r.VirtType() != "kvm" {
		t.Fatalf("kvm: %+v %v", r, err)
	}
	if len(noKVM.runs) != 0 {
		t.Fatal("a probe ran although no setting needed one")
	}
	if _, err := Detect(ctx, "fast", noKVM, t.TempDir()); err == nil {
		t.Fatal("unknown setting accepted")
	}
}
