package libvirt

import (
	"context"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

var _ hypervisor.Tuning = (*Conn)(nil)

// affect is libvirt's modification impact: the definition, and the
// running domain too when live. (The vCPU and memory flags have the same
// values.)
func affect(live bool) uint32 {
	f := uint32(golibvirt.DomainAffectConfig)
	if live {
		f |= uint32(golibvirt.DomainAffectLive)
	}
	return f
}

// SetMemory sets currentMemory; live, the balloon's target.
func (c *Conn) SetMemory(ctx context.Context, name string, bytes uint64, live bool) error {
	return c.onDomain(ctx, "set memory of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainSetMemoryFlags(d, bytes/1024, affect(live))
	})
}

// SetVCPUs sets the vCPUs online; live, QEMU hot-adds them.
func (c *Conn) SetVCPUs(ctx context.Context, name string, n int, live bool) error {
	return c.onDomain(ctx, "set vCPUs of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainSetVcpusFlags(d, uint32(n), affect(live))
	})
}

// SetBlockLimits is virsh blkdeviotune: QEMU's block_set_io_throttle.
func (c *Conn) SetBlockLimits(ctx context.Context, name, target string, lim hypervisor.BlockLimits, live bool) error {
	params := []golibvirt.TypedParam{
		{Field: "read_bytes_sec", Value: *golibvirt.NewTypedParamValueUllong(lim.ReadBytesSec)},
		{Field: "write_bytes_sec", Value: *golibvirt.NewTypedParamValueUllong(lim.WriteBytesSec)},
		{Field: "read_iops_sec", Value: *golibvirt.NewTypedParamValueUllong(lim.ReadIOPSSec)},
		{Field: "write_iops_sec", Value: *golibvirt.NewTypedParamValueUllong(lim.WriteIOPSSec)},
	}
	return c.onDomain(ctx, "set I/O limits of "+target+" of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainSetBlockIOTune(d, target, params, affect(live))
	})
}

// PinVCPU is virsh vcpupin.
func (c *Conn) PinVCPU(ctx context.Context, name string, vcpu int, hostCPUs []int, live bool) error {
	return c.onDomain(ctx, "pin a vCPU of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainPinVcpuFlags(d, uint32(vcpu), hypervisor.CPUMap(hostCPUs), affect(live))
	})
}

// PinEmulator is virsh emulatorpin.
func (c *Conn) PinEmulator(ctx context.Context, name string, hostCPUs []int, live bool) error {
	return c.onDomain(ctx, "pin the emulator threads of", name, func(l *golibvirt.Libvirt, d golibvirt.Domain) error {
		return l.DomainPinEmulator(d, hypervisor.CPUMap(hostCPUs), golibvirt.DomainModificationImpact(affect(live)))
	})
}
