package hypervisor

import "context"

// Migration flags, as libvirt's virDomainMigrateFlags.
const (
	MigrateLive             uint32 = 1 << 0
	MigratePersistDest      uint32 = 1 << 3
	MigrateUndefineSource   uint32 = 1 << 4
	MigratePaused           uint32 = 1 << 5
	MigrateNonSharedDisk    uint32 = 1 << 6
	MigrateChangeProtection uint32 = 1 << 8
	MigrateUnsafe           uint32 = 1 << 9
	MigrateAbortOnError     uint32 = 1 << 12
	MigrateAutoConverge     uint32 = 1 << 13
	MigratePostcopy         uint32 = 1 << 15
	MigrateTLS              uint32 = 1 << 16
	MigrateParallel         uint32 = 1 << 17
)

// MigrateParams are the typed parameters of the migration phases.
type MigrateParams struct {
	URI           string // migrate_uri, e.g. tcp://10.0.0.2 (Prepare) or its answer (Perform)
	ListenAddress string // listen_address on the destination
	DestXML       string // destination_xml
	PersistXML    string // persistent_xml
	DestName      string // destination_name
	BandwidthMiB  uint64 // bandwidth, MiB/s (0: unlimited)
	Parallel      int    // parallel.connections (with MigrateParallel)
	MigrateDisks  []string
}

// Session is one dedicated libvirt connection that carries the phases of
// one migration on one side: libvirt ties a migration to the connection
// that began (or prepared) it, and closing it aborts the migration.
type Session interface {
	Begin(ctx context.Context, dom string, p MigrateParams, flags uint32) (cookie []byte, xml string, err error)
	Prepare(ctx context.Context, p MigrateParams, cookie []byte, flags uint32) (cookieOut []byte, uri string, err error)
	Perform(ctx context.Context, dom string, p MigrateParams, cookie []byte, flags uint32) (cookieOut []byte, err error)
	Finish(ctx context.Context, p MigrateParams, cookie []byte, flags uint32, cancelled bool) (cookieOut []byte, err error)
	Confirm(ctx context.Context, dom string, p MigrateParams, cookie []byte, flags uint32, cancelled bool) error
	// Alive reports whether the connection still stands (a dead one means
	// libvirt dropped the migration).
	Alive() bool
	Close() error
}

// JobStats is a domain job's progress (virDomainGetJobStats).
type JobStats struct {
	Active        bool   // a job runs
	Completed     bool   // from the completed-job stats
	Operation     int    // libvirt's job operation (migration out = 4)
	ElapsedMs     uint64 // time_elapsed
	DowntimeMs    uint64 // downtime (completed jobs)
	SetupMs       uint64
	DataTotal     uint64
	DataProcessed uint64
	DataRemaining uint64
	MemTotal      uint64
	MemProcessed  uint64
	MemRemaining  uint64
	MemBps        uint64 // memory_bps: transfer rate
	DirtyRate     uint64 // memory_dirty_rate, pages/s
	PageSize      uint64 // memory_page_size
	Iteration     uint64 // memory_iteration
	Postcopy      bool   // memory_postcopy_requests > 0 or the job says so
	DiskTotal     uint64
	DiskProcessed uint64
	DiskRemaining uint64
	AutoConverge  uint64 // auto_converge_throttle, percent
}

// Migrator is what a migration needs beyond Domains and Storage.
type Migrator interface {
	// OpenSession dials a dedicated connection for one migration.
	OpenSession(ctx context.Context) (Session, error)
	JobStats(ctx context.Context, dom string, completed bool) (JobStats, error)
	AbortJob(ctx context.Context, dom string) error
	StartPostcopy(ctx context.Context, dom string) error
	SetMaxDowntime(ctx context.Context, dom string, ms uint64) error
	// CompareCPU says whether a CPU definition (XML) runs on this host as
	// a virtType (kvm or qemu) domain: libvirt's identical (1), superset
	// (2) or incompatible (0).
	CompareCPU(ctx context.Context, virtType, cpuXML string) (int, error)
	// Save stops the domain, writing its memory state to path.
	Save(ctx context.Context, dom, path string) error
	// Restore starts a domain from a state file, with xml as its definition.
	Restore(ctx context.Context, path, xml string, paused bool) error
	// Snapshots returns the domain's snapshot XMLs, parents first.
	SnapshotXMLs(ctx context.Context, dom string) ([]string, error)
	// RedefineSnapshot records a snapshot's metadata (after a move).
	RedefineSnapshot(ctx context.Context, dom, xml string, current bool) error
}
