package api

import (
	"encoding/json"
	"time"
)

// TransferStats is the result (Operation.Result) of an operation that
// moves data: a migration (kind vm.migrate) or a backup (backup.create).
// godwit's metrics read it to fill their histograms
// (godwit_migration_duration_seconds, godwit_migration_bytes,
// godwit_migration_downtime_seconds, godwit_backup_duration_seconds,
// godwit_backup_bytes). Operations of those kinds should set it with
// op.SetResult; a result of another shape may carry the same fields
// (MigrationReport does, with totalMs for durationMs).
type TransferStats struct {
	// Bytes moved: memory and disks for a migration, what was written to
	// the backup repository for a backup.
	Bytes int64 `json:"bytes" doc:"Bytes transferred."`
	// DurationMs is the transfer's wall time; when 0, the operation's own
	// duration is used.
	DurationMs int64 `json:"durationMs,omitempty" doc:"Wall time of the transfer in milliseconds."`
	// DowntimeMs is how long the guest was paused (migrations only).
	DowntimeMs int64 `json:"downtimeMs,omitempty" doc:"Guest downtime in milliseconds (migrations)."`
}

// Health check statuses, with the exit codes of Nagios/Sensu plugins.
const (
	CheckOK       = "ok"       // exit 0
	CheckWarning  = "warning"  // exit 1
	CheckCritical = "critical" // exit 2
)

// CheckSeverity is a check status's exit code: 0 ok, 1 warning, 2
// critical (and for any other status).
func CheckSeverity(status string) int {
	switch status {
	case CheckOK:
		return 0
	case CheckWarning:
		return 1
	}
	return 2
}

// WorstStatus is the worst status of the checks; ok when there are none.
func WorstStatus(checks []Check) string {
	worst := CheckOK
	for _, ch := range checks {
		if CheckSeverity(ch.Status) > CheckSeverity(worst) {
			worst = ch.Status
		}
	}
	return worst
}

// Check is one health check's outcome.
type Check struct {
	Name    string   `json:"name" doc:"libvirtd, vm-stopped-unexpectedly, pool-space, failed-backup or failed-migration." example:"libvirtd"`
	Status  string   `json:"status" enum:"ok,warning,critical"`
	Message string   `json:"message" doc:"What was found, for people."`
	Items   []string `json:"items,omitempty" doc:"The VMs, pools or operations the message is about."`
}

// HealthReport is the answer to GET /v1/host/checks.
type HealthReport struct {
	Status string  `json:"status" enum:"ok,warning,critical" doc:"The worst status of the checks."`
	Checks []Check `json:"checks"`
}

// Event types on /v1/events.
const (
	// EventVM is a libvirt lifecycle event of a domain.
	EventVM = "vm"
	// EventOperation is an operation's progress or end.
	EventOperation = "operation"
	// EventLost says events were lost: the id asked to resume from is
	// older than what the daemon keeps (or from before a restart).
	EventLost = "lost"
)

// Event is one event of the stream. Ids increase; resuming with
// Last-Event-ID sends what came after it.
type Event struct {
	ID        uint64          `json:"id"`
	Time      time.Time       `json:"time"`
	Type      string          `json:"type" enum:"vm,operation,lost"`
	VM        string          `json:"vm,omitempty" doc:"The VM the event is about, if any."`
	Lifecycle *Lifecycle      `json:"lifecycle,omitempty"`
	Operation *Operation      `json:"operation,omitempty"`
	Message   string          `json:"message,omitempty"`
	Extra     json.RawMessage `json:"extra,omitempty"`
}

// Lifecycle is a libvirt domain lifecycle event.
type Lifecycle struct {
	Event  string `json:"event" doc:"defined, undefined, started, suspended, resumed, stopped, shutdown, pmsuspended or crashed." example:"stopped"`
	Detail string `json:"detail,omitempty" doc:"libvirt's detail, e.g. booted, destroyed, crashed." example:"destroyed"`
}

// VMStats are a VM's counters at one moment: two samples give rates.
type VMStats struct {
	Name          string      `json:"name"`
	State         VMState     `json:"state"`
	Managed       bool        `json:"managed"`
	CPUTimeNs     uint64      `json:"cpuTimeNs" doc:"CPU time used since start, in nanoseconds."`
	VCPUs         int         `json:"vcpus"`
	MemoryCurrent Size        `json:"memoryCurrent"`
	MemoryMax     Size        `json:"memoryMax"`
	MemoryRSS     Size        `json:"memoryRss" doc:"Resident memory of the QEMU process."`
	Disks         []DiskStats `json:"disks,omitempty"`
	NICs          []NICStats  `json:"nics,omitempty"`
}

// DiskStats are a disk's I/O counters.
type DiskStats struct {
	Name       string `json:"name"`
	ReadBytes  uint64 `json:"readBytes"`
	WriteBytes uint64 `json:"writeBytes"`
	ReadOps    uint64 `json:"readOps"`
	WriteOps   uint64 `json:"writeOps"`
}

// NICStats are a network interface's counters.
type NICStats struct {
	Name      string `json:"name"`
	RxBytes   uint64 `json:"rxBytes"`
	TxBytes   uint64 `json:"txBytes"`
	RxPackets uint64 `json:"rxPackets"`
	TxPackets uint64 `json:"txPackets"`
}

// StatsSample is the answer to GET /v1/stats: every VM's counters, read in
// one libvirt call, and when.
type StatsSample struct {
	Time time.Time `json:"time"`
	VMs  []VMStats `json:"vms"`
}

// UsageHistory is a VM's recent usage, one point per step, oldest first,
// in columns (what a graph wants). Rates are averages over each step.
type UsageHistory struct {
	VM          string    `json:"vm"`
	StepSeconds float64   `json:"stepSeconds" doc:"Seconds between points."`
	Time        []int64   `json:"time" doc:"Each point's time, Unix seconds."`
	CPU         []float64 `json:"cpu" doc:"CPU used, in cores (1.0 = one core busy)."`
	MemoryRSS   []float64 `json:"memoryRss" doc:"Resident memory of the QEMU process, bytes."`
	DiskRead    []float64 `json:"diskRead" doc:"Bytes read per second, all disks."`
	DiskWrite   []float64 `json:"diskWrite" doc:"Bytes written per second, all disks."`
	NetRx       []float64 `json:"netRx" doc:"Bytes received per second, all interfaces."`
	NetTx       []float64 `json:"netTx" doc:"Bytes sent per second, all interfaces."`
}

// UsageHistoryList is every VM's history (GET /v1/history).
type UsageHistoryList struct {
	StepSeconds float64        `json:"stepSeconds"`
	VMs         []UsageHistory `json:"vms"`
}

// ConsoleNote is a text message of the console websocket
// (/v1/vms/{name}/console/ws); its binary messages are the console's bytes.
type ConsoleNote struct {
	ReadOnly bool   `json:"readOnly,omitempty"`
	Error    string `json:"error,omitempty"`
}
