// Package health runs the host's health checks, the ones chapter 5 of the
// book runs with Sensu: libvirtd alive, a VM stopped unexpectedly, a pool
// nearly full, a failed backup or migration. Each check ends ok, warning
// or critical (exit 0, 1, 2 for Nagios/Sensu plugins).
//
// It decides from what it is given (a snapshot of domains and pools) and
// from what it is told (operations, lifecycle events, stops godwit was
// asked for); it calls neither libvirt nor the store itself.
package health

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// Check names.
const (
	CheckLibvirt         = "libvirtd"
	CheckUnexpectedStop  = "vm-stopped-unexpectedly"
	CheckPoolSpace       = "pool-space"
	CheckFailedBackup    = "failed-backup"
	CheckFailedMigration = "failed-migration"
	CheckHostSetup       = "host-setup"
	// CheckCluster is reported by hosts in a cluster only.
	CheckCluster = "cluster-store"
)

// Names are every check, in report order; a host in a cluster reports
// CheckCluster after them.
var Names = []string{CheckLibvirt, CheckHostSetup, CheckUnexpectedStop, CheckPoolSpace, CheckFailedBackup, CheckFailedMigration}

// Operation kinds whose failure the checks report.
const (
	KindBackup  = "backup.create"
	KindMigrate = "vm.migrate"
)

// Thresholds tune the checks.
type Thresholds struct {
	// PoolWarnPercent and PoolCritPercent: how full (used of capacity) a
	// storage pool may be before the pool check warns or goes critical.
	PoolWarnPercent float64 `yaml:"poolWarnPercent,omitempty"`
	PoolCritPercent float64 `yaml:"poolCritPercent,omitempty"`
}

// Defaults for Thresholds.
const (
	DefaultPoolWarnPercent = 85
	DefaultPoolCritPercent = 95
)

// Complete fills in defaults and checks the values.
func (t *Thresholds) Complete() error {
	if t.PoolWarnPercent == 0 {
		t.PoolWarnPercent = DefaultPoolWarnPercent
	}
	if t.PoolCritPercent == 0 {
		t.PoolCritPercent = DefaultPoolCritPercent
	}
	if t.PoolWarnPercent < 0 || t.PoolCritPercent > 100 || t.PoolWarnPercent > t.PoolCritPercent {
		return fmt.Errorf("health: want 0 < poolWarnPercent (%g) <= poolCritPercent (%g) <= 100", t.PoolWarnPercent, t.PoolCritPercent)
	}
	return nil
}

// Input is what the checks look at: one snapshot of libvirt.
type Input struct {
	// LibvirtErr is why libvirt did not answer; nil when it did.
	LibvirtErr error
	// Domains are every domain's state (from the bulk stats call).
	Domains []hypervisor.DomainStats
	// Managed names the VMs godwit manages (the checks ignore the rest).
	Managed map[string]bool
	// Pools are the storage pools to watch.
	Pools []hypervisor.PoolInfo
	// Missing are the features whose programs this host lacks, each
	// saying which program and package (internal/prereq).
	Missing []string
	// Unreachable are the daemon's directories QEMU cannot reach, each
	// with the fix (internal/access): no VM can start until they are fixed.
	Unreachable []string
	// Cluster is the cluster store's health; nil on a host in no cluster.
	Cluster *ClusterHealth
}

// ClusterHealth is whether the cluster store serves this host, and why
// not (internal/cluster's Node.Health).
type ClusterHealth struct {
	Ready   bool
	Message string
}

// expectFor is how long after godwit was asked to act on a VM a stop
// counts as asked for (events can lag the action that caused them).
const expectFor = 2 * time.Minute

// Checker runs the checks and remembers what they need between runs.
type Checker struct {
	t   Thresholds
	now func() time.Time

	mu sync.Mutex
	// expected: VMs godwit was asked to act on, until when.
	expected map[string]time.Time
	// stopped: VMs that stopped without being asked to, and how.
	stopped map[string]string
	// lastOp: the last finished operation of a checked kind, per target.
	lastOp map[string]api.Operation
}

// New returns a Checker.
func New(t Thresholds) *Checker {
	return &Checker{t: t, now: time.Now, expected: map[string]time.Time{}, stopped: map[string]string{}, lastOp: map[string]api.Operation{}}
}

// Expect says godwit was asked to act on a VM (stop, delete, migrate,
// ...): a stop in the next minutes is no surprise.
func (c *Checker) Expect(vm string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expected[vm] = c.now().Add(expectFor)
	delete(c.stopped, vm)
}

// stopKinds are operations that may stop their VM.
var stopKinds = map[string]bool{"vm.stop": true, "vm.delete": true, "vm.reboot": true, "vm.apply": true, "vm.kill": true, KindMigrate: true}

// OperationChanged feeds the checker an operation's change.
func (c *Checker) OperationChanged(op api.Operation) {
	vm, isVM := strings.CutPrefix(op.Target, "vm/")
	if isVM && stopKinds[op.Kind] {
		c.Expect(vm)
	}
	if (op.Kind == KindBackup || op.Kind == KindMigrate) && op.State.Final() {
		c.mu.Lock()
		key := op.Kind + " " + op.Target
		if cur, ok := c.lastOp[key]; !ok || !cur.CreatedAt.After(op.CreatedAt) {
			c.lastOp[key] = op
		}
		c.mu.Unlock()
	}
}

// DomainEvent feeds the checker a lifecycle event.
func (c *Checker) DomainEvent(e hypervisor.DomainEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch e.Event {
	case hypervisor.EventStarted, hypervisor.EventUndefined:
		delete(c.stopped, e.Domain)
	case hypervisor.EventStopped, hypervisor.EventCrashed:
		if e.Detail == "migrated" || e.Detail == "saved" || e.Detail == "from snapshot" {
			return
		}
		if until, ok := c.expected[e.Domain]; ok && c.now().Before(until) {
			return
		}
		c.stopped[e.Domain] = fmt.Sprintf("%s (%s) at %s without godwit being asked", e.Event, e.Detail, c.now().UTC().Format(time.RFC3339))
	}
}

// Run runs every check on in.
func (c *Checker) Run(in Input) api.HealthReport {
	checks := []api.Check{
		c.libvirt(in), hostSetup(in), c.unexpectedStops(in), c.pools(in),
		c.failedOps(CheckFailedBackup, KindBackup, "backup"), c.failedOps(CheckFailedMigration, KindMigrate, "migration"),
	}
	if in.Cluster != nil {
		ch := api.Check{Name: CheckCluster, Status: api.CheckOK, Message: in.Cluster.Message}
		if !in.Cluster.Ready {
			// Every change that needs the cluster answers 503 meanwhile.
			ch.Status = api.CheckCritical
		}
		checks = append(checks, ch)
	}
	return api.HealthReport{Status: api.WorstStatus(checks), Checks: checks}
}

// Severity is a status's exit code: 0 ok, 1 warning, 2 critical.
func Severity(status string) int { return api.CheckSeverity(status) }

func (c *Checker) libvirt(in Input) api.Check {
	if in.LibvirtErr != nil {
		return api.Check{Name: CheckLibvirt, Status: api.CheckCritical, Message: "libvirtd does not answer: " + in.LibvirtErr.Error()}
	}
	return api.Check{Name: CheckLibvirt, Status: api.CheckOK, Message: "libvirtd answers"}
}

// hostSetup reports what the host lacks: programs features run (a
// warning: only those features fail) and directories QEMU cannot reach
// (critical: no VM starts).
func hostSetup(in Input) api.Check {
	ch := api.Check{Name: CheckHostSetup, Status: api.CheckOK, Message: "every program godwit runs is installed and QEMU reaches the daemon's directories"}
	ch.Items = append(append(ch.Items, in.Unreachable...), in.Missing...)
	switch {
	case len(in.Unreachable) > 0:
		ch.Status = api.CheckCritical
		ch.Message = fmt.Sprintf("QEMU cannot reach %d of the daemon's directories: no VM can start", len(in.Unreachable))
		if len(in.Missing) > 0 {
			ch.Message += fmt.Sprintf("; %d feature(s) lack a program", len(in.Missing))
		}
	case len(in.Missing) > 0:
		ch.Status = api.CheckWarning
		ch.Message = fmt.Sprintf("%d feature(s) lack a program (scripts/host-setup.sh installs them)", len(in.Missing))
	}
	return ch
}

// badReason says whether a domain's state means it failed by itself.
func badReason(d hypervisor.DomainStats) (string, bool) {
	switch {
	case d.State == hypervisor.StateCrashed:
		return "crashed", true
	case d.State == hypervisor.StateShutoff && (d.Reason == "crashed" || d.Reason == "failed to start"):
		return "shut off: " + d.Reason, true
	case d.State == hypervisor.StatePaused && (d.Reason == "I/O error" || d.Reason == "watchdog" || d.Reason == "crashed"):
		return "paused: " + d.Reason, true
	}
	return "", false
}

// Unexpected returns the managed VMs that stopped (or froze) without
// godwit being asked, with why.
func (c *Checker) Unexpected(in Input) map[string]string {
	out := map[string]string{}
	if in.LibvirtErr != nil {
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, d := range in.Domains {
		seen[d.Name] = true
		if !in.Managed[d.Name] {
			continue
		}
		if why, bad := badReason(d); bad {
			out[d.Name] = why
			continue
		}
		if d.State.Active() {
			delete(c.stopped, d.Name) // started again, by whoever
			continue
		}
		if why, ok := c.stopped[d.Name]; ok {
			out[d.Name] = why
		}
	}
	for name := range c.stopped {
		if !seen[name] {
			delete(c.stopped, name) // gone from libvirt
		}
	}
	return out
}

func (c *Checker) unexpectedStops(in Input) api.Check {
	ch := api.Check{Name: CheckUnexpectedStop, Status: api.CheckOK, Message: "no VM stopped unexpectedly"}
	if in.LibvirtErr != nil {
		ch.Status, ch.Message = api.CheckWarning, "unknown: libvirt does not answer"
		return ch
	}
	bad := c.Unexpected(in)
	if len(bad) == 0 {
		return ch
	}
	for _, name := range sortedKeys(bad) {
		ch.Items = append(ch.Items, name+": "+bad[name])
	}
	ch.Status = api.CheckCritical
	ch.Message = fmt.Sprintf("%d VM(s) stopped unexpectedly: %s", len(bad), strings.Join(sortedKeys(bad), ", "))
	return ch
}

// UsedPercent is how full a pool is.
func UsedPercent(p hypervisor.PoolInfo) float64 {
	if p.Capacity == 0 {
		return 0
	}
	used := p.Capacity - min(p.Available, p.Capacity)
	return 100 * float64(used) / float64(p.Capacity)
}

func (c *Checker) pools(in Input) api.Check {
	ch := api.Check{Name: CheckPoolSpace, Status: api.CheckOK}
	if in.LibvirtErr != nil {
		ch.Status, ch.Message = api.CheckWarning, "unknown: libvirt does not answer"
		return ch
	}
	var parts []string
	for _, p := range in.Pools {
		pct := UsedPercent(p)
		st := api.CheckOK
		switch {
		case !p.Active:
			st = api.CheckWarning
		case pct >= c.t.PoolCritPercent:
			st = api.CheckCritical
		case pct >= c.t.PoolWarnPercent:
			st = api.CheckWarning
		}
		desc := fmt.Sprintf("%s %.0f%% used (%s free of %s)", p.Name, pct, api.Size(p.Available).Human(), api.Size(p.Capacity).Human())
		if !p.Active {
			desc = p.Name + " is not active"
		}
		parts = append(parts, desc)
		if st != api.CheckOK {
			ch.Items = append(ch.Items, desc)
		}
		if Severity(st) > Severity(ch.Status) {
			ch.Status = st
		}
	}
	ch.Message = strings.Join(parts, "; ")
	if len(in.Pools) == 0 {
		ch.Message = "no pools to check"
	}
	if ch.Status != api.CheckOK {
		ch.Message = fmt.Sprintf("%s (warning at %g%%, critical at %g%%)", ch.Message, c.t.PoolWarnPercent, c.t.PoolCritPercent)
	}
	return ch
}

func (c *Checker) failedOps(name, kind, what string) api.Check {
	ch := api.Check{Name: name, Status: api.CheckOK, Message: "no failed " + what}
	c.mu.Lock()
	var failed []api.Operation
	for _, op := range c.lastOp {
		if op.Kind == kind && op.State == api.OpFailed {
			failed = append(failed, op)
		}
	}
	c.mu.Unlock()
	if len(failed) == 0 {
		return ch
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].Target < failed[j].Target })
	var targets []string
	for _, op := range failed {
		targets = append(targets, op.Target)
		ch.Items = append(ch.Items, fmt.Sprintf("%s: operation %s failed at %s: %s", op.Target, op.ID, op.FinishedAt.UTC().Format(time.RFC3339), op.Error))
	}
	ch.Status = api.CheckCritical
	ch.Message = fmt.Sprintf("the last %s of %s failed", what, strings.Join(targets, ", "))
	return ch
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
