package fake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

const tunedXML = `<domain type="qemu"><name>t</name><memory unit="KiB">131072</memory><currentMemory unit="KiB">65536</currentMemory>
<vcpu placement="static" current="1">2</vcpu><devices><disk type="file" device="disk"><target dev="vda" bus="virtio"/></disk>
<memballoon model="virtio"/></devices></domain>`

// The tuning calls refuse what libvirt refuses, and a refused call
// changes nothing.
func TestTuningCalls(t *testing.T) {
	ctx := context.Background()
	f := New()
	if _, err := f.Define(ctx, tunedXML); err != nil {
		t.Fatal(err)
	}
	if err := f.SetMemory(ctx, "t", 96<<20, true); !errors.Is(err, hypervisor.ErrInvalidState) {
		t.Errorf("live change of a stopped domain: %v", err)
	}
	if err := f.SetVCPUs(ctx, "t", 2, false); err != nil {
		t.Errorf("config change of a stopped domain: %v", err)
	}
	if err := f.Start(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"memory above max":  f.SetMemory(ctx, "t", 256<<20, true),
		"vCPUs above max":   f.SetVCPUs(ctx, "t", 3, true),
		"no such disk":      f.SetBlockLimits(ctx, "t", "vdz", hypervisor.BlockLimits{ReadIOPSSec: 1}, true),
		"pin a vCPU beyond": f.PinVCPU(ctx, "t", 2, []int{0}, true),
	} {
		if !errors.Is(err, hypervisor.ErrInvalidState) {
			t.Errorf("%s: %v", what, err)
		}
	}
	if err := f.SetMemory(ctx, "t", 96<<20, true); err != nil {
		t.Fatal(err)
	}
	if err := f.SetBlockLimits(ctx, "t", "vda", hypervisor.BlockLimits{WriteBytesSec: 1 << 20}, true); err != nil {
		t.Fatal(err)
	}
	if err := f.PinVCPU(ctx, "t", 1, []int{2, 3}, true); err != nil {
		t.Fatal(err)
	}
	if err := f.PinEmulator(ctx, "t", []int{0}, true); err != nil {
		t.Fatal(err)
	}
	for _, inactive := range []bool{false, true} {
		x, _ := f.XML(ctx, "t", inactive)
		for _, want := range []string{`<currentMemory unit="KiB">98304</currentMemory>`, `<write_bytes_sec>1048576</write_bytes_sec>`,
			`<vcpupin vcpu="1" cpuset="2,3">`, `<emulatorpin cpuset="0">`} {
			if !strings.Contains(x, want) {
				t.Errorf("inactive=%t: lacks %s in %s", inactive, want, x)
			}
		}
	}
	f.FailNext("SetMemory", nil)
	if err := f.SetMemory(ctx, "t", 64<<20, true); !errors.Is(err, ErrInjected) {
		t.Errorf("fault: %v", err)
	}
}

// Without a balloon the memory of a running domain cannot change.
func TestSetMemoryNeedsBalloon(t *testing.T) {
	ctx := context.Background()
	f := New()
	if _, err := f.Define(ctx, strings.Replace(tunedXML, `<memballoon model="virtio"/>`, `<memballoon model="none"/>`, 1)); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := f.SetMemory(ctx, "t", 96<<20, true); err == nil || !strings.Contains(err.Error(), "balloon") {
		t.Errorf("err = %v", err)
	}
}

func TestCPUMap(t *testing.T) {
	if m := hypervisor.CPUMap([]int{0, 3, 9}); len(m) != 2 || m[0] != 0b1001 || m[1] != 0b10 {
		t.Errorf("CPUMap = %08b", m)
	}
}
