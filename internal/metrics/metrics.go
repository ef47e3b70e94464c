// Package metrics owns godwit's Prometheus metrics: per VM (state, CPU,
// memory, disk and network counters), per host (libvirt reachable, VMs by
// state, memory, pools, health checks) and of godwit itself (operations,
// migration and backup histograms, API latency).
//
// VM and host metrics are read at scrape time from one Scrape that the
// daemon gathers with one bulk libvirt stats call, whatever the number of
// VMs. Operation and request metrics are fed as they happen. It serves no
// routes and calls no libvirt itself.
package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/health"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// Scrape is what the VM and host metrics show: one snapshot of libvirt
// (health.Input), the host's facts and the checks' report.
type Scrape struct {
	health.Input
	// Host is nil when libvirt did not answer.
	Host   *hypervisor.HostInfo
	Report api.HealthReport
	// Unexpected are the managed VMs that stopped unexpectedly.
	Unexpected map[string]string
}

// Gather takes a Scrape; Collect calls it once per scrape.
type Gather func(ctx context.Context) Scrape

// ScrapeTimeout bounds one Gather.
const ScrapeTimeout = 15 * time.Second

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// VM and host metrics (read at scrape time).
var (
	vmInfo        = desc("godwit_vm_info", "A VM godwit sees (1), with its UUID and whether godwit manages it.", "vm", "uuid", "managed")
	vmState       = desc("godwit_vm_state", "1 for the VM's current state (running, paused, stopped, crashed, ...).", "vm", "state")
	vmCPU         = desc("godwit_vm_cpu_seconds_total", "CPU time the VM used since it started.", "vm")
	vmVCPUs       = desc("godwit_vm_vcpus", "vCPUs the VM runs with.", "vm")
	vmMemCurrent  = desc("godwit_vm_memory_current_bytes", "The VM's current memory (balloon).", "vm")
	vmMemMax      = desc("godwit_vm_memory_max_bytes", "The most memory the VM may have.", "vm")
	vmMemRSS      = desc("godwit_vm_memory_rss_bytes", "Resident memory of the VM's QEMU process.", "vm")
	vmDiskRdBytes = desc("godwit_vm_disk_read_bytes_total", "Bytes read from a VM disk since the VM started.", "vm", "disk")
	vmDiskWrBytes = desc("godwit_vm_disk_write_bytes_total", "Bytes written to a VM disk since the VM started.", "vm", "disk")
	vmDiskRdOps   = desc("godwit_vm_disk_read_ops_total", "Read requests to a VM disk since the VM started.", "vm", "disk")
	vmDiskWrOps   = desc("godwit_vm_disk_write_ops_total", "Write requests to a VM disk since the VM started.", "vm", "disk")
	vmNetRxBytes  = desc("godwit_vm_network_receive_bytes_total", "Bytes a VM interface received.", "vm", "interface")
	vmNetTxBytes  = desc("godwit_vm_network_transmit_bytes_total", "Bytes a VM interface sent.", "vm", "interface")
	vmNetRxPkts   = desc("godwit_vm_network_receive_packets_total", "Packets a VM interface received.", "vm", "interface")
	vmNetTxPkts   = desc("godwit_vm_network_transmit_packets_total", "Packets a VM interface sent.", "vm", "interface")
	vmUnexpected  = desc("godwit_vm_stopped_unexpectedly", "1 while a managed VM is stopped (or crashed, or frozen on an I/O error) without godwit being asked.", "vm")

	libvirtUp    = desc("godwit_libvirt_up", "1 when libvirtd answers, 0 when it does not.")
	hostVMs      = desc("godwit_host_vms", "VMs on this host by state.", "state")
	hostMem      = desc("godwit_host_memory_bytes", "The host's memory.")
	hostMemFree  = desc("godwit_host_memory_free_bytes", "The host's free (available) memory.")
	hostCPUs     = desc("godwit_host_cpus", "The host's CPUs.")
	poolCapacity = desc("godwit_pool_capacity_bytes", "A storage pool's capacity.", "pool")
	poolAlloc    = desc("godwit_pool_allocation_bytes", "Bytes allocated in a storage pool.", "pool")
	poolAvail    = desc("godwit_pool_available_bytes", "Bytes still free in a storage pool.", "pool")
	poolActive   = desc("godwit_pool_active", "1 when the storage pool is active.", "pool")
	checkStatus  = desc("godwit_check_status", "A health check's status: 0 ok, 1 warning, 2 critical (as godwit host check exits).", "check")
	scrapeTime   = desc("godwit_scrape_duration_seconds", "How long gathering VM and host metrics took (one bulk libvirt stats call).")
)

// vmStates are the states godwit_host_vms always reports (0 when none).
var vmStates = []api.VMState{api.VMRunning, api.VMPaused, api.VMStopped, api.VMStopping, api.VMCrashed, api.VMSuspended, api.VMMissing, api.VMUnknown}

// Metrics is the daemon's registry with its collectors.
type Metrics struct {
	reg    *prometheus.Registry
	gather Gather

	ops         *prometheus.CounterVec
	opsRunning  *prometheus.GaugeVec
	opDuration  *prometheus.HistogramVec
	migDuration prometheus.Histogram
	migBytes    prometheus.Histogram
	migDowntime prometheus.Histogram
	bakDuration prometheus.Histogram
	bakBytes    prometheus.Histogram
	requests    *prometheus.HistogramVec

	mu      sync.Mutex
	running map[string]string // live operation id -> kind
}

// New makes the registry; gather is called once per scrape. Every
// metric carries a label host=host, so that the metrics of a cluster's
// hosts can be told apart once scraped together.
func New(version, host string, gather Gather) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), gather: gather, running: map[string]string{}}
	m.ops = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "godwit_operations_total",
		Help: "Operations that ended, by kind and result (succeeded, failed, cancelled)."}, []string{"kind", "result"})
	m.opsRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "godwit_operations_running",
		Help: "Operations running now, by kind."}, []string{"kind"})
	m.opDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "godwit_operation_duration_seconds",
		Help: "How long operations took, by kind.", Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 12)}, []string{"kind"})
	// Migrations: ~1 s idle on a LAN to minutes for large or busy guests.
	m.migDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "godwit_migration_duration_seconds",
		Help: "Wall time of successful migrations.", Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800}})
	m.migBytes = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "godwit_migration_bytes",
		Help: "Bytes moved by successful migrations (memory and disks).", Buckets: prometheus.ExponentialBuckets(16<<20, 4, 9)})
	m.migDowntime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "godwit_migration_downtime_seconds",
		Help: "Guest downtime of successful migrations.", Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5}})
	m.bakDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "godwit_backup_duration_seconds",
		Help: "Wall time of successful backups.", Buckets: []float64{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600}})
	m.bakBytes = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "godwit_backup_bytes",
		Help: "Bytes written by successful backups.", Buckets: prometheus.ExponentialBuckets(1<<20, 4, 10)})
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "godwit_api_request_duration_seconds",
		Help:    "API request latency by route (operation id), method and status code; streams (console, events) are left out.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}, []string{"route", "method", "code"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "godwit_build_info", Help: "godwit's version (1)."}, []string{"version"})
	build.WithLabelValues(version).Set(1)
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"host": host}, m.reg)
	reg.MustRegister(m.ops, m.opsRunning, m.opDuration, m.migDuration, m.migBytes, m.migDowntime,
		m.bakDuration, m.bakBytes, m.requests, build, collector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry (tests gather it directly).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveRequest records one API request.
func (m *Metrics) ObserveRequest(route, method string, code int, d time.Duration) {
	if route == "" {
		route = "other"
	}
	m.requests.WithLabelValues(route, method, codeString(code)).Observe(d.Seconds())
}

func codeString(code int) string {
	if code >= 100 && code < 600 {
		return strconv.Itoa(code)
	}
	return "other"
}

// OperationChanged feeds an operation's change (ops.Manager.OnChange).
func (m *Metrics) OperationChanged(op api.Operation) {
	m.mu.Lock()
	kind, live := m.running[op.ID]
	switch {
	case !op.State.Final() && !live:
		m.running[op.ID] = op.Kind
		m.opsRunning.WithLabelValues(op.Kind).Inc()
	case op.State.Final() && live:
		delete(m.running, op.ID)
		m.opsRunning.WithLabelValues(kind).Dec()
	}
	m.mu.Unlock()
	if !op.State.Final() {
		return
	}
	m.ops.WithLabelValues(op.Kind, string(op.State)).Inc()
	took := op.FinishedAt.Sub(op.CreatedAt)
	if took >= 0 {
		m.opDuration.WithLabelValues(op.Kind).Observe(took.Seconds())
	}
	if op.State != api.OpSucceeded || (op.Kind != health.KindMigrate && op.Kind != health.KindBackup) {
		return
	}
	var ts struct {
		api.TransferStats
		TotalMs int64 `json:"totalMs"` // api.MigrationReport's name for it
	}
	_ = json.Unmarshal(op.Result, &ts) // a result without these fields leaves zeros
	dur := took.Seconds()
	switch {
	case ts.DurationMs > 0:
		dur = float64(ts.DurationMs) / 1000
	case ts.TotalMs > 0:
		dur = float64(ts.TotalMs) / 1000
	}
	if op.Kind == health.KindMigrate {
		m.migDuration.Observe(dur)
		if ts.Bytes > 0 {
			m.migBytes.Observe(float64(ts.Bytes))
		}
		if ts.DowntimeMs > 0 {
			m.migDowntime.Observe(float64(ts.DowntimeMs) / 1000)
		}
		return
	}
	m.bakDuration.Observe(dur)
	if ts.Bytes > 0 {
		m.bakBytes.Observe(float64(ts.Bytes))
	}
}

// collector turns one Scrape into the VM and host metrics.
type collector struct{ m *Metrics }

var scrapeDescs = []*prometheus.Desc{vmInfo, vmState, vmCPU, vmVCPUs, vmMemCurrent, vmMemMax, vmMemRSS, vmDiskRdBytes, vmDiskWrBytes,
	vmDiskRdOps, vmDiskWrOps, vmNetRxBytes, vmNetTxBytes, vmNetRxPkts, vmNetTxPkts, vmUnexpected, libvirtUp, hostVMs, hostMem,
	hostMemFree, hostCPUs, poolCapacity, poolAlloc, poolAvail, poolActive, checkStatus, scrapeTime}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range scrapeDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	start := time.Now()
	s := c.m.gather(ctx)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	up := 0.0
	if s.LibvirtErr == nil {
		up = 1
	}
	gauge(libvirtUp, up)
	byState := map[api.VMState]int{}
	seen := map[string]bool{}
	for _, d := range s.Domains {
		seen[d.Name] = true
		st := StateOf(d.State)
		byState[st]++
		gauge(vmInfo, 1, d.Name, d.UUID, boolString(s.Managed[d.Name]))
		gauge(vmState, 1, d.Name, string(st))
		gauge(vmVCPUs, float64(d.VCPUs), d.Name)
		gauge(vmMemCurrent, float64(d.MemoryCurrent), d.Name)
		gauge(vmMemMax, float64(d.MemoryMax), d.Name)
		if !d.State.Active() {
			continue // libvirt has no counters for a stopped VM
		}
		counter(vmCPU, float64(d.CPUTime)/1e9, d.Name)
		gauge(vmMemRSS, float64(d.MemoryRSS), d.Name)
		for _, k := range d.Disks {
			counter(vmDiskRdBytes, float64(k.ReadBytes), d.Name, k.Name)
			counter(vmDiskWrBytes, float64(k.WriteBytes), d.Name, k.Name)
			counter(vmDiskRdOps, float64(k.ReadOps), d.Name, k.Name)
			counter(vmDiskWrOps, float64(k.WriteOps), d.Name, k.Name)
		}
		for _, n := range d.NICs {
			counter(vmNetRxBytes, float64(n.RxBytes), d.Name, n.Name)
			counter(vmNetTxBytes, float64(n.TxBytes), d.Name, n.Name)
			counter(vmNetRxPkts, float64(n.RxPackets), d.Name, n.Name)
			counter(vmNetTxPkts, float64(n.TxPackets), d.Name, n.Name)
		}
	}
	if s.LibvirtErr == nil {
		for name := range s.Managed {
			if !seen[name] {
				byState[api.VMMissing]++
				gauge(vmInfo, 1, name, "", "true")
				gauge(vmState, 1, name, string(api.VMMissing))
			}
		}
		for _, st := range vmStates {
			gauge(hostVMs, float64(byState[st]), string(st))
		}
		for name := range s.Unexpected {
			gauge(vmUnexpected, 1, name)
		}
	}
	if s.Host != nil {
		gauge(hostMem, float64(s.Host.MemoryBytes))
		gauge(hostMemFree, float64(s.Host.FreeBytes))
		gauge(hostCPUs, float64(s.Host.CPUs))
	}
	for _, p := range s.Pools {
		gauge(poolCapacity, float64(p.Capacity), p.Name)
		gauge(poolAlloc, float64(p.Allocation), p.Name)
		gauge(poolAvail, float64(p.Available), p.Name)
		gauge(poolActive, boolFloat(p.Active), p.Name)
	}
	for _, chk := range s.Report.Checks {
		gauge(checkStatus, float64(health.Severity(chk.Status)), chk.Name)
	}
	gauge(scrapeTime, time.Since(start).Seconds())
}

// StateOf is the API state of a libvirt state.
func StateOf(s hypervisor.State) api.VMState { return hypervisor.APIState(s) }

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Names returns the name of every metric godwit itself defines (histograms
// also serve NAME_bucket, NAME_sum and NAME_count).
func (m *Metrics) Names() []string {
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		for _, c := range []prometheus.Collector{m.ops, m.opsRunning, m.opDuration, m.migDuration, m.migBytes, m.migDowntime,
			m.bakDuration, m.bakBytes, m.requests, collector{m}} {
			c.Describe(ch)
		}
		ch <- prometheus.NewDesc("godwit_build_info", "", nil, nil)
		close(ch)
	}()
	var out []string
	for d := range ch {
		if m := fqNameRE.FindStringSubmatch(d.String()); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)
