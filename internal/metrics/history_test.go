package metrics

import (
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

func dom(name string, cpuSec, readMiB, rxKiB uint64) hypervisor.DomainStats {
	return hypervisor.DomainStats{Name: name, State: hypervisor.StateRunning, CPUTime: cpuSec * 1e9, MemoryRSS: 100 << 20,
		Disks: []hypervisor.DiskStats{{Name: "vda", ReadBytes: readMiB << 20}, {Name: "vdb", ReadBytes: readMiB << 20, WriteBytes: 1 << 20}},
		NICs:  []hypervisor.NICStats{{Name: "vnet0", RxBytes: rxKiB << 10}}}
}

// Rates come from two samples' counters; the ring keeps its last size
// points, oldest first, whatever the number of samples; a restarted VM
// (counters back to small) starts afresh; a VM gone from a sample goes.
func TestHistory(t *testing.T) {
	h := NewHistory(10*time.Second, 40*time.Second) // 4 points
	t0 := time.Unix(1_000_000, 0)
	h.Add(t0, []hypervisor.DomainStats{dom("a", 0, 0, 0)})
	if u, ok := h.Get("a", 0); !ok || len(u.Time) != 0 {
		t.Fatalf("one sample gives no rate yet: %+v %v", u, ok)
	}
	// a uses half a core, reads 1 MiB/s on each of two disks, receives 2 KiB/s.
	for i := uint64(1); i <= 10; i++ {
		h.Add(t0.Add(time.Duration(i)*10*time.Second), []hypervisor.DomainStats{dom("a", 5*i, 10*i, 20*i), dom("b", i, 0, 0)})
	}
	u, ok := h.Get("a", 0)
	if !ok || len(u.Time) != 4 || len(u.CPU) != 4 || u.StepSeconds != 10 {
		t.Fatalf("after 10 steps the ring holds %d points (want its 4): %+v", len(u.Time), u)
	}
	if u.Time[0] != t0.Unix()+70 || u.Time[3] != t0.Unix()+100 {
		t.Errorf("times %v, want the last four, oldest first", u.Time)
	}
	for i := range u.Time {
		if u.CPU[i] != 0.5 || u.DiskRead[i] != 2<<20 || u.DiskWrite[i] != 0 || u.NetRx[i] != 2048 || u.MemoryRSS[i] != 100<<20 {
			t.Errorf("point %d: cpu %v read %v write %v rx %v rss %v", i, u.CPU[i], u.DiskRead[i], u.DiskWrite[i], u.NetRx[i], u.MemoryRSS[i])
		}
	}
	if u, _ := h.Get("a", 2); len(u.Time) != 2 || u.Time[1] != t0.Unix()+100 {
		t.Errorf("the last 2 points: %v", u.Time)
	}
	// a restarts: its CPU time drops (its disk and network totals need not:
	// here they grew); no rate from that step, the next one counts.
	h.Add(t0.Add(110*time.Second), []hypervisor.DomainStats{dom("a", 1, 200, 400), dom("b", 11, 0, 0)})
	h.Add(t0.Add(120*time.Second), []hypervisor.DomainStats{dom("a", 2, 200, 400), dom("b", 12, 0, 0)})
	u, _ = h.Get("a", 0)
	if last := len(u.CPU) - 1; u.Time[last] != t0.Unix()+120 || u.CPU[last] != 0.1 || u.Time[last-1] != t0.Unix()+100 {
		t.Errorf("after a restart: times %v cpu %v", u.Time, u.CPU)
	}
	for _, c := range u.CPU {
		if c < 0 {
			t.Errorf("a negative rate %v", c)
		}
	}
	// b is gone (deleted or stopped): its history goes with it.
	h.Add(t0.Add(130*time.Second), []hypervisor.DomainStats{dom("a", 3, 0, 0)})
	if _, ok := h.Get("b", 0); ok {
		t.Error("b's history outlived b")
	}
	if all := h.All(0); len(all) != 1 || all[0].VM != "a" {
		t.Errorf("All: %+v", all)
	}
}
