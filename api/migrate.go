package api

import "time"

// Migration modes and policies.
const (
	MigrateLive    = "live"    // the VM runs while its memory (and disks) move
	MigrateOffline = "offline" // the guest paused while its memory (and disks) move once
	MigrateCold    = "cold"    // a shut-off VM: its definition and disks

	PolicyAuto     = "auto"     // precopy; when it does not converge, auto-converge then postcopy
	PolicyPrecopy  = "precopy"  // precopy only (may never finish under heavy writes)
	PolicyPostcopy = "postcopy" // switch to postcopy after the first pass

	// How an offline move carries the guest.
	TransferStream = "stream" // libvirt's migration of the paused guest, QEMU to QEMU over QEMU's TLS (disks by NBD)
	TransferFiles  = "files"  // save the memory to a file, send it and the disks between the daemons, restore there
)

// MigrateRequest asks to move a VM to another host.
type MigrateRequest struct {
	To                     string `json:"to" doc:"The destination host (a peer)."`
	Mode                   string `json:"mode,omitempty" enum:"live,offline,cold" doc:"live (default for a running VM), offline, or cold (default for a shut-off VM)."`
	Policy                 string `json:"policy,omitempty" enum:"auto,precopy,postcopy" doc:"Convergence policy of a live migration (default auto)."`
	MaxDowntimeMs          int    `json:"maxDowntimeMs,omitempty" doc:"Downtime target of a live migration (default 100)."`
	BandwidthMiB           int    `json:"bandwidthMiB,omitempty" doc:"Bandwidth cap in MiB/s (default none)."`
	Parallel               int    `json:"parallel,omitempty" doc:"Parallel migration connections (multifd); 0 or 1 for one."`
	TLS                    bool   `json:"tls,omitempty" doc:"Encrypt the migration stream with QEMU's native TLS."`
	TimeoutSeconds         int    `json:"timeoutSeconds,omitempty" doc:"Abort a precopy migration that has not finished by then (default 600)."`
	ProgressTimeoutSeconds int    `json:"progressTimeoutSeconds,omitempty" doc:"Abort when no byte moved for this long, e.g. a dead link (default 60)."`
	PostcopyAfterSeconds   int    `json:"postcopyAfterSeconds,omitempty" doc:"auto policy: switch to postcopy when not converged after this long (default 20)."`
	Transfer               string `json:"transfer,omitempty" enum:"stream,files" doc:"Offline moves: stream (default; falls back to files, saying why, when QEMU TLS is not set up on both hosts or the VM has snapshots) or files."`
}

// MigrationReport is the result of a vm.migrate operation.
type MigrationReport struct {
	VM           string           `json:"vm"`
	From         string           `json:"from"`
	To           string           `json:"to"`
	Mode         string           `json:"mode"`
	Policy       string           `json:"policy,omitempty"`
	SharedDisks  int              `json:"sharedDisks"`
	CopiedDisks  int              `json:"copiedDisks"`
	Transfer     string           `json:"transfer,omitempty" doc:"Offline moves: stream or files, the transfer that ran."`
	TransferNote string           `json:"transferNote,omitempty" doc:"Why an offline move that was not asked for files sent files."`
	TotalMs      uint64           `json:"totalMs" doc:"From the start of the move until the VM ran on the destination."`
	DowntimeMs   uint64           `json:"downtimeMs" doc:"How long the guest was paused (libvirt's job stats for live moves; 0 when a postcopy switchover was not measured; offline: from its pause here until it ran there)."`
	Bytes        uint64           `json:"bytes" doc:"Bytes sent: memory and disks."`
	MemoryBytes  uint64           `json:"memoryBytes"`
	DiskBytes    uint64           `json:"diskBytes"`
	Iterations   uint64           `json:"iterations,omitempty"`
	Postcopy     bool             `json:"postcopy,omitempty" doc:"The migration switched to postcopy."`
	AutoConverge uint64           `json:"autoConvergePercent,omitempty" doc:"The highest CPU throttle auto-converge applied."`
	Phases       *MigrationPhases `json:"phases,omitempty" doc:"Where a live move's time went, phase by phase."`
	Warning      string           `json:"warning,omitempty" doc:"The VM moved, but something after its move failed (its persistent definition on the destination could not be written)."`
}

// MigrationPhases is where a live migration's (or an offline stream's)
// time went: libvirt's v3 protocol, which the source and destination
// daemons relay. A live guest is paused from the end of Perform (QEMU's
// stop-and-copy) until the destination's Finish resumes it: its downtime
// is the tail of Perform plus FinishMs. An offline stream's guest is
// paused from the start of Perform: PerformMs plus FinishMs.
type MigrationPhases struct {
	BeginMs       uint64 `json:"beginMs" doc:"Begin on the source: the domain XML and cookie."`
	PrepareMs     uint64 `json:"prepareMs" doc:"Prepare, asked of the destination daemon: its incoming QEMU started."`
	PerformMs     uint64 `json:"performMs" doc:"Perform on the source: the memory (and disks) sent, ending with the stop-and-copy."`
	FinishMs      uint64 `json:"finishMs" doc:"From the end of Perform until the destination daemon answered Finish (the guest resumed there)."`
	DestFinishMs  uint64 `json:"destFinishMs" doc:"libvirt's Finish on the destination (it resumes the guest), within FinishMs."`
	DestHandlerMs uint64 `json:"destHandlerMs" doc:"The destination daemon's whole answer to Finish: libvirt's Finish, then recording the VM (after the guest resumed); FinishMs less this is the relay between the daemons."`
	ConfirmMs     uint64 `json:"confirmMs" doc:"Confirm on the source once the VM ran there: libvirt ends the source QEMU. Not in TotalMs. A live move ends after it; an offline stream ends before it (0 here: the source ends its domain after the operation)."`
}

// EvacuateRequest asks to move every running VM off this host.
type EvacuateRequest struct {
	To       string `json:"to,omitempty" doc:"One destination for all; default: the peer with the most free memory that passes the checks, per VM."`
	Parallel int    `json:"parallel,omitempty" doc:"Migrations at once (default 1)."`
	MigrateRequest
}

// EvacuationReport is the result of a host.evacuate operation.
type EvacuationReport struct {
	Moved  []MigrationReport `json:"moved"`
	Failed []EvacuationMiss  `json:"failed"`
}

// EvacuationMiss is a VM that did not move, and why.
type EvacuationMiss struct {
	VM     string `json:"vm"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason"`
}

// Peer-to-peer wire types: the source daemon drives, the destination
// daemon answers. Not for users.

// MigrationDisk is one disk of a moving VM.
type MigrationDisk struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Size   Size   `json:"size"`
	Path   string `json:"path" doc:"The path on the source."`
	Pool   string `json:"pool,omitempty" doc:"The pool on the source."`
	Volume string `json:"volume,omitempty" doc:"The volume on the source."`
	// Probe is a file the source wrote next to the disk; the destination
	// reads it to tell shared storage.
	Probe      string `json:"probe,omitempty"`
	ProbeValue string `json:"probeValue,omitempty"`
	Shared     bool   `json:"shared,omitempty" doc:"Set by the destination's preflight."`
	// DeclaredShared: the disk's pool on the source is marked shared.
	DeclaredShared bool `json:"declaredShared,omitempty"`
	// DestPath is where the disk lives on the destination.
	DestPath   string `json:"destPath,omitempty"`
	DestPool   string `json:"destPool,omitempty"`
	DestVolume string `json:"destVolume,omitempty"`
}

// MigrationNIC is one NIC of a moving VM.
type MigrationNIC struct {
	Network string `json:"network"`
	MAC     string `json:"mac"`
	Model   string `json:"model,omitempty"`
	// Libvirt is the network's libvirt name on the source.
	Libvirt string `json:"libvirt"`
}

// MigrationOffer describes a VM that wants to move (preflight and prepare).
type MigrationOffer struct {
	ID        string          `json:"id"`
	Mode      string          `json:"mode"`
	VM        string          `json:"vm"`
	UUID      string          `json:"uuid"`
	Spec      VMSpec          `json:"spec"`
	Disks     []MigrationDisk `json:"disks"`
	NICs      []MigrationNIC  `json:"nics,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	// Boot is the boot the domain has (boot.image resolved to files).
	Boot *Boot `json:"boot,omitempty"`
	// Seed is the cloud-init seed ISO's path on the source ("" for none);
	// the destination renders its own from the spec.
	Seed string `json:"seed,omitempty"`
	// Adopted VMs keep their own definition (and metadata) wherever they
	// go; Kept is what their spec does not express.
	Adopted  bool     `json:"adopted,omitempty" doc:"The VM is an adopted libvirt domain."`
	Kept     []string `json:"kept,omitempty" doc:"What an adopted VM's spec does not express."`
	VirtType string   `json:"virtType" doc:"kvm or qemu: the domain type."`
	CPUXML   string   `json:"cpuXML,omitempty"`
	TLS      bool     `json:"tls,omitempty" doc:"The stream uses QEMU's native TLS."`
	Transfer string   `json:"transfer,omitempty" doc:"Offline moves: stream (libvirt's migration protocol, as live) or files."`
	// Prepare only:
	XML          string `json:"xml,omitempty" doc:"Begin3's domain XML (live) or the inactive XML."`
	Cookie       []byte `json:"cookie,omitempty"`
	Flags        uint32 `json:"flags,omitempty"`
	BandwidthMiB uint64 `json:"bandwidthMiB,omitempty"`
	Parallel     int    `json:"parallel,omitempty"`
}

// PreflightAnswer lists what stops a move; empty Problems means go.
type PreflightAnswer struct {
	Problems []string        `json:"problems"`
	Disks    []MigrationDisk `json:"disks" doc:"The offer's disks with Shared and the destination paths set."`
	NoStream string          `json:"noStream,omitempty" doc:"Why this host cannot receive an offline move as a stream (the source then sends files)."`
}

// PrepareAnswer is Prepare3's answer.
type PrepareAnswer struct {
	Cookie []byte `json:"cookie"`
	URI    string `json:"uri"`
}

// FinishRequest ends a migration on the destination.
type FinishRequest struct {
	Cookie    []byte   `json:"cookie,omitempty"`
	Cancelled bool     `json:"cancelled,omitempty"`
	Snapshots []string `json:"snapshots,omitempty" doc:"Snapshot XMLs to redefine, parents first."`
	// Offline: restore from the uploaded state file.
	Paused bool `json:"paused,omitempty"`
}

// FinishAnswer is Finish3's answer, with the destination's job stats.
type FinishAnswer struct {
	Cookie      []byte `json:"cookie"`
	DowntimeMs  uint64 `json:"downtimeMs"`
	TotalMs     uint64 `json:"totalMs"`
	Bytes       uint64 `json:"bytes"`
	MemoryBytes uint64 `json:"memoryBytes"`
	DiskBytes   uint64 `json:"diskBytes"`
	// Finish3Ms is how long libvirt's Finish took here (it resumes the
	// guest); HandlerMs the whole answer (the VM recorded after).
	Finish3Ms uint64 `json:"finish3Ms,omitempty"`
	HandlerMs uint64 `json:"handlerMs,omitempty"`
	// Warning: the guest runs here, but something after Finish failed.
	Warning string `json:"warning,omitempty"`
}
