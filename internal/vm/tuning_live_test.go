package vm

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
)

// liveSpec is a running VM that can grow: 1 of 2 vCPUs, 64 of 128 MiB.
func (e *env) liveVM(name string) {
	e.t.Helper()
	spec := e.spec(name)
	spec.MaxCPUs, spec.MaxMemory = 2, 128*api.MiB
	e.create(spec, true)
}

func (e *env) set(name string, set api.VMSet) api.ApplyResult {
	e.t.Helper()
	op, err := e.svc.Set(e.ctx, name, set)
	got := e.succeed(op, err)
	var res api.ApplyResult
	if err := json.Unmarshal(got.Result, &res); err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) xml(name string, inactive bool) string {
	e.t.Helper()
	x, err := e.f.XML(e.ctx, name, inactive)
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

// vm set on a running VM makes each change live and in the definition,
// says so, and the stored spec follows.
func TestSetLive(t *testing.T) {
	e := newEnv(t)
	e.liveVM("web1")
	res := e.set("web1", api.VMSet{Memory: 96 * api.MiB})
	if len(res.Live) != 1 || !strings.Contains(res.Live[0], "memory: 64MiB -> 96MiB") {
		t.Fatalf("live = %q", res.Live)
	}
	res = e.set("web1", api.VMSet{CPUs: 2, Pin: []api.CPUPin{{VCPU: 1, HostCPUs: "2-3"}}})
	if len(res.Live) != 2 || !strings.Contains(res.Live[0], "cpus: 1 -> 2") || !strings.Contains(res.Live[1], "vCPU 1 -> host CPUs 2-3") {
		t.Fatalf("live = %q (cpus first: vCPU 1 is pinned once online)", res.Live)
	}
	e.set("web1", api.VMSet{Limits: &api.DiskLimits{ReadIOPS: 100, WriteBytes: 4 * api.MiB}})
	for _, inactive := range []bool{false, true} {
		x := e.xml("web1", inactive)
		for _, want := range []string{`<currentMemory unit="KiB">98304</currentMemory>`, `<vcpu placement="static">2</vcpu>`,
			`<vcpupin vcpu="1" cpuset="2,3">`, `<write_bytes_sec>4194304</write_bytes_sec>`, `<read_iops_sec>100</read_iops_sec>`} {
			if !strings.Contains(x, want) {
				t.Errorf("inactive=%t: XML lacks %s", inactive, want)
			}
		}
	}
	v, err := e.svc.Get(e.ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if s := v.Spec; s.Memory != 96*api.MiB || s.CPUs != 2 || s.CPU == nil || s.CPU.Pin[0].HostCPUs != "2-3" || s.Disks[0].Limits.ReadIOPS != 100 {
		t.Errorf("stored spec = %+v", s)
	}
	// Setting it again changes nothing.
	if res := e.set("web1", api.VMSet{Memory: 96 * api.MiB}); len(res.Changes) != 0 {
		t.Errorf("changes = %q", res.Changes)
	}
}

// What QEMU cannot do live is refused with why, before anything changes.
func TestSetRefused(t *testing.T) {
	e := newEnv(t)
	e.liveVM("web1")
	for _, c := range []struct {
		what   string
		set    api.VMSet
		status int
		words  []string
	}{
		{"memory above maxMemory", api.VMSet{Memory: 256 * api.MiB}, 400, []string{"memory:", "maxMemory (128MiB)"}},
		{"cpus above maxCpus", api.VMSet{CPUs: 3}, 400, []string{"cpus:", "maxCpus (2)"}},
		{"fewer cpus", api.VMSet{CPUs: 1, Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "1"}}}, 0, nil},
		{"pin to a host CPU the host lacks", api.VMSet{Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "9"}}}, 400, []string{"cpu.pin[0].hostCpus", "4 CPUs"}},
		{"pin a vCPU that is not online", api.VMSet{Pin: []api.CPUPin{{VCPU: 1, HostCPUs: "1"}}}, 409, []string{"vCPU 1 is not online", "need it stopped", "wait for a restart"}},
		{"nothing", api.VMSet{}, 400, []string{"set: nothing"}},
		{"limits of a disk the VM lacks", api.VMSet{Disk: "data", Limits: &api.DiskLimits{ReadIOPS: 1}}, 400, []string{"disk:", "data"}},
	} {
		op, err := e.svc.Set(e.ctx, "web1", c.set)
		if c.status == 0 {
			e.succeed(op, err)
			continue
		}
		if api.Status(err) != c.status || op.ID != "" {
			t.Errorf("%s: %v (status %d), op %q; want %d", c.what, err, api.Status(err), op.ID, c.status)
			continue
		}
		for _, w := range c.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.what, err, w)
			}
		}
	}
	// A running VM's memory without a balloon: refused, naming the cause.
	spec := e.spec("flat")
	e.create(spec, true)
	op, err := e.svc.Set(e.ctx, "flat", api.VMSet{Memory: 32 * api.MiB})
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "balloon") || op.ID != "" {
		t.Errorf("no balloon: %v", err)
	}
	op, err = e.svc.Set(e.ctx, "flat", api.VMSet{CPUs: 2})
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "no spare vCPU slots") || op.ID != "" {
		t.Errorf("no room for more vCPUs: %v", err)
	}
	op, err = e.svc.Set(e.ctx, "flat", api.VMSet{Memory: 128 * api.MiB})
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "no room to grow into live") || op.ID != "" {
		t.Errorf("no room for more memory: %v", err)
	}
	// apply: a change that waits for a restart names the live ones too.
	v, _ := e.svc.Get(e.ctx, "web1")
	next := *v.Spec
	next.Memory, next.IOThreads = 100*api.MiB, 1
	op, err = e.svc.Apply(e.ctx, next, ApplyOptions{})
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "iothreads: changed") || !strings.Contains(err.Error(), "would be made live: memory: 64MiB -> 100MiB") {
		t.Errorf("apply: %v", err)
	}
	if x := e.xml("web1", false); !strings.Contains(x, `<currentMemory unit="KiB">65536</currentMemory>`) {
		t.Errorf("a refused apply changed the memory")
	}
}

// A live change that fails undoes the ones made before it; the stored
// spec stays what runs.
func TestSetLiveFailureReverts(t *testing.T) {
	e := newEnv(t)
	e.liveVM("web1")
	e.f.FailNext("PinVCPU", nil)
	op, err := e.svc.Set(e.ctx, "web1", api.VMSet{CPUs: 2, Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "1"}}})
	got := e.fail(op, err)
	if !strings.Contains(got.Error, "injected") {
		t.Errorf("error = %q", got.Error)
	}
	x := e.xml("web1", false)
	if !strings.Contains(x, `current="1"`) {
		t.Errorf("the hot-added vCPU stayed after the failure: %s", x)
	}
	v, _ := e.svc.Get(e.ctx, "web1")
	if v.Spec.CPUs != 1 || v.Spec.CPU != nil {
		t.Errorf("stored spec = %+v", v.Spec)
	}
}

// A stopped VM takes the same changes into its definition; none is live.
func TestSetStopped(t *testing.T) {
	e := newEnv(t)
	spec := e.spec("web1")
	spec.MaxCPUs, spec.MaxMemory = 2, 128*api.MiB
	e.create(spec, false)
	res := e.set("web1", api.VMSet{Memory: 128 * api.MiB, CPUs: 2})
	if len(res.Live) != 0 || len(res.Changes) != 2 {
		t.Errorf("result = %+v", res)
	}
	if x := e.xml("web1", true); !strings.Contains(x, `<currentMemory unit="KiB">131072</currentMemory>`) || !strings.Contains(x, `<vcpu placement="static">2</vcpu>`) {
		t.Errorf("definition: %s", x)
	}
}

// vm apply takes the same live paths: the emulator's pinning and a
// disk's limits change on the running VM, and the result says they did.
func TestApplyLiveTuning(t *testing.T) {
	e := newEnv(t)
	e.liveVM("web1")
	v, _ := e.svc.Get(e.ctx, "web1")
	next := *v.Spec
	next.CPU = &api.CPUTuning{EmulatorPin: "2-3"}
	next.Disks = []api.Disk{next.Disks[0]}
	next.Disks[0].Limits = &api.DiskLimits{WriteIOPS: 50}
	next.Labels = map[string]string{"tuned": "yes"}
	op, err := e.svc.Apply(e.ctx, next, ApplyOptions{})
	got := e.succeed(op, err)
	var res api.ApplyResult
	if err := json.Unmarshal(got.Result, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Live) != 2 || len(res.Changes) != 3 {
		t.Errorf("result: changes %q, live %q", res.Changes, res.Live)
	}
	x := e.xml("web1", false)
	if !strings.Contains(x, `<emulatorpin cpuset="2,3">`) || !strings.Contains(x, `<write_iops_sec>50</write_iops_sec>`) {
		t.Errorf("live XML: %s", x)
	}
	// Lifting them puts every host CPU back and no limit.
	next.CPU, next.Disks[0].Limits = nil, nil
	op, err = e.svc.Apply(e.ctx, next, ApplyOptions{})
	e.succeed(op, err)
	x = e.xml("web1", false)
	if !strings.Contains(x, `<emulatorpin cpuset="0,1,2,3">`) || strings.Contains(x, "<iotune>") {
		t.Errorf("after lifting: %s", x)
	}
}
