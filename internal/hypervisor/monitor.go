package hypervisor

import "context"

// DomainStats is one domain's state and counters, as one bulk stats call
// returns them for every domain at once.
type DomainStats struct {
	Name   string
	UUID   string
	State  State
	Reason string
	// CPUTime is the CPU time the domain used, in nanoseconds.
	CPUTime uint64
	VCPUs   int
	// Memory in bytes: the balloon's current size, the most it may grow
	// to, and the QEMU process's resident set.
	MemoryCurrent uint64
	MemoryMax     uint64
	MemoryRSS     uint64
	Disks         []DiskStats
	NICs          []NICStats
}

// DiskStats are one disk's I/O counters since the domain started.
type DiskStats struct {
	Name                  string // target device, e.g. vda
	ReadBytes, WriteBytes uint64
	ReadOps, WriteOps     uint64
}

// NICStats are one interface's counters since the domain started.
type NICStats struct {
	Name                 string // host-side device, e.g. vnet3
	RxBytes, TxBytes     uint64
	RxPackets, TxPackets uint64
}

// Stats reads the counters of every domain in one call, whatever their
// number (libvirt's ConnectGetAllDomainStats).
type Stats interface {
	DomainStats(ctx context.Context) ([]DomainStats, error)
}

// Lifecycle events, as libvirt's virDomainEventType.
const (
	EventDefined     = "defined"
	EventUndefined   = "undefined"
	EventStarted     = "started"
	EventSuspended   = "suspended"
	EventResumed     = "resumed"
	EventStopped     = "stopped"
	EventShutdown    = "shutdown"
	EventPMSuspended = "pmsuspended"
	EventCrashed     = "crashed"
)

// DomainEvent is a lifecycle event of a domain.
type DomainEvent struct {
	Domain string
	UUID   string
	Event  string // one of the Event constants
	Detail string // libvirt's detail, e.g. "booted", "destroyed", "crashed"
}

// Events streams lifecycle events.
type Events interface {
	// DomainEvents subscribes to the lifecycle events of every domain. The
	// channel closes when ctx ends or the connection to libvirt is lost;
	// the caller subscribes again (and should re-read states, since events
	// in between are lost).
	DomainEvents(ctx context.Context) (<-chan DomainEvent, error)
}
