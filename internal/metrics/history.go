package metrics

import (
	"sort"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// History keeps each running VM's recent usage from the daemon's own
// stats: one point per step in a ring of fixed size per VM, so memory is
// bounded by VMs × points whatever the uptime. A VM that is gone from a
// sample (deleted, stopped) is dropped; a restart (counters going back)
// starts its rates afresh.
type History struct {
	step time.Duration
	size int

	mu  sync.Mutex
	vms map[string]*ring
}

// point is one step of one VM.
type point struct {
	t                        int64
	cpu, rss, dr, dw, rx, tx float64
}

// counters are a sample's raw totals, to take rates against the next.
type counters struct {
	at                    time.Time
	cpuNs, dr, dw, rx, tx uint64
}

type ring struct {
	pts  []point
	next int // where the next point goes
	n    int // points held
	last counters
}

// NewHistory keeps span of history at one point per step.
func NewHistory(step, span time.Duration) *History {
	n := int(span / step)
	if n < 2 {
		n = 2
	}
	return &History{step: step, size: n, vms: map[string]*ring{}}
}

// Step is the time between points.
func (h *History) Step() time.Duration { return h.step }

// Add takes one sample of every domain (the bulk stats call) at now.
func (h *History) Add(now time.Time, doms []hypervisor.DomainStats) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := make(map[string]bool, len(doms))
	for _, d := range doms {
		if d.State != hypervisor.StateRunning && d.State != hypervisor.StatePaused {
			continue
		}
		seen[d.Name] = true
		c := counters{at: now, cpuNs: d.CPUTime}
		for _, k := range d.Disks {
			c.dr += k.ReadBytes
			c.dw += k.WriteBytes
		}
		for _, k := range d.NICs {
			c.rx += k.RxBytes
			c.tx += k.TxBytes
		}
		r := h.vms[d.Name]
		if r == nil {
			r = &ring{pts: make([]point, h.size)}
			h.vms[d.Name] = r
		}
		prev := r.last
		r.last = c
		dt := now.Sub(prev.at).Seconds()
		if prev.at.IsZero() || dt <= 0 || c.cpuNs < prev.cpuNs || c.dr < prev.dr || c.dw < prev.dw || c.rx < prev.rx || c.tx < prev.tx {
			continue // the first sample, or counters that restarted: no rate yet
		}
		rate := func(a, b uint64) float64 { return float64(b-a) / dt }
		r.pts[r.next] = point{t: now.Unix(), cpu: rate(prev.cpuNs, c.cpuNs) / 1e9, rss: float64(d.MemoryRSS),
			dr: rate(prev.dr, c.dr), dw: rate(prev.dw, c.dw), rx: rate(prev.rx, c.rx), tx: rate(prev.tx, c.tx)}
		r.next = (r.next + 1) % h.size
		if r.n < h.size {
			r.n++
		}
	}
	for name := range h.vms {
		if !seen[name] {
			delete(h.vms, name)
		}
	}
}

// Get returns vm's history, oldest first (ok false when it has none).
// last > 0 keeps only the newest last points.
func (h *History) Get(vm string, last int) (api.UsageHistory, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.vms[vm]
	if !ok {
		r = &ring{}
	}
	n := r.n
	if last > 0 && last < n {
		n = last
	}
	out := api.UsageHistory{VM: vm, StepSeconds: h.step.Seconds(),
		Time: make([]int64, n), CPU: make([]float64, n), MemoryRSS: make([]float64, n),
		DiskRead: make([]float64, n), DiskWrite: make([]float64, n), NetRx: make([]float64, n), NetTx: make([]float64, n)}
	for i := 0; i < n; i++ {
		p := r.pts[(r.next-n+i+h.size)%h.size]
		out.Time[i], out.CPU[i], out.MemoryRSS[i] = p.t, p.cpu, p.rss
		out.DiskRead[i], out.DiskWrite[i], out.NetRx[i], out.NetTx[i] = p.dr, p.dw, p.rx, p.tx
	}
	return out, ok
}

// All returns every VM's history, by name.
func (h *History) All(last int) []api.UsageHistory {
	h.mu.Lock()
	names := make([]string, 0, len(h.vms))
	for name := range h.vms {
		names = append(names, name)
	}
	h.mu.Unlock()
	sort.Strings(names)
	out := make([]api.UsageHistory, 0, len(names))
	for _, name := range names {
		if u, ok := h.Get(name, last); ok {
			out = append(out, u)
		}
	}
	return out
}
