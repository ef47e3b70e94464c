package fake

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// The tuning calls edit the domain's definition, and with live its
// running config too, as libvirt does: XML shows what they did. They
// refuse what libvirt's QEMU driver refuses: a live change to a domain
// that is not running, memory above <memory> or without a balloon,
// vCPUs above <vcpu>, pinning a vCPU that is not online, a disk that
// does not exist.

var _ hypervisor.Tuning = (*Fake)(nil)

// tune runs edit on the definition and, when live, on the running
// config. Callers hold no lock.
func (f *Fake) tune(ctx context.Context, method, op, name string, live bool, edit func(d *libvirtxml.Domain, live bool) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.domainFor(ctx, method, name, op, name)
	if err != nil {
		return err
	}
	if live && !d.State.Active() {
		return invalid(op, name, "domain is not running")
	}
	apply := func(doc *string, live bool) error {
		var x libvirtxml.Domain
		if err := x.Unmarshal(*doc); err != nil {
			return &Error{Op: op + " " + name, Msg: "XML error: " + err.Error(), Kind: hypervisor.ErrInvalidState}
		}
		if err := edit(&x, live); err != nil {
			return &Error{Op: op + " " + name, Msg: err.Error(), Kind: hypervisor.ErrInvalidState}
		}
		out, err := x.Marshal()
		if err != nil {
			return err
		}
		*doc = out
		return nil
	}
	// Both first on copies: a refused change changes neither.
	persistent, running := d.xml, d.liveXML
	if err := apply(&persistent, false); err != nil {
		return err
	}
	if live {
		if err := apply(&running, true); err != nil {
			return err
		}
	}
	d.xml, d.liveXML = persistent, running
	return nil
}

// SetMemory sets currentMemory (live: the balloon's target).
func (f *Fake) SetMemory(ctx context.Context, name string, bytes uint64, live bool) error {
	return f.tune(ctx, "SetMemory", "set memory of", name, live, func(d *libvirtxml.Domain, live bool) error {
		kib := uint(bytes / 1024)
		if d.Memory == nil || kib > memoryKiB(d.Memory.Value, d.Memory.Unit) {
			return fmt.Errorf("invalid argument: cannot set memory higher than max memory")
		}
		if live && (d.Devices == nil || d.Devices.MemBalloon == nil || d.Devices.MemBalloon.Model == "none") {
			return fmt.Errorf("Requested operation is not valid: Unable to change memory of active domain without the balloon device and guest OS balloon driver")
		}
		d.CurrentMemory = &libvirtxml.DomainCurrentMemory{Value: kib, Unit: "KiB"}
		return nil
	})
}

func memoryKiB(v uint, unit string) uint {
	switch strings.ToLower(unit) {
	case "b", "bytes":
		return v / 1024
	case "m", "mib":
		return v * 1024
	case "g", "gib":
		return v * 1024 * 1024
	}
	return v
}

// SetVCPUs sets the vCPUs online (live: hot-add or unplug).
func (f *Fake) SetVCPUs(ctx context.Context, name string, n int, live bool) error {
	return f.tune(ctx, "SetVCPUs", "set vCPUs of", name, live, func(d *libvirtxml.Domain, live bool) error {
		if d.VCPU == nil || n < 1 || uint(n) > d.VCPU.Value {
			return fmt.Errorf("invalid argument: requested vcpus is greater than max allowable vcpus for the persistent domain")
		}
		d.VCPU.Current = uint(n)
		if uint(n) == d.VCPU.Value {
			d.VCPU.Current = 0
		}
		return nil
	})
}

// SetBlockLimits replaces a disk's iotune.
func (f *Fake) SetBlockLimits(ctx context.Context, name, target string, l hypervisor.BlockLimits, live bool) error {
	return f.tune(ctx, "SetBlockLimits", "set I/O limits of "+target+" of", name, live, func(d *libvirtxml.Domain, live bool) error {
		for i := range d.Devices.Disks {
			disk := &d.Devices.Disks[i]
			if disk.Target == nil || disk.Target.Dev != target {
				continue
			}
			disk.IOTune = &libvirtxml.DomainDiskIOTune{ReadBytesSec: l.ReadBytesSec, WriteBytesSec: l.WriteBytesSec, ReadIopsSec: l.ReadIOPSSec, WriteIopsSec: l.WriteIOPSSec}
			if *disk.IOTune == (libvirtxml.DomainDiskIOTune{}) {
				disk.IOTune = nil
			}
			return nil
		}
		return fmt.Errorf("invalid argument: disk '%s' was not found in the domain config", target)
	})
}

// PinVCPU sets a vCPU's vcpupin.
func (f *Fake) PinVCPU(ctx context.Context, name string, vcpu int, hostCPUs []int, live bool) error {
	return f.tune(ctx, "PinVCPU", "pin a vCPU of", name, live, func(d *libvirtxml.Domain, live bool) error {
		online := d.VCPU.Value
		if live && d.VCPU.Current != 0 {
			online = d.VCPU.Current
		}
		if vcpu < 0 || uint(vcpu) >= online {
			return fmt.Errorf("invalid argument: vcpu %d is out of range of live cpu count %d", vcpu, online)
		}
		if d.CPUTune == nil {
			d.CPUTune = &libvirtxml.DomainCPUTune{}
		}
		pin := libvirtxml.DomainCPUTuneVCPUPin{VCPU: uint(vcpu), CPUSet: cpuList(hostCPUs)}
		for i, p := range d.CPUTune.VCPUPin {
			if p.VCPU == uint(vcpu) {
				d.CPUTune.VCPUPin[i] = pin
				return nil
			}
		}
		d.CPUTune.VCPUPin = append(d.CPUTune.VCPUPin, pin)
		return nil
	})
}

// PinEmulator sets the emulatorpin.
func (f *Fake) PinEmulator(ctx context.Context, name string, hostCPUs []int, live bool) error {
	return f.tune(ctx, "PinEmulator", "pin the emulator threads of", name, live, func(d *libvirtxml.Domain, live bool) error {
		if d.CPUTune == nil {
			d.CPUTune = &libvirtxml.DomainCPUTune{}
		}
		d.CPUTune.EmulatorPin = &libvirtxml.DomainCPUTuneEmulatorPin{CPUSet: cpuList(hostCPUs)}
		return nil
	})
}

func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}
