package api

// Resources and tuning of a VM (issue 13): the CPU model, topology and
// pinning, memory backing and NUMA, I/O threads, and extra devices. The
// fields sit on VMSpec in one block; per-disk and per-NIC settings are on
// Disk and NIC. Everything is optional: a spec without them gets what
// godwit always gave.

// CPU modes.
const (
	CPUHostPassthrough = "host-passthrough"
	CPUHostModel       = "host-model"
	CPUCustom          = "custom"
)

// CPUTuning is the guest's CPU: which model, its topology, and which host
// CPUs its vCPUs and QEMU's emulator threads run on.
type CPUTuning struct {
	Mode    string `json:"mode,omitempty" yaml:"mode,omitempty" enum:"host-passthrough,host-model,custom" doc:"host-passthrough: the host's CPU as it is (KVM only; not migratable between different CPUs); host-model: the closest named model with the host's features; custom: model. Default: host-model under KVM, QEMU's default CPU under TCG. Under TCG, host-passthrough and host-model become QEMU's 'max' CPU (every feature TCG emulates)."`
	Model   string `json:"model,omitempty" yaml:"model,omitempty" doc:"A named CPU model (mode custom, implied when set), e.g. Skylake-Client or qemu64." example:"qemu64"`
	Sockets int    `json:"sockets,omitempty" yaml:"sockets,omitempty" doc:"Topology: sockets; sockets x cores x threads must be maxCpus (or cpus)."`
	Cores   int    `json:"cores,omitempty" yaml:"cores,omitempty" doc:"Topology: cores per socket."`
	Threads int    `json:"threads,omitempty" yaml:"threads,omitempty" doc:"Topology: threads per core."`
	// Pin and EmulatorPin change live.
	Pin         []CPUPin `json:"pin,omitempty" yaml:"pin,omitempty" doc:"Pin vCPUs to host CPUs (changes live)."`
	EmulatorPin string   `json:"emulatorPin,omitempty" yaml:"emulatorPin,omitempty" doc:"Host CPUs QEMU's emulator threads run on, as a CPU list (changes live)." example:"0"`
}

// CPUPin pins one vCPU to a set of host CPUs.
type CPUPin struct {
	VCPU     int    `json:"vcpu" yaml:"vcpu" doc:"The vCPU, from 0."`
	HostCPUs string `json:"hostCpus" yaml:"hostCpus" doc:"Host CPUs as a list: 1, 0-3, 0,2." example:"1"`
}

// Hugepages backs the guest's memory with huge pages from the host's pool.
type Hugepages struct {
	Size Size `json:"size,omitempty" yaml:"size,omitempty" doc:"Page size: 2MiB (default) or 1GiB." example:"2MiB"`
	// Reserved: the host must hold enough free pages already (nr_hugepages).
	Reserved *bool `json:"reserved,omitempty" yaml:"reserved,omitempty" doc:"The pages must be reserved on the host beforehand (default true): create and start refuse when the host's pool has too few free pages. false: the host grows its pool on demand (vm.nr_overcommit_hugepages)."`
}

// NUMA is the guest's NUMA layout and its binding to host nodes.
type NUMA struct {
	Nodes []NUMANode `json:"nodes" yaml:"nodes" doc:"Guest NUMA nodes: their vCPUs together are every vCPU up to maxCpus, their memory adds up to maxMemory (or memory)."`
}

// NUMANode is one guest NUMA node.
type NUMANode struct {
	CPUs      string `json:"cpus" yaml:"cpus" doc:"The node's vCPUs as a list." example:"0-1"`
	Memory    Size   `json:"memory" yaml:"memory" doc:"The node's memory." example:"512MiB"`
	HostNodes string `json:"hostNodes,omitempty" yaml:"hostNodes,omitempty" doc:"Host NUMA nodes the node's memory must come from (strict), as a list." example:"0"`
}

// Watchdog is a watchdog device and what happens when the guest stops
// feeding it.
type Watchdog struct {
	Model  string `json:"model,omitempty" yaml:"model,omitempty" enum:"i6300esb,itco" doc:"Device model (default i6300esb, a PCI card every Linux has a driver for)."`
	Action string `json:"action,omitempty" yaml:"action,omitempty" enum:"reset,poweroff,shutdown,pause,dump,inject-nmi,none" doc:"What QEMU does when it fires (default reset)."`
}

// RNG is the guest's virtio entropy device (every VM has one by default).
type RNG struct {
	Source         string `json:"source,omitempty" yaml:"source,omitempty" enum:"/dev/urandom,/dev/random,none" doc:"Host entropy source (default /dev/urandom); none: no RNG device."`
	BytesPerSecond int    `json:"bytesPerSecond,omitempty" yaml:"bytesPerSecond,omitempty" doc:"Limit on what the guest may draw, bytes per second (default: no limit)."`
}

// Share is a host directory shared with the guest over virtiofs; the
// guest mounts it with mount -t virtiofs TAG DIR.
type Share struct {
	Source string `json:"source" yaml:"source" doc:"Absolute path of the host directory." example:"/srv/data"`
	Tag    string `json:"tag" yaml:"tag" doc:"Name the guest mounts it by." example:"data"`
}

// DiskLimits caps a disk's I/O (QEMU's throttling); 0 is no limit. They
// change live.
type DiskLimits struct {
	ReadBytes  Size `json:"readBytes,omitempty" yaml:"readBytes,omitempty" doc:"Read bytes per second." example:"50MiB"`
	WriteBytes Size `json:"writeBytes,omitempty" yaml:"writeBytes,omitempty" doc:"Written bytes per second." example:"50MiB"`
	ReadIOPS   int  `json:"readIops,omitempty" yaml:"readIops,omitempty" doc:"Read operations per second."`
	WriteIOPS  int  `json:"writeIops,omitempty" yaml:"writeIops,omitempty" doc:"Write operations per second."`
}

// VMSet is a live change to a VM (godwit vm set): each field given
// changes that setting, the rest stay. A running VM gets it at once
// where QEMU allows it; what cannot change live is refused with why.
type VMSet struct {
	Memory Size     `json:"memory,omitempty" doc:"New memory (the balloon's target, up to maxMemory)." example:"512MiB"`
	CPUs   int      `json:"cpus,omitempty" doc:"New number of vCPUs (hot-added up to maxCpus)."`
	Pin    []CPUPin `json:"pin,omitempty" doc:"vCPUs to pin (replacing their earlier pinning)."`
	// Disk names the disk Limits are for.
	Disk   string      `json:"disk,omitempty" doc:"The disk the limits are for (default: the first disk)."`
	Limits *DiskLimits `json:"limits,omitempty" doc:"The disk's new I/O limits; 0 lifts a limit."`
}

// MaxCPUsOf is the most vCPUs the VM can have: maxCpus, or cpus.
func MaxCPUsOf(s VMSpec) int { return max(s.MaxCPUs, s.CPUs) }

// MaxMemoryOf is the most memory the VM can have: maxMemory, or memory.
func MaxMemoryOf(s VMSpec) Size { return max(s.MaxMemory, s.Memory) }

// BalloonOf says whether the VM has a memory balloon: as the spec says,
// by default when it has a maxMemory (its memory is meant to change).
func BalloonOf(s VMSpec) bool {
	if s.Balloon != nil {
		return *s.Balloon
	}
	return s.MaxMemory != 0
}
