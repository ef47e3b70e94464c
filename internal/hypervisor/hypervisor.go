// Package hypervisor is the small interface godwit uses to run domains,
// their storage and their networks, split by consumer need (Domains,
// Storage, Host, Networks, Devices). The real implementation is
// hypervisor/libvirt (go-libvirt over libvirt's unix socket);
// hypervisor/fake is an in-memory one for unit tests. Both implement the
// whole of Hypervisor.
//
// Every call takes a context and honours it even though libvirt's RPC has
// none: a hung libvirtd must not hang the daemon.
package hypervisor

import (
	"context"
	"errors"
	"io"
)

// Errors every implementation wraps, so callers can use errors.Is.
var (
	// ErrUnavailable: libvirt cannot be reached right now.
	ErrUnavailable = errors.New("libvirt unavailable")
	// ErrNotFound: no such domain, pool or volume.
	ErrNotFound = errors.New("not found")
	// ErrInvalidState: the domain is not in a state that allows the call
	// (libvirt's VIR_ERR_OPERATION_INVALID).
	ErrInvalidState = errors.New("invalid state")
	// ErrExists: a domain, pool or volume with that name exists.
	ErrExists = errors.New("already exists")
	// ErrUnsupported: this libvirt or QEMU cannot do what was asked.
	ErrUnsupported = errors.New("unsupported")
	// ErrCheckpointBroken: a checkpoint's bitmaps are missing or
	// inconsistent (after a QEMU crash); only a full backup helps.
	ErrCheckpointBroken = errors.New("checkpoint broken")
)

// State is a domain's libvirt state.
type State int

// Domain states, as libvirt's virDomainState.
const (
	StateNoState State = iota
	StateRunning
	StateBlocked
	StatePaused
	StateShutdown // shutting down
	StateShutoff
	StateCrashed
	StatePMSuspended
)

// Active reports whether a QEMU process exists for this state.
func (s State) Active() bool {
	return s != StateShutoff && s != StateNoState
}

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateBlocked:
		return "blocked"
	case StatePaused:
		return "paused"
	case StateShutdown:
		return "shutting down"
	case StateShutoff:
		return "shut off"
	case StateCrashed:
		return "crashed"
	case StatePMSuspended:
		return "pmsuspended"
	}
	return "no state"
}

// Domain is what godwit needs to know of a libvirt domain.
type Domain struct {
	Name       string
	UUID       string
	State      State
	Reason     string // libvirt's state reason, e.g. "booted", "destroyed"
	Persistent bool
	Autostart  bool
}

// Domains runs domains.
type Domains interface {
	// Define makes a persistent domain from XML. ErrExists if the name is taken.
	Define(ctx context.Context, xml string) (Domain, error)
	// Undefine removes a domain's definition; it must not be running.
	Undefine(ctx context.Context, name string) error
	Start(ctx context.Context, name string) error
	// Shutdown asks the guest to shut down (ACPI) and returns at once.
	Shutdown(ctx context.Context, name string) error
	// Destroy stops the domain at once (pulls the plug).
	Destroy(ctx context.Context, name string) error
	Reboot(ctx context.Context, name string) error
	Suspend(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	Lookup(ctx context.Context, name string) (Domain, error)
	List(ctx context.Context) ([]Domain, error)
	// XML returns the domain XML (the inactive, persistent one if inactive).
	XML(ctx context.Context, name string, inactive bool) (string, error)
	SetAutostart(ctx context.Context, name string, on bool) error
	// RunTransient starts a domain that vanishes when it stops.
	RunTransient(ctx context.Context, xml string) error
}

// Pool is a storage pool to ensure.
type Pool struct {
	Name string
	Type string // "dir"
	Path string
}

// PoolInfo is a pool as it is.
type PoolInfo struct {
	Name       string
	Type       string
	Path       string
	Source     string // device, volume group or host:/dir, if any
	Active     bool
	Autostart  bool
	Capacity   uint64
	Allocation uint64
	Available  uint64
}

// Volume is a volume to create. With BackingPath set it is a qcow2 overlay.
type Volume struct {
	Name          string
	Capacity      uint64
	Format        string // qcow2 or raw
	BackingPath   string
	BackingFormat string
}

// VolumeInfo is a volume as it is.
type VolumeInfo struct {
	Name       string
	Path       string
	Capacity   uint64
	Allocation uint64
	Format     string // as libvirt knows it: qcow2, raw...
	Backing    string // backing file path, if any
}

// Storage manages pools and volumes.
type Storage interface {
	// EnsurePool makes sure the pool exists, is active and autostarts.
	// A pool of that name at a different path is an error.
	EnsurePool(ctx context.Context, p Pool) (PoolInfo, error)
	PoolInfo(ctx context.Context, name string) (PoolInfo, error)
	CreateVolume(ctx context.Context, pool string, v Volume) (VolumeInfo, error)
	DeleteVolume(ctx context.Context, pool, name string) error
	VolumeInfo(ctx context.Context, pool, name string) (VolumeInfo, error)
	ResizeVolume(ctx context.Context, pool, name string, capacity uint64) error
}

// Pools manages storage pools and volumes beyond the daemon's own pool:
// what `godwit pool` and `godwit volume` do.
type Pools interface {
	ListPools(ctx context.Context) ([]PoolInfo, error)
	// DefinePool defines a pool from XML, builds it (with buildFlags, for
	// libvirt's StoragePoolBuild), starts it and marks it autostart. On
	// failure nothing stays defined.
	DefinePool(ctx context.Context, xml string, build bool, buildFlags uint32) (PoolInfo, error)
	// DeletePool stops and undefines a pool; with removeDir it also
	// deletes its (empty) directory.
	DeletePool(ctx context.Context, name string, removeDir bool) error
	ListVolumes(ctx context.Context, pool string) ([]VolumeInfo, error)
	// CloneVolume copies volume from in fromPool into a new volume v in pool.
	CloneVolume(ctx context.Context, pool string, v Volume, fromPool, from string) (VolumeInfo, error)
	// UploadVolume writes length bytes from r into the volume at offset 0.
	UploadVolume(ctx context.Context, pool, name string, r io.Reader, length uint64) error
	// DownloadVolume writes the whole volume to w.
	DownloadVolume(ctx context.Context, pool, name string, w io.Writer) error
}

// Devices changes a domain's devices: hot-plug on running domains.
type Devices interface {
	// AttachDevice adds a device (XML) to the running domain when live,
	// and to its persistent definition.
	AttachDevice(ctx context.Context, domain, xml string, live bool) error
	// DetachDevice removes a device (XML) likewise. Live detach needs the
	// guest's cooperation and may complete after this returns.
	DetachDevice(ctx context.Context, domain, xml string, live bool) error
	// BlockResize grows a running domain's disk (by target, e.g. vdb).
	BlockResize(ctx context.Context, domain, target string, size uint64) error
	// InterfaceAddresses returns a running domain's interface addresses
	// from src. From the agent, ErrAgentUnavailable when there is none.
	InterfaceAddresses(ctx context.Context, domain string, src AddressSource) ([]Interface, error)
}

// HostInfo is the host as libvirt sees it.
type HostInfo struct {
	Hostname       string
	LibvirtVersion string
	QEMUVersion    string
	CPUs           int
	CPUModel       string
	MemoryBytes    uint64
	FreeBytes      uint64
	// VirtTypes are the domain types libvirt offers for x86_64: "qemu", "kvm".
	VirtTypes []string
	// MaxVCPUs is the most vCPUs one domain may have.
	MaxVCPUs int
	// NUMANodes is the host's number of NUMA nodes (0: not known).
	NUMANodes int
	// QEMU is who QEMU processes run as (libvirt's DAC base label, from
	// qemu.conf's user and group); nil when libvirt does not say.
	QEMU *DACLabel
}

// DACLabel is a user and group, as libvirt's DAC security driver labels
// QEMU processes and the files they open.
type DACLabel struct {
	UID, GID int
}

// Host tells about the host and the connection.
type Host interface {
	HostInfo(ctx context.Context) (HostInfo, error)
	// Ping checks that libvirt answers.
	Ping(ctx context.Context) error
}

// Hypervisor is the whole contract: what the libvirt implementation
// provides, and the fake too, so that no feature is switched on by
// asking which one it is.
type Hypervisor interface {
	Domains
	Storage
	Pools
	Devices
	Host
	Stats
	Events
	Networks
	Migrator
	Backups
	Snapshots
	Tuning
}

// Checkpoint is a libvirt checkpoint of a domain (dirty bitmaps in its
// qcow2 disks that record what changed since it was made).
type Checkpoint struct {
	Name    string
	Parent  string
	Created int64 // unix seconds
}

// Backups runs libvirt backup jobs and keeps checkpoints.
type Backups interface {
	// BeginBackup starts a backup job from libvirt's backup XML, making
	// the checkpoint described by checkpointXML at the same instant.
	BeginBackup(ctx context.Context, name, backupXML, checkpointXML string) error
	// ActiveJob reports whether the domain has a job running and, for a
	// backup job, says so.
	ActiveJob(ctx context.Context, name string) (active, backup bool, err error)
	// AbortJob ends the domain's running job (a pull backup ends so).
	AbortJob(ctx context.Context, name string) error
	// Checkpoints lists the domain's checkpoints, oldest first.
	Checkpoints(ctx context.Context, name string) ([]Checkpoint, error)
	// DeleteCheckpoint deletes one checkpoint (merging its bitmap into its
	// parent's). Never on a checkpoint whose bitmaps are broken.
	DeleteCheckpoint(ctx context.Context, name, checkpoint string) error
	// StartPaused boots a defined domain with its vCPUs paused.
	StartPaused(ctx context.Context, name string) error
}

// Snapshot is a libvirt snapshot of a domain.
type Snapshot struct {
	Name        string
	Parent      string
	Description string
	Created     int64  // unix seconds
	State       string // the domain's state when taken: running, shutoff...
	Memory      bool   // holds the guest's memory (revert resumes it)
	External    bool   // disks are external overlays (disk-only)
	Current     bool
	// Files are the external snapshot's overlay files, one per disk.
	Files []string
	XML   string
}

// Snapshots takes, lists, reverts to and deletes snapshots.
type Snapshots interface {
	CreateSnapshot(ctx context.Context, name, snapshotXML string, diskOnly, quiesce bool) error
	Snapshots(ctx context.Context, name string) ([]Snapshot, error)
	RevertSnapshot(ctx context.Context, name, snapshot string) error
	DeleteSnapshot(ctx context.Context, name, snapshot string) error
	// MakeCurrent redefines a snapshot from its own XML as the current one
	// (after godwit reverted to it by hand).
	MakeCurrent(ctx context.Context, name, snapshotXML string) error
}
