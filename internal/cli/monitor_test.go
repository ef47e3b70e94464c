package cli

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

func TestRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := api.StatsSample{Time: t0, VMs: []api.VMStats{
		{Name: "web", State: api.VMRunning, CPUTimeNs: 1e9, Disks: []api.DiskStats{{ReadBytes: 1000, WriteBytes: 0}}, NICs: []api.NICStats{{RxBytes: 0, TxBytes: 500}}},
		{Name: "db", State: api.VMRunning, CPUTimeNs: 5e9},
	}}
	b := api.StatsSample{Time: t0.Add(2 * time.Second), VMs: []api.VMStats{
		{Name: "web", State: api.VMRunning, CPUTimeNs: 4e9, VCPUs: 2, Disks: []api.DiskStats{{ReadBytes: 5000, WriteBytes: 2048}}, NICs: []api.NICStats{{RxBytes: 4000, TxBytes: 500}}},
		{Name: "db", State: api.VMRunning, CPUTimeNs: 1e9},  // restarted: counters went down
		{Name: "new", State: api.VMRunning, CPUTimeNs: 9e9}, // not in the first sample
	}}
	got := rates(a, b)
	if len(got) != 3 || got[0].Name != "web" {
		t.Fatalf("rates = %+v", got)
	}
	w := got[0]
	if math.Abs(w.CPUPercent-150) > 1e-9 || w.ReadBps != 2000 || w.WriteBps != 1024 || w.RxBps != 2000 || w.TxBps != 0 {
		t.Fatalf("web rates = %+v", w)
	}
	for _, r := range got[1:] {
		if r.CPUPercent != 0 {
			t.Errorf("%s: %.1f%% CPU, want 0 (no comparable sample)", r.Name, r.CPUPercent)
		}
	}
	var out bytes.Buffer
	g := &globals{out: &out, output: "table"}
	if err := printTop(g, b.Time, got, false); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"VMs: 3, 3 running", "NAME", "%CPU", "150.0", "1KiB/s"} {
		if !strings.Contains(s, want) {
			t.Errorf("top output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\x1b[") {
		t.Error("plain output has terminal escapes")
	}
}

func TestPrintChecks(t *testing.T) {
	var out bytes.Buffer
	printChecks(&out, api.HealthReport{Status: api.CheckCritical, Checks: []api.Check{
		{Name: "libvirtd", Status: api.CheckOK, Message: "libvirtd answers"},
		{Name: "vm-stopped-unexpectedly", Status: api.CheckCritical, Message: "1 VM(s) stopped unexpectedly: web", Items: []string{"web: crashed"}},
	}})
	s := out.String()
	if !strings.HasPrefix(s, "CRITICAL: 1 VM(s) stopped unexpectedly: web\n") || !strings.Contains(s, "web: crashed") {
		t.Fatalf("checks output:\n%s", s)
	}
}
