package vm

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// Every bad spec is refused with a 400 whose message starts with the
// field at fault, before any operation starts or anything is made.
func TestValidationNamesTheField(t *testing.T) {
	e := newEnv(t)
	e.f.SetHostInfo(hypervisor.HostInfo{CPUs: 4, MemoryBytes: uint64(2 * api.GiB), VirtTypes: []string{"qemu"}, MaxVCPUs: 255})
	cases := []struct {
		name   string
		field  string // the message starts with this
		change func(s *api.VMSpec)
	}{
		{"missing name", "name:", func(s *api.VMSpec) { s.Name = "" }},
		{"name with spaces", "name:", func(s *api.VMSpec) { s.Name = "web 1" }},
		{"name with slash", "name:", func(s *api.VMSpec) { s.Name = "web/1" }},
		{"name with dotdot", "name:", func(s *api.VMSpec) { s.Name = "web..1" }},
		{"name of 200 characters", "name:", func(s *api.VMSpec) { s.Name = strings.Repeat("a", 200) }},
		{"negative cpus", "cpus:", func(s *api.VMSpec) { s.CPUs = -1 }},
		{"more cpus than the host", "cpus:", func(s *api.VMSpec) { s.CPUs = 5 }},
		{"memory below 16MiB", "memory:", func(s *api.VMSpec) { s.Memory = 8 * api.MiB }},
		{"memory above the host's", "memory:", func(s *api.VMSpec) { s.Memory = 4 * api.GiB }},
		{"memory not whole MiB", "memory:", func(s *api.VMSpec) { s.Memory = 64*api.MiB + 512*api.KiB }},
		{"disk without size or image", "disks[0]:", func(s *api.VMSpec) { s.Disks = []api.Disk{{Name: "root"}} }},
		{"duplicate disk names", "disks[1].name:", func(s *api.VMSpec) {
			s.Disks = []api.Disk{{Name: "root", Size: api.GiB}, {Name: "root", Size: api.GiB}}
		}},
		{"relative image path", "disks[0].image:", func(s *api.VMSpec) { s.Disks = []api.Disk{{Name: "root", Image: "images/one.qcow2"}} }},
		{"unknown kernel path", "boot.kernel:", func(s *api.VMSpec) { s.Boot.Kernel = "/nonexistent/vmlinuz" }},
		{"unknown initrd path", "boot.initrd:", func(s *api.VMSpec) { s.Boot.Initrd = "/nonexistent/initrd" }},
		{"unknown image path", "disks[0].image:", func(s *api.VMSpec) { s.Disks = []api.Disk{{Name: "root", Image: "/images/missing.qcow2"}} }},
		{"size smaller than the image", "disks[0].size:", func(s *api.VMSpec) {
			s.Disks = []api.Disk{{Name: "root", Image: imgRaw, Size: api.GiB}}
		}},
		{"kernel and firmware", "boot:", func(s *api.VMSpec) { s.Boot.Firmware = "bios" }},
		{"initrd without kernel", "boot:", func(s *api.VMSpec) { s.Boot = &api.Boot{Initrd: e.initrd} }},
		{"bad firmware", "boot.firmware:", func(s *api.VMSpec) { s.Boot = &api.Boot{Firmware: "efi"} }},
		{"no disks and no kernel", "boot:", func(s *api.VMSpec) { s.Boot = nil; s.Disks = nil }},
		{"bad label key", "labels:", func(s *api.VMSpec) { s.Labels = map[string]string{"-app": "web"} }},
		{"label key with a space", "labels:", func(s *api.VMSpec) { s.Labels = map[string]string{"my app": "web"} }},
		{"bad host selector key", "placement.hostSelector:", func(s *api.VMSpec) {
			s.Placement = &api.Placement{HostSelector: map[string]string{"rack a": "1"}}
		}},
		{"long host selector value", "placement.hostSelector.rack:", func(s *api.VMSpec) {
			s.Placement = &api.Placement{HostSelector: map[string]string{"rack": strings.Repeat("a", 300)}}
		}},
		{"bad anti-affinity group", "placement.antiAffinity:", func(s *api.VMSpec) { s.Placement = &api.Placement{AntiAffinity: "web servers"} }},
		{"unknown graphics", "graphics:", func(s *api.VMSpec) { s.Graphics = "spice" }},
		{"graphics in capitals", "graphics:", func(s *api.VMSpec) { s.Graphics = "VNC" }},
		{"unknown ha", "ha:", func(s *api.VMSpec) { s.HA = "migrate" }},
		{"ha with autostart", "ha:", func(s *api.VMSpec) { s.HA = api.HARestart; s.Autostart = true }},
		{"ha on a pool not shared", "ha:", func(s *api.VMSpec) { s.HA = api.HARestart }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := e.spec("web1")
			c.change(&spec)
			for _, call := range []struct {
				what string
				run  func() (api.Operation, error)
			}{
				{"create", func() (api.Operation, error) { return e.svc.Create(e.ctx, spec, CreateOptions{}) }},
				{"apply", func() (api.Operation, error) { return e.svc.Apply(e.ctx, spec, ApplyOptions{}) }},
			} {
				op, err := call.run()
				if api.Status(err) != 400 {
					t.Fatalf("%s: got %v (status %d), want 400", call.what, err, api.Status(err))
				}
				if !strings.HasPrefix(err.Error(), c.field) {
					t.Errorf("%s: %q does not start with %q", call.what, err.Error(), c.field)
				}
				if op.ID != "" {
					t.Errorf("%s: an operation %s started for a bad spec", call.what, op.ID)
				}
			}
		})
	}
	if names := e.f.DomainNames(); len(names) != 0 {
		t.Errorf("bad specs left domains: %v", names)
	}
	if vols := e.volumes(); len(vols) != 0 {
		t.Errorf("bad specs left volumes: %v", vols)
	}
	if list, _ := e.svc.List(e.ctx); len(list) != 0 {
		t.Errorf("bad specs left VMs: %+v", list)
	}
}

// A disk may be larger than its image (it grows), and without a size it
// takes the image's.
func TestImageDiskSizes(t *testing.T) {
	e := newEnv(t)
	spec := e.spec("web1")
	spec.Disks = []api.Disk{
		{Name: "grown", Image: imgOneGiB, Size: 3 * api.GiB},
		{Name: "same", Image: imgRaw},
	}
	e.create(spec, false)
	v, err := e.svc.Get(e.ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		size    api.Size
		backing string
	}{{3 * api.GiB, imgOneGiB}, {2 * api.GiB, imgRaw}}
	for i, d := range v.Disks {
		if d.Size != want[i].size || d.Backing != want[i].backing {
			t.Errorf("disk %s: size %s backing %q, want %s %q", d.Name, d.Size, d.Backing, want[i].size, want[i].backing)
		}
		info, err := e.f.VolumeInfo(e.ctx, testPool, d.Volume)
		if err != nil || info.Capacity != uint64(want[i].size) {
			t.Errorf("volume %s: %+v, %v; want capacity %s", d.Volume, info, err, want[i].size)
		}
	}
}

// ha: restart takes a VM whose disks are on a shared pool; placement
// and ha change with apply, live.
func TestHAAndPlacementSpec(t *testing.T) {
	e := newEnv(t)
	e.svc.SetSharedPools(sharedPools{testPool: true})
	spec := e.spec("web1")
	spec.HA = api.HARestart
	spec.Placement = &api.Placement{HostSelector: map[string]string{"rack": "a"}, AntiAffinity: "web"}
	e.create(spec, true)
	v, err := e.svc.Get(e.ctx, "web1")
	if err != nil || v.Spec.HA != api.HARestart || v.Spec.Placement.AntiAffinity != "web" {
		t.Fatalf("vm: %+v %v", v.Spec, err)
	}
	spec.HA, spec.Placement = "off", &api.Placement{HostSelector: map[string]string{"rack": "b"}}
	op, err := e.svc.Apply(e.ctx, spec, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	final := e.wait(op)
	var res api.ApplyResult
	if err := json.Unmarshal(final.Result, &res); err != nil || final.State != api.OpSucceeded {
		t.Fatalf("apply: %s %s %v", final.State, final.Error, err)
	}
	if got := strings.Join(res.Changes, "; "); got != "placement: changed (for the next placement: drain, HA restart); ha: restart -> off" {
		t.Fatalf("apply changes: %q", got)
	}
	if v, _ := e.svc.Get(e.ctx, "web1"); v.Spec.HA != "" || v.Spec.Placement.HostSelector["rack"] != "b" {
		t.Fatalf("after apply: %+v", v.Spec)
	}
	// Back to restart, with a disk on a pool that is not shared: refused.
	e.svc.SetSharedPools(sharedPools{})
	spec.HA = api.HARestart
	if _, err := e.svc.Apply(e.ctx, spec, ApplyOptions{}); api.Status(err) != 400 || !strings.Contains(err.Error(), "disk root is on pool "+testPool) {
		t.Fatalf("apply ha: restart off a shared pool: %v", err)
	}
}

type sharedPools map[string]bool

func (p sharedPools) IsShared(_ context.Context, pool string) (bool, error) { return p[pool], nil }

// Normalize drops empty optional parts; a minimal spec passes.
func TestMinimalSpec(t *testing.T) {
	s := api.VMSpec{Name: "a", CPUs: 1, Memory: 64 * api.MiB, Disks: []api.Disk{{Name: "root", Size: api.GiB}}, Boot: &api.Boot{}, Labels: map[string]string{},
		Placement: &api.Placement{HostSelector: map[string]string{}}, HA: "off"}
	Normalize(&s)
	if s.Boot != nil || s.Labels != nil || s.Placement != nil || s.HA != "" {
		t.Fatalf("normalized = %+v", s)
	}
	if err := ValidateStatic(s); err != nil {
		t.Fatalf("a minimal spec is refused: %v", err)
	}
	s.Graphics = api.GraphicsVNC
	if err := ValidateStatic(s); err != nil {
		t.Fatalf("graphics: vnc is refused: %v", err)
	}
	if err := ValidateName(strings.Repeat("a", MaxNameLen)); err != nil {
		t.Fatalf("a name of %d characters is refused: %v", MaxNameLen, err)
	}
}
