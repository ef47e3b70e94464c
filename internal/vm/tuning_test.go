package vm

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// fakeProbe is a host with free huge pages and maybe a virtiofsd.
type fakeProbe struct {
	free      int
	virtiofsd bool
}

func (p fakeProbe) FreeHugepages(api.Size) (int, error) { return p.free, nil }

func (p fakeProbe) Virtiofsd() (string, error) {
	if p.virtiofsd {
		return "/usr/libexec/virtiofsd", nil
	}
	return "", errors.New("this host has no virtiofsd (looked at /usr/libexec/virtiofsd)")
}

func bptr(b bool) *bool { return &b }

// Every bad tuning field is a 400 naming the field, from create and
// apply alike, and leaves nothing behind.
func TestTuningValidationNamesTheField(t *testing.T) {
	e := newEnv(t)
	e.f.SetHostInfo(hypervisor.HostInfo{CPUs: 4, MemoryBytes: uint64(2 * api.GiB), VirtTypes: []string{"qemu"}, MaxVCPUs: 255, NUMANodes: 1})
	e.svc.cfg.Probe = fakeProbe{free: 16}
	cases := []struct {
		name, field string
		change      func(s *api.VMSpec)
	}{
		{"maxCpus below cpus", "maxCpus:", func(s *api.VMSpec) { s.CPUs = 2; s.MaxCPUs = 1 }},
		{"maxCpus above QEMU's", "maxCpus:", func(s *api.VMSpec) { s.MaxCPUs = 300 }},
		{"maxMemory below memory", "maxMemory:", func(s *api.VMSpec) { s.MaxMemory = 32 * api.MiB }},
		{"maxMemory above the host's", "maxMemory:", func(s *api.VMSpec) { s.MaxMemory = 4 * api.GiB }},
		{"no balloon but maxMemory", "balloon:", func(s *api.VMSpec) { s.MaxMemory = 128 * api.MiB; s.Balloon = bptr(false) }},
		{"unknown cpu mode", "cpu.mode:", func(s *api.VMSpec) { s.CPU = &api.CPUTuning{Mode: "host"} }},
		{"model with host-model", "cpu.model:", func(s *api.VMSpec) { s.CPU = &api.CPUTuning{Mode: api.CPUHostModel, Model: "qemu64"} }},
		{"custom without model", "cpu.model:", func(s *api.VMSpec) { s.CPU = &api.CPUTuning{Mode: api.CPUCustom} }},
		{"topology not cpus", "cpu:", func(s *api.VMSpec) { s.CPUs = 2; s.CPU = &api.CPUTuning{Sockets: 1, Cores: 3} }},
		{"topology not maxCpus", "cpu:", func(s *api.VMSpec) { s.MaxCPUs = 4; s.CPU = &api.CPUTuning{Cores: 2} }},
		{"pin of a vCPU the VM lacks", "cpu.pin[0].vcpu:", func(s *api.VMSpec) { s.CPU = &api.CPUTuning{Pin: []api.CPUPin{{VCPU: 1, HostCPUs: "0"}}} }},
		{"pin twice", "cpu.pin[1].vcpu:", func(s *api.VMSpec) {
			s.MaxCPUs = 2
			s.CPU = &api.CPUTuning{Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "0"}, {VCPU: 0, HostCPUs: "1"}}}
		}},
		{"pin to a bad list", "cpu.pin[0].hostCpus:", func(s *api.VMSpec) { s.CPU = &api.CPUTuning{Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "3-1"}}} }},
		{"pin to a host CPU the host lacks", "cpu.pin[0].hostCpus:", func(s *api.VMSpec) { s.CPU = &api.CPUTuning{Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "2-7"}}} }},
		{"emulator pin beyond the host", "cpu.emulatorPin:", func(s *api.VMSpec) { s.CPU = &api.CPUTuning{EmulatorPin: "4"} }},
		{"hugepage size", "hugepages.size:", func(s *api.VMSpec) { s.Hugepages = &api.Hugepages{Size: 4 * api.MiB} }},
		{"hugepages with a balloon", "hugepages:", func(s *api.VMSpec) { s.Hugepages = &api.Hugepages{}; s.MaxMemory = 128 * api.MiB }},
		{"too few reserved hugepages", "hugepages:", func(s *api.VMSpec) { s.Hugepages = &api.Hugepages{} }},
		{"numa without nodes", "numa.nodes:", func(s *api.VMSpec) { s.NUMA = &api.NUMA{} }},
		{"numa missing a vCPU", "numa.nodes:", func(s *api.VMSpec) {
			s.CPUs = 2
			s.NUMA = &api.NUMA{Nodes: []api.NUMANode{{CPUs: "0", Memory: 64 * api.MiB}}}
		}},
		{"numa vCPU twice", "numa.nodes[1].cpus:", func(s *api.VMSpec) {
			s.CPUs = 2
			s.NUMA = &api.NUMA{Nodes: []api.NUMANode{{CPUs: "0-1", Memory: 32 * api.MiB}, {CPUs: "1", Memory: 32 * api.MiB}}}
		}},
		{"numa memory not the VM's", "numa.nodes:", func(s *api.VMSpec) { s.NUMA = &api.NUMA{Nodes: []api.NUMANode{{CPUs: "0", Memory: 32 * api.MiB}}} }},
		{"numa host node the host lacks", "numa.nodes[0].hostNodes:", func(s *api.VMSpec) {
			s.NUMA = &api.NUMA{Nodes: []api.NUMANode{{CPUs: "0", Memory: 64 * api.MiB, HostNodes: "1"}}}
		}},
		{"iothreads", "iothreads:", func(s *api.VMSpec) { s.IOThreads = 65 }},
		{"disk cache", "disks[0].cache:", func(s *api.VMSpec) { s.Disks[0].Cache = "fast" }},
		{"disk io", "disks[0].io:", func(s *api.VMSpec) { s.Disks[0].IO = "aio" }},
		{"native io with writeback", "disks[0].io:", func(s *api.VMSpec) { s.Disks[0].IO = "native"; s.Disks[0].Cache = "writeback" }},
		{"disk discard", "disks[0].discard:", func(s *api.VMSpec) { s.Disks[0].Discard = "trim" }},
		{"disk iothread without iothreads", "disks[0].iothread:", func(s *api.VMSpec) { s.Disks[0].IOThread = 1 }},
		{"negative iops", "disks[0].limits.readIops:", func(s *api.VMSpec) { s.Disks[0].Limits = &api.DiskLimits{ReadIOPS: -1} }},
		{"nic queues above vCPUs", "nics[0].queues:", func(s *api.VMSpec) { s.NICs = []api.NIC{{Network: "default", Queues: 2}} }},
		{"watchdog model", "watchdog.model:", func(s *api.VMSpec) { s.Watchdog = &api.Watchdog{Model: "ib700"} }},
		{"watchdog action", "watchdog.action:", func(s *api.VMSpec) { s.Watchdog = &api.Watchdog{Action: "explode"} }},
		{"rng source", "rng.source:", func(s *api.VMSpec) { s.RNG = &api.RNG{Source: "/dev/zero"} }},
		{"share relative source", "shares[0].source:", func(s *api.VMSpec) { s.Shares = []api.Share{{Source: "srv", Tag: "data"}} }},
		{"share tag", "shares[0].tag:", func(s *api.VMSpec) { s.Shares = []api.Share{{Source: "/srv", Tag: "a b"}} }},
		{"shares without virtiofsd", "shares:", func(s *api.VMSpec) { s.Shares = []api.Share{{Source: "/srv", Tag: "data"}} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := e.spec("web1")
			c.change(&spec)
			if c.name == "too few reserved hugepages" {
				spec.Memory = 64 * api.MiB // 32 pages of 2 MiB, the host has 16
			}
			for what, run := range map[string]func() (api.Operation, error){
				"create": func() (api.Operation, error) { return e.svc.Create(e.ctx, spec, CreateOptions{}) },
				"apply":  func() (api.Operation, error) { return e.svc.Apply(e.ctx, spec, ApplyOptions{}) },
			} {
				op, err := run()
				if api.Status(err) != 400 {
					t.Fatalf("%s: got %v (status %d), want 400", what, err, api.Status(err))
				}
				if !strings.HasPrefix(err.Error(), c.field) {
					t.Errorf("%s: %q does not start with %q", what, err.Error(), c.field)
				}
				if op.ID != "" {
					t.Errorf("%s: an operation started for a bad spec", what)
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
}

// A tuned spec is created, its domain has the tuning, and vm show's view
// keeps the spec as given.
func TestTunedCreate(t *testing.T) {
	e := newEnv(t)
	e.svc.cfg.Probe = fakeProbe{free: 64, virtiofsd: true}
	spec := e.spec("tuned")
	spec.CPUs, spec.MaxCPUs, spec.MaxMemory = 1, 2, 128*api.MiB
	spec.CPU = &api.CPUTuning{Mode: api.CPUHostModel, Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "1"}}, EmulatorPin: "0"}
	spec.IOThreads = 1
	spec.Disks[0].IO, spec.Disks[0].IOThread = "native", 1
	spec.Disks[0].Limits = &api.DiskLimits{ReadIOPS: 100, WriteBytes: 4 * api.MiB}
	spec.Watchdog = &api.Watchdog{}
	spec.Shares = []api.Share{{Source: "/srv/data", Tag: "data"}}
	e.create(spec, false)
	x, err := e.f.XML(e.ctx, "tuned", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<vcpu placement="static" current="1">2</vcpu>`, `<memory unit="KiB">131072</memory>`, `<currentMemory unit="KiB">65536</currentMemory>`,
		`<cpu mode="maximum">`, `<vcpupin vcpu="0" cpuset="1">`, `<emulatorpin cpuset="0">`, `<iothreads>1</iothreads>`, `io="native" discard="unmap" iothread="1"`,
		`<read_iops_sec>100</read_iops_sec>`, `<write_bytes_sec>4194304</write_bytes_sec>`, `<watchdog model="i6300esb" action="reset">`,
		`<driver type="virtiofs">`, `<memballoon model="virtio">`} {
		if !strings.Contains(x, want) {
			t.Errorf("domain XML lacks %s", want)
		}
	}
	v, err := e.svc.Get(e.ctx, "tuned")
	if err != nil {
		t.Fatal(err)
	}
	if v.Spec.MaxCPUs != 2 || v.Spec.CPU == nil || len(v.Spec.CPU.Pin) != 1 || v.CPU != "host-model asked; under TCG: QEMU's max CPU (every feature TCG emulates)" {
		t.Errorf("view: spec %+v, cpu %q", v.Spec, v.CPU)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]string{"0": "[0]", "0-3": "[0 1 2 3]", "3,0-1,1": "[0 1 3]", " 2 , 4-5": "[2 4 5]"} {
		got, err := ParseCPUList(in)
		if err != nil || sprint(got) != want {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "-1", "1-", "5000"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q): no error", bad)
		}
	}
}

func sprint(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(s, " ") + "]"
}
