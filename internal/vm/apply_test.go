package vm

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
)

// applied runs an apply that must succeed and returns its result.
func (e *env) applied(spec api.VMSpec) (api.Operation, api.ApplyResult) {
	e.t.Helper()
	op := e.succeed(e.svc.Apply(e.ctx, spec, ApplyOptions{}))
	var res api.ApplyResult
	if op.Kind == "vm.apply" {
		if err := json.Unmarshal(op.Result, &res); err != nil {
			e.t.Fatalf("apply result %s: %v", op.Result, err)
		}
	}
	return op, res
}

// definition parses the domain's persistent XML.
func (e *env) definition(name string) libvirtxml.Domain {
	e.t.Helper()
	x, err := e.f.XML(e.ctx, name, true)
	if err != nil {
		e.t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		e.t.Fatal(err)
	}
	if domainxml.OwnerOf(x) != testOwner {
		e.t.Fatalf("domain %s lost its owner: %s", name, x)
	}
	return d
}

func TestApplyCreatesAMissingVM(t *testing.T) {
	e := newEnv(t)
	op, _ := e.applied(e.spec("web1"))
	if op.Kind != "vm.create" {
		t.Fatalf("apply of a new VM ran %s", op.Kind)
	}
	if st := e.state("web1"); st != api.VMStopped {
		t.Fatalf("state = %s", st)
	}
}

func TestApplyNothingToChange(t *testing.T) {
	e := newEnv(t)
	spec := e.spec("web1")
	spec.Labels = map[string]string{"app": "web"}
	e.create(spec, true)
	op, res := e.applied(spec)
	if res.Changes == nil || len(res.Changes) != 0 {
		t.Fatalf("changes = %#v, want an empty list", res.Changes)
	}
	if !strings.Contains(string(op.Result), `"changes":[]`) {
		t.Errorf("result %s does not say changes: []", op.Result)
	}
	if res.VM.Name != "web1" || res.VM.State != api.VMRunning {
		t.Errorf("result VM = %+v", res.VM)
	}
}

func TestApplyLiveChangesOnARunningVM(t *testing.T) {
	e := newEnv(t)
	spec := e.spec("web1")
	spec.Labels = map[string]string{"app": "web"}
	e.create(spec, true)
	spec.Labels = map[string]string{"app": "db", "tier": "1"}
	spec.Autostart = true
	_, res := e.applied(spec)
	if !slices.Contains(res.Changes, "labels: changed") || !slices.Contains(res.Changes, "autostart: false -> true") || len(res.Changes) != 2 {
		t.Fatalf("changes = %q", res.Changes)
	}
	if !e.domain("web1").Autostart {
		t.Error("autostart not set on the domain")
	}
	v, _ := e.svc.Get(e.ctx, "web1")
	if v.State != api.VMRunning || v.Spec.Labels["app"] != "db" || v.Spec.Labels["tier"] != "1" || !v.Spec.Autostart {
		t.Errorf("after apply: %s %+v", v.State, v.Spec)
	}
}

func TestApplyOfflineChanges(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), true)
	before := e.definition("web1")

	changed := e.spec("web1")
	changed.CPUs = 2
	changed.Memory = 128 * api.MiB
	changed.Boot.Cmdline = "console=ttyS0 quiet"
	changed.Disks = []api.Disk{{Name: "root", Size: 2 * api.GiB}, {Name: "data", Size: api.GiB}}

	// Running: each offline change is refused, and named.
	_, err := e.svc.Apply(e.ctx, changed, ApplyOptions{})
	wantStatus(t, "offline changes on a running VM", err, 409,
		"stop", "cpus: 1 -> 2", "memory: 64MiB -> 128MiB", "boot: changed", "disks[0].size: 1GiB -> 2GiB", "disks[1]: add data")
	// Refused with live changes too, and nothing was applied.
	withLive := changed
	withLive.Autostart = true
	_, err = e.svc.Apply(e.ctx, withLive, ApplyOptions{})
	wantStatus(t, "offline and live changes on a running VM", err, 409, "cpus: 1 -> 2")
	if vols := e.volumes(); !slices.Equal(vols, []string{"web1-root.qcow2"}) {
		t.Fatalf("volumes after a refused apply: %v", vols)
	}
	if e.domain("web1").Autostart {
		t.Fatal("a refused apply set autostart")
	}
	if v, _ := e.svc.Get(e.ctx, "web1"); v.Spec.CPUs != 1 || len(v.Disks) != 1 {
		t.Fatalf("a refused apply changed the record: %+v", v.Spec)
	}

	// Stopped: they apply.
	e.succeed(e.svc.Stop(e.ctx, "web1", StopOptions{Force: true}))
	_, res := e.applied(changed)
	if len(res.Changes) != 5 {
		t.Errorf("changes = %q, want 5", res.Changes)
	}
	root, err := e.f.VolumeInfo(e.ctx, testPool, "web1-root.qcow2")
	if err != nil || root.Capacity != uint64(2*api.GiB) {
		t.Errorf("root volume = %+v, %v; want grown to 2GiB", root, err)
	}
	data, err := e.f.VolumeInfo(e.ctx, testPool, "web1-data.qcow2")
	if err != nil || data.Capacity != uint64(api.GiB) {
		t.Errorf("data volume = %+v, %v; want 1GiB", data, err)
	}
	after := e.definition("web1")
	if after.UUID != before.UUID {
		t.Errorf("UUID changed: %s -> %s", before.UUID, after.UUID)
	}
	if after.VCPU.Value != 2 || after.Memory.Value != 128*1024 || after.OS.Cmdline != "console=ttyS0 quiet" {
		t.Errorf("redefined domain: vcpu %d memory %d %s cmdline %q", after.VCPU.Value, after.Memory.Value, after.Memory.Unit, after.OS.Cmdline)
	}
	var targets []string
	for _, d := range after.Devices.Disks {
		targets = append(targets, d.Target.Dev)
	}
	if !slices.Equal(targets, []string{"vda", "vdb"}) {
		t.Errorf("disk targets = %v", targets)
	}
	v, _ := e.svc.Get(e.ctx, "web1")
	if v.Spec.CPUs != 2 || len(v.Disks) != 2 || v.Disks[0].Size != 2*api.GiB || v.Disks[1].Path != data.Path {
		t.Errorf("record after apply: %+v %+v", v.Spec, v.Disks)
	}
	// And the VM boots with them.
	e.succeed(e.svc.Start(e.ctx, "web1"))
}

// A failed offline apply puts the old definition back and keeps the record.
func TestApplyFailureRevertsDefinition(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), false)
	changed := e.spec("web1")
	changed.CPUs = 2
	changed.Autostart = true
	changed.Disks = append(changed.Disks, api.Disk{Name: "data", Size: api.GiB})
	e.f.FailNext("SetAutostart", nil)
	op := e.fail(e.svc.Apply(e.ctx, changed, ApplyOptions{}))
	wantStatus(t, "failed apply", op.Err(), 500, "set autostart of vm web1")
	if d := e.definition("web1"); d.VCPU.Value != 1 || len(d.Devices.Disks) != 1 {
		t.Errorf("definition after a failed apply: vcpu %d, %d disks", d.VCPU.Value, len(d.Devices.Disks))
	}
	if vols := e.volumes(); !slices.Equal(vols, []string{"web1-root.qcow2"}) {
		t.Errorf("volumes after a failed apply: %v", vols)
	}
	if v, _ := e.svc.Get(e.ctx, "web1"); v.Spec.CPUs != 1 || v.Spec.Autostart || len(v.Disks) != 1 {
		t.Errorf("record after a failed apply: %+v", v.Spec)
	}
}

// Apply never loses data: shrinking, removing, reordering disks and
// changing a disk's image are refused, running or not.
func TestApplyRefusesDataLoss(t *testing.T) {
	e := newEnv(t)
	spec := e.spec("web1")
	spec.Disks = []api.Disk{{Name: "root", Image: imgOneGiB, Size: 2 * api.GiB}, {Name: "data", Size: api.GiB}}
	e.create(spec, false)
	cases := []struct {
		name   string
		change func(s *api.VMSpec)
		saying string
	}{
		{"shrink", func(s *api.VMSpec) { s.Disks[1].Size = 512 * api.MiB }, "shrinking data"},
		{"shrink below the created size", func(s *api.VMSpec) { s.Disks[0].Size = api.GiB + 512*api.MiB }, "shrinking root"},
		{"remove", func(s *api.VMSpec) { s.Disks = s.Disks[:1] }, "removing disk data"},
		{"reorder", func(s *api.VMSpec) { s.Disks[0], s.Disks[1] = s.Disks[1], s.Disks[0] }, "disks[0]: is root"},
		{"change image", func(s *api.VMSpec) { s.Disks[0].Image = imgRaw }, "disks[0].image"},
		{"shrink with other changes", func(s *api.VMSpec) { s.CPUs = 2; s.Disks[1].Size = 512 * api.MiB }, "shrinking data"},
	}
	for _, running := range []bool{false, true} {
		if running {
			e.succeed(e.svc.Start(e.ctx, "web1"))
		}
		for _, c := range cases {
			s := e.spec("web1")
			s.Disks = slices.Clone(spec.Disks)
			c.change(&s)
			_, err := e.svc.Apply(e.ctx, s, ApplyOptions{})
			wantStatus(t, c.name, err, 409, c.saying)
		}
	}
	if d := e.definition("web1"); d.VCPU.Value != 1 || len(d.Devices.Disks) != 2 {
		t.Errorf("a refused apply changed the domain: vcpu %d, %d disks", d.VCPU.Value, len(d.Devices.Disks))
	}
	for name, size := range map[string]api.Size{"web1-root.qcow2": 2 * api.GiB, "web1-data.qcow2": api.GiB} {
		if info, err := e.f.VolumeInfo(e.ctx, testPool, name); err != nil || info.Capacity != uint64(size) {
			t.Errorf("%s after refused applies: %+v, %v", name, info, err)
		}
	}
}

func TestApplyWithLibvirtDown(t *testing.T) {
	e := newEnv(t)
	e.create(e.spec("web1"), false)
	e.f.SetDown(true)
	spec := e.spec("web1")
	spec.CPUs = 2
	_, err := e.svc.Apply(e.ctx, spec, ApplyOptions{})
	wantStatus(t, "apply with libvirt down", err, 503)
	e.f.SetDown(false)
	// The refused apply released the VM.
	e.applied(spec)
}
