// Package placement decides which host of a cluster takes a VM: filters
// (the host is alive and schedulable, has the labels the VM's host
// selector asks for, runs no VM of the VM's anti-affinity group, has the
// networks, pools and images the VM uses, and has room: free CPUs and
// memory after what is reserved on it, with the host's overcommit), then
// a score (spread: the most room left; pack: the least). Every host gets
// a verdict that says why it was or was not picked, for vm create
// --dry-run.
//
// Room is counted from reservations, not from what libvirt says is free:
// a host's reservation record lists every VM placed on it with what it
// needs, and the record is written in the same guarded transaction as
// the VM's claim (internal/cluster), so concurrent placements see each
// other and never oversubscribe a host.
//
// The package is pure: it reads no store and knows no HTTP.
package placement

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
)

// Defaults of a host's overcommit: vCPUs per CPU, memory per byte.
const (
	DefaultCPUOvercommit    = 4.0
	DefaultMemoryOvercommit = 1.0
)

// Strategies.
const (
	Spread = "spread"
	Pack   = "pack"
)

// Entry is one VM in a host's reservation record.
type Entry struct {
	CPUs   int   `json:"cpus"`
	Memory int64 `json:"memory"`
	// Group is the VM's anti-affinity group.
	Group string `json:"group,omitempty"`
	// Pending: the VM is on its way to the host (since Since), which has
	// no record of it yet.
	Pending bool      `json:"pending,omitempty"`
	Since   time.Time `json:"since,omitzero"`
}

// Reservation is a host's reservation record: the VMs placed on it.
type Reservation struct {
	VMs map[string]Entry `json:"vms"`
}

// Used sums what the reservation holds, leaving out the VM named skip (a
// VM placed again, e.g. by apply, counts once).
func (r Reservation) Used(skip string) (cpus int, memory int64) {
	for name, e := range r.VMs {
		if name != skip {
			cpus += e.CPUs
			memory += e.Memory
		}
	}
	return cpus, memory
}

// Host is what placement knows of a host.
type Host struct {
	Name string
	// Alive: its heartbeat lease lives. Schedulable: not drained.
	Alive, Schedulable bool
	Labels             map[string]string
	CPUs               int
	Memory             int64
	// CPUOvercommit and MemoryOvercommit are what the host offers per
	// CPU and per byte (0: the defaults).
	CPUOvercommit, MemoryOvercommit float64
	// Networks, Pools and Images the host has.
	Networks, Pools, Images []string
	Reserved                Reservation
}

// Capacity is what the host offers in all: its CPUs and memory times its
// overcommit.
func (h Host) Capacity() (cpus int, memory int64) {
	co, mo := h.CPUOvercommit, h.MemoryOvercommit
	if co <= 0 {
		co = DefaultCPUOvercommit
	}
	if mo <= 0 {
		mo = DefaultMemoryOvercommit
	}
	return int(float64(h.CPUs) * co), int64(float64(h.Memory) * mo)
}

// Need is what a VM needs of a host.
type Need struct {
	VM       string
	CPUs     int
	Memory   int64
	Selector map[string]string
	Group    string
	Networks []string
	Pools    []string
	Images   []string
	// Exclude names hosts that must not take it (a drained host, the
	// host a VM leaves).
	Exclude []string
}

// NeedOf is what a VM of spec needs.
func NeedOf(spec api.VMSpec) Need {
	n := Need{VM: spec.Name, CPUs: spec.CPUs, Memory: int64(spec.Memory)}
	if p := spec.Placement; p != nil {
		n.Selector, n.Group = p.HostSelector, p.AntiAffinity
	}
	add := func(list *[]string, v string) {
		if v != "" && !slices.Contains(*list, v) {
			*list = append(*list, v)
		}
	}
	for _, nic := range spec.NICs {
		add(&n.Networks, nic.Network)
	}
	for _, d := range spec.Disks {
		if pool, _, ok := strings.Cut(d.Volume, "/"); ok {
			add(&n.Pools, pool)
		}
		if d.Image != "" && !strings.HasPrefix(d.Image, "/") {
			add(&n.Images, d.Image)
		}
	}
	if spec.Boot != nil {
		add(&n.Images, spec.Boot.Image)
	}
	return n
}

// Entry is the reservation entry of the VM.
func (n Need) Entry() Entry { return Entry{CPUs: n.CPUs, Memory: n.Memory, Group: n.Group} }

// Verdict is one host's answer for one VM.
type Verdict struct {
	Host string `json:"host"`
	// Fits: the host passed every filter; Picked: placement chose it.
	Fits   bool `json:"fits"`
	Picked bool `json:"picked,omitempty"`
	// Reason says why it does not fit, or how much room it has.
	Reason string `json:"reason"`
	// Score orders the hosts that fit (higher first).
	Score float64 `json:"score,omitempty"`
}

// Check runs the filters: the empty string when h can take n, else why
// not, in words a user reads ("1.2GiB free, needs 2GiB").
func Check(h Host, n Need) string {
	switch {
	case slices.Contains(n.Exclude, h.Name):
		return "excluded"
	case !h.Alive:
		return "down (its heartbeat lease ran out)"
	case !h.Schedulable:
		return "unschedulable (drained)"
	}
	for _, k := range slices.Sorted(maps.Keys(n.Selector)) {
		want := n.Selector[k]
		if got, ok := h.Labels[k]; !ok {
			return fmt.Sprintf("no label %s (placement.hostSelector wants %s=%s)", k, k, want)
		} else if got != want {
			return fmt.Sprintf("label %s=%s, placement.hostSelector wants %s", k, got, want)
		}
	}
	if n.Group != "" {
		for _, name := range slices.Sorted(maps.Keys(h.Reserved.VMs)) {
			if name != n.VM && h.Reserved.VMs[name].Group == n.Group {
				return fmt.Sprintf("runs %s of placement.antiAffinity group %s", name, n.Group)
			}
		}
	}
	for _, miss := range []struct {
		what       string
		have, need []string
	}{
		{"network", h.Networks, n.Networks},
		{"pool", h.Pools, n.Pools},
		{"image", h.Images, n.Images},
	} {
		for _, x := range miss.need {
			if !slices.Contains(miss.have, x) {
				return fmt.Sprintf("no %s %s", miss.what, x)
			}
		}
	}
	freeCPUs, freeMem := free(h, n.VM)
	if n.Memory > freeMem {
		return fmt.Sprintf("%s free, needs %s", human(freeMem), human(n.Memory))
	}
	if n.CPUs > freeCPUs {
		return fmt.Sprintf("%d vCPUs free, needs %d", max(freeCPUs, 0), n.CPUs)
	}
	return ""
}

// free is what h has left, leaving out what vm holds there already.
func free(h Host, vm string) (cpus int, memory int64) {
	capCPUs, capMem := h.Capacity()
	usedCPUs, usedMem := h.Reserved.Used(vm)
	return capCPUs - usedCPUs, capMem - usedMem
}

func human(b int64) string { return api.Size(max(b, 0)).Human() }

// score rates a host that fits: spread prefers the most room left after
// the VM (the scarcer of CPU and memory, as a share of the capacity),
// pack the least.
func score(h Host, n Need, strategy string) float64 {
	capCPUs, capMem := h.Capacity()
	freeCPUs, freeMem := free(h, n.VM)
	share := func(left, capacity int64) float64 {
		if capacity <= 0 {
			return 0
		}
		return float64(left) / float64(capacity)
	}
	room := min(share(int64(freeCPUs-n.CPUs), int64(capCPUs)), share(freeMem-n.Memory, capMem))
	if strategy == Pack {
		return 1 - room
	}
	return room
}

// Decision is placement's answer: the host picked ("" for none) and
// every host's verdict, the picked one first, then the other hosts that
// fit by score, then those that do not, by name.
type Decision struct {
	Picked   string    `json:"picked,omitempty"`
	Verdicts []Verdict `json:"verdicts"`
}

// Choose places n on one of hosts with strategy (Spread unless Pack).
func Choose(hosts []Host, n Need, strategy string) Decision {
	var fit, unfit []Verdict
	for _, h := range hosts {
		if why := Check(h, n); why != "" {
			unfit = append(unfit, Verdict{Host: h.Name, Reason: why})
			continue
		}
		freeCPUs, freeMem := free(h, n.VM)
		fit = append(fit, Verdict{Host: h.Name, Fits: true, Score: score(h, n, strategy),
			Reason: fmt.Sprintf("%s and %d vCPUs free", human(freeMem), freeCPUs)})
	}
	slices.SortStableFunc(fit, func(a, b Verdict) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.Host, b.Host)
	})
	slices.SortFunc(unfit, func(a, b Verdict) int { return strings.Compare(a.Host, b.Host) })
	d := Decision{Verdicts: append(fit, unfit...)}
	if len(fit) > 0 {
		d.Picked = fit[0].Host
		d.Verdicts[0].Picked = true
	}
	return d
}

// Candidates are the hosts that fit, best first.
func (d Decision) Candidates() []string {
	var out []string
	for _, v := range d.Verdicts {
		if v.Fits {
			out = append(out, v.Host)
		}
	}
	return out
}

// Explain says the decision in a line: "h2: picked (3GiB and 8 vCPUs
// free); h1: 1.2GiB free, needs 2GiB; h3: no network lab".
func (d Decision) Explain() string {
	parts := make([]string, 0, len(d.Verdicts))
	for _, v := range d.Verdicts {
		switch {
		case v.Picked:
			parts = append(parts, fmt.Sprintf("%s: picked (%s)", v.Host, v.Reason))
		case v.Fits:
			parts = append(parts, fmt.Sprintf("%s: fits, ranked lower (%s)", v.Host, v.Reason))
		default:
			parts = append(parts, v.Host+": "+v.Reason)
		}
	}
	if len(parts) == 0 {
		return "no hosts"
	}
	return strings.Join(parts, "; ")
}
