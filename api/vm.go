package api

import "time"

// VMSpec is what a user writes in a VM's YAML file. Unknown fields are
// errors. Validation lives in the daemon (internal/vm), which knows the host.
type VMSpec struct {
	Name      string            `json:"name" yaml:"name" doc:"VM name; also the libvirt domain name." example:"web1"`
	CPUs      int               `json:"cpus" yaml:"cpus" doc:"Virtual CPUs." example:"2"`
	Memory    Size              `json:"memory" yaml:"memory" doc:"Memory with a unit, e.g. 512MiB." example:"1GiB"`
	Boot      *Boot             `json:"boot,omitempty" yaml:"boot,omitempty" doc:"Direct kernel boot or firmware; default: BIOS from the first disk."`
	Disks     []Disk            `json:"disks,omitempty" yaml:"disks,omitempty" doc:"Disks in order: the first is vda."`
	NICs      []NIC             `json:"nics,omitempty" yaml:"nics,omitempty" doc:"Network interfaces in order: the first is eth0 in most guests."`
	Console   *Console          `json:"console,omitempty" yaml:"console,omitempty" doc:"Serial console settings."`
	Graphics  string            `json:"graphics,omitempty" yaml:"graphics,omitempty" enum:"vnc" doc:"vnc: a graphical console (a display, a video card, a USB tablet), which QEMU serves on a unix socket only and the daemon proxies to the web page and vm vnc over an authenticated websocket; never a network port. Default: none (the serial console only)."`
	CloudInit *CloudInit        `json:"cloudInit,omitempty" yaml:"cloudInit,omitempty" doc:"cloud-init settings, given to the guest on a NoCloud seed CD-ROM."`
	Autostart bool              `json:"autostart,omitempty" yaml:"autostart,omitempty" doc:"Start the VM when libvirtd starts."`
	Labels    map[string]string `json:"labels,omitempty" yaml:"labels,omitempty" doc:"Free-form key/value labels."`
	Placement *Placement        `json:"placement,omitempty" yaml:"placement,omitempty" doc:"Where a cluster may place the VM when vm create names no host."`
	HA        string            `json:"ha,omitempty" yaml:"ha,omitempty" enum:"restart,off" doc:"restart: when the VM's host is lost, the cluster restarts it on another host (its disks must be on a shared pool); off (default): it waits for its host."`

	// Resources and tuning (types in tuning.go).
	MaxCPUs   int        `json:"maxCpus,omitempty" yaml:"maxCpus,omitempty" doc:"The most vCPUs the VM can have: cpus can be raised to it live (CPU hot-add). Default: cpus."`
	MaxMemory Size       `json:"maxMemory,omitempty" yaml:"maxMemory,omitempty" doc:"The most memory the VM can have: memory can change live up to it through the balloon. Default: memory."`
	CPU       *CPUTuning `json:"cpu,omitempty" yaml:"cpu,omitempty" doc:"CPU model, topology and pinning."`
	Balloon   *bool      `json:"balloon,omitempty" yaml:"balloon,omitempty" doc:"A virtio memory balloon, which live memory changes need (default: on when maxMemory is set)."`
	Hugepages *Hugepages `json:"hugepages,omitempty" yaml:"hugepages,omitempty" doc:"Back the memory with the host's huge pages."`
	NUMA      *NUMA      `json:"numa,omitempty" yaml:"numa,omitempty" doc:"Guest NUMA nodes and their host node binding."`
	IOThreads int        `json:"iothreads,omitempty" yaml:"iothreads,omitempty" doc:"I/O threads for the disks (disks[].iothread picks one)."`
	Watchdog  *Watchdog  `json:"watchdog,omitempty" yaml:"watchdog,omitempty" doc:"A watchdog device."`
	RNG       *RNG       `json:"rng,omitempty" yaml:"rng,omitempty" doc:"The entropy device."`
	Shares    []Share    `json:"shares,omitempty" yaml:"shares,omitempty" doc:"Host directories shared over virtiofs (the host needs virtiofsd)."`
}

// GraphicsVNC is the spec's graphics: a VNC display on a unix socket.
const GraphicsVNC = "vnc"

// HA policies of a VM.
const (
	HAOff     = "off"
	HARestart = "restart"
)

// Placement says which hosts of a cluster may take a VM.
type Placement struct {
	HostSelector map[string]string `json:"hostSelector,omitempty" yaml:"hostSelector,omitempty" doc:"Labels the host must have, every one (cluster.labels in its daemon config)."`
	AntiAffinity string            `json:"antiAffinity,omitempty" yaml:"antiAffinity,omitempty" doc:"A group: no two VMs of one group on one host." example:"web"`
}

// Boot says how the VM boots: from a kernel on the host (Kernel set, or
// Image naming a catalog image that carries one), or from its first disk
// with firmware.
type Boot struct {
	Image    string `json:"image,omitempty" yaml:"image,omitempty" doc:"Catalog image whose kernel, initrd and cmdline to boot directly (built images carry them)."`
	Kernel   string `json:"kernel,omitempty" yaml:"kernel,omitempty" doc:"Absolute path of a kernel on the host (direct kernel boot)."`
	Initrd   string `json:"initrd,omitempty" yaml:"initrd,omitempty" doc:"Absolute path of an initrd on the host."`
	Cmdline  string `json:"cmdline,omitempty" yaml:"cmdline,omitempty" doc:"Kernel command line."`
	Firmware string `json:"firmware,omitempty" yaml:"firmware,omitempty" enum:"bios,uefi" doc:"bios or uefi, to boot from the first disk."`
}

// Disk is one virtual disk. With Image it is a qcow2 overlay whose backing
// file is that image (or a full copy with Clone "full"); with Volume an
// existing volume; otherwise a blank qcow2 volume of Size.
type Disk struct {
	Name   string `json:"name" yaml:"name" doc:"Disk name, unique in the VM." example:"root"`
	Size   Size   `json:"size,omitempty" yaml:"size,omitempty" doc:"Virtual size; for an image disk at least the image's size (default: the image's)."`
	Image  string `json:"image,omitempty" yaml:"image,omitempty" doc:"A catalog image name, or the absolute path of an image file (qcow2 or raw)."`
	Clone  string `json:"clone,omitempty" yaml:"clone,omitempty" enum:"overlay,full" doc:"overlay (default): a copy-on-write overlay on the image; full: an independent copy."`
	Volume string `json:"volume,omitempty" yaml:"volume,omitempty" doc:"An existing volume, POOL/VOLUME; the VM's delete leaves it." example:"default/data1"`
	// Tuning (tuning.go).
	Cache    string      `json:"cache,omitempty" yaml:"cache,omitempty" enum:"none,writeback,writethrough,directsync,unsafe" doc:"Host page cache use (default none, which migration with shared storage needs)."`
	IO       string      `json:"io,omitempty" yaml:"io,omitempty" enum:"native,threads,io_uring" doc:"How QEMU does the I/O (default: QEMU's, threads); native needs cache none or directsync."`
	Discard  string      `json:"discard,omitempty" yaml:"discard,omitempty" enum:"unmap,ignore" doc:"Pass the guest's discards (TRIM) down to the file (default unmap)."`
	IOThread int         `json:"iothread,omitempty" yaml:"iothread,omitempty" doc:"Run the disk's I/O in this I/O thread, 1 to iothreads."`
	Limits   *DiskLimits `json:"limits,omitempty" yaml:"limits,omitempty" doc:"I/O limits (change live)."`
}

// CloudInit is what the guest's cloud-init gets on its NoCloud seed.
type CloudInit struct {
	Hostname      string          `json:"hostname,omitempty" yaml:"hostname,omitempty" doc:"Guest hostname (default: the VM name)."`
	Users         []CloudInitUser `json:"users,omitempty" yaml:"users,omitempty" doc:"Users to create, besides the image's default user."`
	SSHKeys       []string        `json:"sshKeys,omitempty" yaml:"sshKeys,omitempty" doc:"SSH public keys for the default user."`
	UserData      string          `json:"userData,omitempty" yaml:"userData,omitempty" doc:"Raw user-data (#cloud-config or a #! script), passed on next to the generated one."`
	NetworkConfig string          `json:"networkConfig,omitempty" yaml:"networkConfig,omitempty" doc:"Raw network-config (version 1 or 2 YAML)."`
}

// CloudInitUser is a user cloud-init creates.
type CloudInitUser struct {
	Name    string   `json:"name" yaml:"name"`
	SSHKeys []string `json:"sshKeys,omitempty" yaml:"sshKeys,omitempty"`
	Sudo    bool     `json:"sudo,omitempty" yaml:"sudo,omitempty" doc:"Passwordless sudo."`
	Shell   string   `json:"shell,omitempty" yaml:"shell,omitempty" doc:"Login shell (default /bin/bash)."`
}

// Console configures the serial console. It always exists (virsh console
// works); Log keeps its output in a file that `godwit vm console` reads.
type Console struct {
	Log *bool `json:"log,omitempty" yaml:"log,omitempty" doc:"Keep the console output in a log file (default true)."`
}

// VMState is the state godwit reports for a VM.
type VMState string

// VM states. Missing means godwit has the VM but libvirt lost its domain.
const (
	VMRunning   VMState = "running"
	VMPaused    VMState = "paused"
	VMStopped   VMState = "stopped"
	VMStopping  VMState = "stopping"
	VMCrashed   VMState = "crashed"
	VMSuspended VMState = "suspended"
	VMCreating  VMState = "creating"
	VMDeleting  VMState = "deleting"
	VMMissing   VMState = "missing"
	VMUnknown   VMState = "unknown"
)

// VM is a VM as the API reports it.
type VM struct {
	Name       string    `json:"name"`
	UUID       string    `json:"uuid,omitempty"`
	State      VMState   `json:"state"`
	Reason     string    `json:"reason,omitempty" doc:"Why the VM is in this state, when libvirt says."`
	Managed    bool      `json:"managed" doc:"False for libvirt domains godwit did not create; those are read-only."`
	Spec       *VMSpec   `json:"spec,omitempty" doc:"The spec; absent for unmanaged domains."`
	Disks      []VMDisk  `json:"disks,omitempty"`
	NICs       []VMNIC   `json:"nics,omitempty"`
	ConsoleLog string    `json:"consoleLog,omitempty" doc:"Path of the console log on the host."`
	CreatedAt  time.Time `json:"createdAt,omitzero"`
	Host       string    `json:"host,omitempty"`
	// Adopted VMs are libvirt domains godwit took under management (vm
	// adopt) rather than defined: their definition stays their own.
	Adopted bool `json:"adopted,omitempty" doc:"A libvirt domain godwit took under management (vm adopt): godwit never rewrites its definition; release hands it back."`
	// Kept is what the spec does not express of an adopted domain.
	Kept []string `json:"kept,omitempty" doc:"What the spec does not express of an adopted domain, left in it as it is: XML, one element or device each."`
	// CPU is the CPU the guest gets (tuning.go).
	CPU string `json:"cpu,omitempty" doc:"The CPU the guest gets: the spec's cpu.mode as it applies under this host's accelerator (under TCG, host-model and host-passthrough become QEMU's max CPU)."`
}

// VMDisk is a disk as created on the host.
type VMDisk struct {
	Name    string `json:"name"`
	Target  string `json:"target" doc:"Device name in the guest, e.g. vda."`
	Pool    string `json:"pool"`
	Volume  string `json:"volume"`
	Path    string `json:"path"`
	Size    Size   `json:"size"`
	Backing string `json:"backing,omitempty"`
	Format  string `json:"format,omitempty" doc:"qcow2 (default) or raw."`
	Image   string `json:"image,omitempty" doc:"The catalog image the disk was made from."`
	// External disks are volumes that existed before (spec volume:, or vm
	// disk attach); deleting the VM leaves them.
	External bool `json:"external,omitempty" doc:"An existing volume: deleting the VM leaves it."`
}

// VMList is the answer to GET /v1/vms.
type VMList struct {
	VMs []VM `json:"vms"`
}

// StopRequest asks a VM to stop.
type StopRequest struct {
	Force   bool `json:"force,omitempty" doc:"Destroy (pull the plug) instead of an ACPI shutdown."`
	Timeout int  `json:"timeoutSeconds,omitempty" doc:"Seconds to wait for the guest to shut down (default 60)."`
}

// StartResult is the result of an operation that started a VM.
type StartResult struct {
	// ConsoleOffset is the size of the console log just before the VM
	// started: read from there to see only this boot's output.
	ConsoleOffset int64 `json:"consoleOffset"`
}

// AdoptRequest asks godwit to take a libvirt domain it did not define
// under management.
type AdoptRequest struct {
	DryRun bool `json:"dryRun,omitempty" doc:"Show the spec godwit would derive and what it would keep as it is; record nothing."`
}

// AdoptResult is the VM as adopting makes it (or, with dryRun, would).
type AdoptResult struct {
	DryRun bool `json:"dryRun,omitempty"`
	VM     VM   `json:"vm" doc:"The adopted VM: its derived spec, disks, NICs, and kept, what the spec does not express."`
}

// ApplyResult says what an apply changed.
type ApplyResult struct {
	VM      VM       `json:"vm"`
	Created bool     `json:"created,omitempty"`
	Changes []string `json:"changes" doc:"What changed, one line each; empty when nothing did."`
	Live    []string `json:"live,omitempty" doc:"The changes made to the running VM at once (the rest were made to its definition: a stopped VM gets them at its next start)."`
}
