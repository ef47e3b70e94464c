package hypervisor

import "context"

// BlockLimits are a disk's I/O limits (QEMU's throttling); 0 is none.
type BlockLimits struct {
	ReadBytesSec, WriteBytesSec uint64
	ReadIOPSSec, WriteIOPSSec   uint64
}

// Tuning changes a domain's resources. With live set the running domain
// changes at once and so does its persistent definition; without, only
// the definition (the next start has it). Where QEMU cannot make the
// change live the call fails with ErrUnsupported or ErrInvalidState.
type Tuning interface {
	// SetMemory sets the balloon's target (live) and currentMemory.
	SetMemory(ctx context.Context, name string, bytes uint64, live bool) error
	// SetVCPUs sets the number of vCPUs online; live, up to the domain's
	// maximum (hot-add).
	SetVCPUs(ctx context.Context, name string, n int, live bool) error
	// SetBlockLimits replaces a disk's (by target, e.g. vda) I/O limits.
	SetBlockLimits(ctx context.Context, name, target string, l BlockLimits, live bool) error
	// PinVCPU runs a vCPU on the host CPUs given.
	PinVCPU(ctx context.Context, name string, vcpu int, hostCPUs []int, live bool) error
	// PinEmulator runs QEMU's emulator threads on the host CPUs given.
	PinEmulator(ctx context.Context, name string, hostCPUs []int, live bool) error
}

// CPUMap is libvirt's CPU bitmap of a list of host CPUs.
func CPUMap(cpus []int) []byte {
	n := 0
	for _, c := range cpus {
		n = max(n, c/8+1)
	}
	m := make([]byte, n)
	for _, c := range cpus {
		m[c/8] |= 1 << (c % 8)
	}
	return m
}
