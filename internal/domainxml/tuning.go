package domainxml

import (
	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
)

// The resources and tuning of a VM (issue 13), one step per concern: the
// CPU model, topology and NUMA cells; pinning; NUMA binding; memory
// backing; I/O threads; and the extra devices. internal/vm has validated
// the spec; these steps only translate.

// cpuModel says which CPU the guest gets. Under TCG there is no host CPU
// to pass through or model on: host-passthrough and host-model become
// "maximum", QEMU's max CPU with every feature TCG emulates (libvirt 7.9+).
func cpuModel(in *Input) *libvirtxml.DomainCPU {
	t := in.Spec.CPU
	mode := ""
	if t != nil {
		mode = t.Mode
	}
	switch {
	case mode == api.CPUCustom:
		return &libvirtxml.DomainCPU{Mode: "custom", Match: "exact", Check: "partial", Model: &libvirtxml.DomainCPUModel{Value: t.Model, Fallback: "forbid"}}
	case in.VirtType == "qemu" && mode != "":
		return &libvirtxml.DomainCPU{Mode: "maximum"}
	case in.VirtType == "qemu":
		return nil // QEMU's default, qemu64
	case mode == "":
		// host-model keeps the guest migratable between similar hosts.
		return &libvirtxml.DomainCPU{Mode: api.CPUHostModel}
	case mode == api.CPUHostPassthrough:
		return &libvirtxml.DomainCPU{Mode: mode, Check: "none", Migratable: "on"}
	}
	return &libvirtxml.DomainCPU{Mode: mode}
}

// cpuLayout adds the topology and the guest NUMA cells to the CPU.
func cpuLayout(in *Input, d *libvirtxml.Domain) error {
	s := in.Spec
	if t := s.CPU; t != nil && (t.Sockets != 0 || t.Cores != 0 || t.Threads != 0) {
		ensureCPU(d).Topology = &libvirtxml.DomainCPUTopology{Sockets: max(t.Sockets, 1), Dies: 1, Cores: max(t.Cores, 1), Threads: max(t.Threads, 1)}
	}
	if s.NUMA != nil {
		numa := &libvirtxml.DomainNuma{}
		for i, n := range s.NUMA.Nodes {
			id := uint(i)
			numa.Cell = append(numa.Cell, libvirtxml.DomainCell{ID: &id, CPUs: n.CPUs, Memory: uint(n.Memory / api.KiB), Unit: "KiB"})
		}
		ensureCPU(d).Numa = numa
	}
	return nil
}

func ensureCPU(d *libvirtxml.Domain) *libvirtxml.DomainCPU {
	if d.CPU == nil {
		d.CPU = &libvirtxml.DomainCPU{}
	}
	return d.CPU
}

// cputune pins vCPUs and the emulator threads.
func cputune(in *Input, d *libvirtxml.Domain) error {
	t := in.Spec.CPU
	if t == nil || (len(t.Pin) == 0 && t.EmulatorPin == "") {
		return nil
	}
	tune := &libvirtxml.DomainCPUTune{}
	for _, p := range t.Pin {
		tune.VCPUPin = append(tune.VCPUPin, libvirtxml.DomainCPUTuneVCPUPin{VCPU: uint(p.VCPU), CPUSet: p.HostCPUs})
	}
	if t.EmulatorPin != "" {
		tune.EmulatorPin = &libvirtxml.DomainCPUTuneEmulatorPin{CPUSet: t.EmulatorPin}
	}
	d.CPUTune = tune
	return nil
}

// numatune binds guest nodes' memory to host nodes, strictly: memory
// from elsewhere would defeat the point.
func numatune(in *Input, d *libvirtxml.Domain) error {
	if in.Spec.NUMA == nil {
		return nil
	}
	var nodes []libvirtxml.DomainNUMATuneMemNode
	for i, n := range in.Spec.NUMA.Nodes {
		if n.HostNodes != "" {
			nodes = append(nodes, libvirtxml.DomainNUMATuneMemNode{CellID: uint(i), Mode: "strict", Nodeset: n.HostNodes})
		}
	}
	if len(nodes) > 0 {
		d.NUMATune = &libvirtxml.DomainNUMATune{MemNodes: nodes}
	}
	return nil
}

// memoryBacking: huge pages, and shared memory, which virtiofs needs
// (virtiofsd maps the guest's memory).
func memoryBacking(in *Input, d *libvirtxml.Domain) error {
	s := in.Spec
	if s.Hugepages == nil && len(s.Shares) == 0 {
		return nil
	}
	mb := &libvirtxml.DomainMemoryBacking{}
	if s.Hugepages != nil {
		size := s.Hugepages.Size
		if size == 0 {
			size = 2 * api.MiB
		}
		mb.MemoryHugePages = &libvirtxml.DomainMemoryHugepages{Hugepages: []libvirtxml.DomainMemoryHugepage{{Size: uint(size / api.KiB), Unit: "KiB"}}}
	}
	if len(s.Shares) > 0 {
		if s.Hugepages == nil {
			mb.MemorySource = &libvirtxml.DomainMemorySource{Type: "memfd"}
		}
		mb.MemoryAccess = &libvirtxml.DomainMemoryAccess{Mode: "shared"}
	}
	d.MemoryBacking = mb
	return nil
}

func iothreads(in *Input, d *libvirtxml.Domain) error {
	d.IOThreads = uint(in.Spec.IOThreads)
	return nil
}

// tuneDevices adds the watchdog, the shares and the balloon, and sets
// the RNG's source and rate.
func tuneDevices(in *Input, d *libvirtxml.Domain) error {
	s := in.Spec
	if w := s.Watchdog; w != nil {
		model, action := w.Model, w.Action
		if model == "" {
			model = "i6300esb"
		}
		if action == "" {
			action = "reset"
		}
		d.Devices.Watchdogs = []libvirtxml.DomainWatchdog{{Model: model, Action: action}}
	}
	if r := s.RNG; r != nil {
		switch r.Source {
		case "none":
			d.Devices.RNGs = nil
		case "":
		default:
			d.Devices.RNGs[0].Backend.Random.Device = r.Source
		}
		if r.BytesPerSecond > 0 && len(d.Devices.RNGs) > 0 {
			d.Devices.RNGs[0].Rate = &libvirtxml.DomainRNGRate{Bytes: uint(r.BytesPerSecond), Period: 1000}
		}
	}
	for _, sh := range s.Shares {
		d.Devices.Filesystems = append(d.Devices.Filesystems, libvirtxml.DomainFilesystem{
			AccessMode: "passthrough",
			Driver:     &libvirtxml.DomainFilesystemDriver{Type: "virtiofs"},
			Source:     &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: sh.Source}},
			Target:     &libvirtxml.DomainFilesystemTarget{Dir: sh.Tag},
		})
	}
	if api.BalloonOf(s) {
		// Stats every 5 s: libvirt's memory stats (and vm top) read them.
		d.Devices.MemBalloon = &libvirtxml.DomainMemBalloon{Model: "virtio", Stats: &libvirtxml.DomainMemBalloonStats{Period: 5}}
	}
	return nil
}

// diskTuning sets a disk's cache, I/O mode, discard, I/O thread and limits.
func diskTuning(disk Disk, dev *libvirtxml.DomainDisk) {
	if disk.Cache != "" {
		dev.Driver.Cache = disk.Cache
	}
	if disk.Discard != "" {
		dev.Driver.Discard = disk.Discard
	}
	dev.Driver.IO = disk.IO
	if disk.IOThread > 0 {
		n := uint(disk.IOThread)
		dev.Driver.IOThread = &n
	}
	if l := disk.Limits; l != nil && *l != (api.DiskLimits{}) {
		dev.IOTune = IOTune(*l)
	}
}

// IOTune is libvirt's iotune of the limits.
func IOTune(l api.DiskLimits) *libvirtxml.DomainDiskIOTune {
	return &libvirtxml.DomainDiskIOTune{
		ReadBytesSec: uint64(l.ReadBytes), WriteBytesSec: uint64(l.WriteBytes),
		ReadIopsSec: uint64(l.ReadIOPS), WriteIopsSec: uint64(l.WriteIOPS),
	}
}

// nicQueues turns on virtio multiqueue.
func nicQueues(n NIC, i *libvirtxml.DomainInterface) {
	if n.Queues > 1 {
		i.Driver = &libvirtxml.DomainInterfaceDriver{Queues: uint(n.Queues)}
	}
}
