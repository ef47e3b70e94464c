package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// This file holds the resources and tuning of a VM (issue 13): their
// validation, the checks against the host, and which changes QEMU can
// make to a running VM.

// Limits of the tuning fields.
const (
	MaxIOThreads = 64
	MaxNICQueues = 256
	// DefaultHugepageSize is the page size of hugepages without a size.
	DefaultHugepageSize = 2 * api.MiB
)

var (
	cpuModelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	shareTagRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,35}$`)
)

// HugepageSizeOf is the VM's huge page size; 0 without hugepages.
func HugepageSizeOf(s api.VMSpec) api.Size {
	if s.Hugepages == nil {
		return 0
	}
	if s.Hugepages.Size == 0 {
		return DefaultHugepageSize
	}
	return s.Hugepages.Size
}

// normalizeTuning drops empty tuning parts, so equal specs compare equal.
func normalizeTuning(s *api.VMSpec) {
	if s.CPU != nil {
		if len(s.CPU.Pin) == 0 {
			s.CPU.Pin = nil
		}
		slices.SortStableFunc(s.CPU.Pin, func(a, b api.CPUPin) int { return a.VCPU - b.VCPU })
		if s.CPU.Model != "" && s.CPU.Mode == "" {
			s.CPU.Mode = api.CPUCustom
		}
		if isZeroCPU(*s.CPU) {
			s.CPU = nil
		}
	}
	if s.Watchdog != nil && *s.Watchdog == (api.Watchdog{}) {
		s.Watchdog = &api.Watchdog{Model: "i6300esb", Action: "reset"}
	}
	if s.RNG != nil && *s.RNG == (api.RNG{}) {
		s.RNG = nil
	}
	if len(s.Shares) == 0 {
		s.Shares = nil
	}
	for i := range s.Disks {
		if l := s.Disks[i].Limits; l != nil && *l == (api.DiskLimits{}) {
			s.Disks[i].Limits = nil
		}
	}
}

func isZeroCPU(c api.CPUTuning) bool {
	return c.Mode == "" && c.Model == "" && c.Sockets == 0 && c.Cores == 0 && c.Threads == 0 && c.Pin == nil && c.EmulatorPin == ""
}

// ParseCPUList reads a CPU list as the kernel writes them: "0", "0-3",
// "0,2-3". The numbers come back sorted, without repeats.
func ParseCPUList(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty CPU list")
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q is not a CPU number or range (e.g. 0, 0-3, 0,2)", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a CPU range (low-high)", part)
			}
		}
		if b >= 4096 {
			return nil, fmt.Errorf("CPU %d is beyond 4095", b)
		}
		for n := a; n <= b; n++ {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// validateTuning checks the tuning fields without the host.
func validateTuning(s api.VMSpec) error {
	if s.MaxCPUs < 0 {
		return api.BadRequest("maxCpus: %d is not a positive number", s.MaxCPUs)
	}
	if s.MaxCPUs != 0 && s.MaxCPUs < s.CPUs {
		return api.BadRequest("maxCpus: %d is below cpus (%d); maxCpus is the most cpus can be raised to live", s.MaxCPUs, s.CPUs)
	}
	if s.MaxMemory != 0 {
		if s.MaxMemory < s.Memory {
			return api.BadRequest("maxMemory: %s is below memory (%s); maxMemory is the most memory can grow to live", s.MaxMemory.Human(), s.Memory.Human())
		}
		if s.MaxMemory%api.MiB != 0 {
			return api.BadRequest("maxMemory: %s is not a whole number of MiB", s.MaxMemory.Human())
		}
	}
	if s.Balloon != nil && !*s.Balloon && s.MaxMemory > s.Memory {
		return api.BadRequest("balloon: false, but maxMemory (%s) is above memory (%s): the guest's memory changes live through the balloon", s.MaxMemory.Human(), s.Memory.Human())
	}
	if err := validateCPU(s); err != nil {
		return err
	}
	if err := validateHugepages(s); err != nil {
		return err
	}
	if err := validateNUMA(s); err != nil {
		return err
	}
	if s.IOThreads < 0 || s.IOThreads > MaxIOThreads {
		return api.BadRequest("iothreads: %d is not between 0 and %d", s.IOThreads, MaxIOThreads)
	}
	for i, d := range s.Disks {
		if err := validateDiskTuning(fmt.Sprintf("disks[%d]", i), d, s.IOThreads); err != nil {
			return err
		}
	}
	for i, n := range s.NICs {
		field := fmt.Sprintf("nics[%d].queues", i)
		switch {
		case n.Queues < 0 || n.Queues > MaxNICQueues:
			return api.BadRequest("%s: %d is not between 1 and %d", field, n.Queues, MaxNICQueues)
		case n.Queues > 1 && n.Model != "" && n.Model != api.NICVirtio:
			return api.BadRequest("%s: multiqueue needs the virtio model, not %s", field, n.Model)
		case n.Queues > api.MaxCPUsOf(s):
			return api.BadRequest("%s: %d queues is more than the VM's %d vCPUs (a queue per vCPU at most)", field, n.Queues, api.MaxCPUsOf(s))
		}
	}
	if w := s.Watchdog; w != nil {
		if !slices.Contains([]string{"", "i6300esb", "itco"}, w.Model) {
			return api.BadRequest("watchdog.model: %q is not i6300esb or itco", w.Model)
		}
		if !slices.Contains([]string{"", "reset", "poweroff", "shutdown", "pause", "dump", "inject-nmi", "none"}, w.Action) {
			return api.BadRequest("watchdog.action: %q is not reset, poweroff, shutdown, pause, dump, inject-nmi or none", w.Action)
		}
	}
	if r := s.RNG; r != nil {
		if !slices.Contains([]string{"", "/dev/urandom", "/dev/random", "none"}, r.Source) {
			return api.BadRequest("rng.source: %q is not /dev/urandom, /dev/random or none", r.Source)
		}
		if r.BytesPerSecond < 0 {
			return api.BadRequest("rng.bytesPerSecond: %d is negative", r.BytesPerSecond)
		}
		if r.Source == "none" && r.BytesPerSecond != 0 {
			return api.BadRequest("rng.bytesPerSecond: there is no RNG device to limit (source none)")
		}
	}
	tags := map[string]bool{}
	for i, sh := range s.Shares {
		field := fmt.Sprintf("shares[%d]", i)
		if !filepath.IsAbs(sh.Source) || filepath.Clean(sh.Source) != sh.Source {
			return api.BadRequest("%s.source: %q must be a clean absolute path on the host", field, sh.Source)
		}
		if !shareTagRE.MatchString(sh.Tag) {
			return api.BadRequest("%s.tag: %q must be 1-36 letters, digits, '_' or '-'", field, sh.Tag)
		}
		if tags[sh.Tag] {
			return api.BadRequest("%s.tag: %q is used by two shares", field, sh.Tag)
		}
		tags[sh.Tag] = true
	}
	return nil
}

func validateCPU(s api.VMSpec) error {
	c := s.CPU
	if c == nil {
		return nil
	}
	switch c.Mode {
	case "", api.CPUHostModel, api.CPUHostPassthrough:
		if c.Model != "" {
			return api.BadRequest("cpu.model: a named model needs mode custom (or no mode), not %s", c.Mode)
		}
	case api.CPUCustom:
		if c.Model == "" {
			return api.BadRequest("cpu.model: mode custom needs a model (e.g. qemu64, Skylake-Client)")
		}
	default:
		return api.BadRequest("cpu.mode: %q is not host-passthrough, host-model or custom", c.Mode)
	}
	if c.Model != "" && !cpuModelRE.MatchString(c.Model) {
		return api.BadRequest("cpu.model: %q is not a CPU model name", c.Model)
	}
	for field, n := range map[string]int{"cpu.sockets": c.Sockets, "cpu.cores": c.Cores, "cpu.threads": c.Threads} {
		if n < 0 {
			return api.BadRequest("%s: %d is not a positive number", field, n)
		}
	}
	maxCPUs := api.MaxCPUsOf(s)
	if c.Sockets != 0 || c.Cores != 0 || c.Threads != 0 {
		sockets, cores, threads := max(c.Sockets, 1), max(c.Cores, 1), max(c.Threads, 1)
		if sockets*cores*threads != maxCPUs {
			what := "cpus"
			if s.MaxCPUs != 0 {
				what = "maxCpus"
			}
			return api.BadRequest("cpu: sockets %d x cores %d x threads %d is %d, but %s is %d (the topology must hold every vCPU)",
				sockets, cores, threads, sockets*cores*threads, what, maxCPUs)
		}
	}
	seen := map[int]bool{}
	for i, p := range c.Pin {
		field := fmt.Sprintf("cpu.pin[%d]", i)
		if p.VCPU < 0 || p.VCPU >= maxCPUs {
			return api.BadRequest("%s.vcpu: %d is not a vCPU of this VM (0 to %d)", field, p.VCPU, maxCPUs-1)
		}
		if seen[p.VCPU] {
			return api.BadRequest("%s.vcpu: vCPU %d is pinned twice", field, p.VCPU)
		}
		seen[p.VCPU] = true
		if _, err := ParseCPUList(p.HostCPUs); err != nil {
			return api.BadRequest("%s.hostCpus: %v", field, err)
		}
	}
	if c.EmulatorPin != "" {
		if _, err := ParseCPUList(c.EmulatorPin); err != nil {
			return api.BadRequest("cpu.emulatorPin: %v", err)
		}
	}
	return nil
}

func validateHugepages(s api.VMSpec) error {
	if s.Hugepages == nil {
		return nil
	}
	size := HugepageSizeOf(s)
	if size != 2*api.MiB && size != api.GiB {
		return api.BadRequest("hugepages.size: %s is not a huge page size of x86_64 (2MiB or 1GiB)", size.Human())
	}
	for field, m := range map[string]api.Size{"memory": s.Memory, "maxMemory": s.MaxMemory} {
		if m%size != 0 {
			return api.BadRequest("hugepages.size: %s is %s, not a whole number of %s pages", field, m.Human(), size.Human())
		}
	}
	if api.BalloonOf(s) {
		return api.BadRequest("hugepages: memory backed by huge pages cannot be ballooned (QEMU frees no huge pages); drop maxMemory, or set balloon: false")
	}
	return nil
}

func validateNUMA(s api.VMSpec) error {
	if s.NUMA == nil {
		return nil
	}
	if len(s.NUMA.Nodes) == 0 {
		return api.BadRequest("numa.nodes: empty; give at least one node, or drop numa")
	}
	maxCPUs := api.MaxCPUsOf(s)
	owner := map[int]int{}
	var total api.Size
	for i, n := range s.NUMA.Nodes {
		field := fmt.Sprintf("numa.nodes[%d]", i)
		cpus, err := ParseCPUList(n.CPUs)
		if err != nil {
			return api.BadRequest("%s.cpus: %v", field, err)
		}
		for _, c := range cpus {
			if c >= maxCPUs {
				return api.BadRequest("%s.cpus: vCPU %d does not exist (the VM has %d: 0-%d)", field, c, maxCPUs, maxCPUs-1)
			}
			if j, dup := owner[c]; dup {
				return api.BadRequest("%s.cpus: vCPU %d is also in numa.nodes[%d]", field, c, j)
			}
			owner[c] = i
		}
		if n.Memory == 0 || n.Memory%api.MiB != 0 {
			return api.BadRequest("%s.memory: %s must be a whole, non-zero number of MiB", field, n.Memory.Human())
		}
		total += n.Memory
		if n.HostNodes != "" {
			if _, err := ParseCPUList(n.HostNodes); err != nil {
				return api.BadRequest("%s.hostNodes: %v", field, strings.ReplaceAll(err.Error(), "CPU", "node"))
			}
		}
	}
	if len(owner) != maxCPUs {
		return api.BadRequest("numa.nodes: the nodes hold %d of the VM's %d vCPUs; every vCPU must be in one node", len(owner), maxCPUs)
	}
	if total != api.MaxMemoryOf(s) {
		return api.BadRequest("numa.nodes: the nodes' memory adds up to %s, but the VM has %s (maxMemory, or memory)", total.Human(), api.MaxMemoryOf(s).Human())
	}
	return nil
}

func validateDiskTuning(field string, d api.Disk, iothreads int) error {
	if !slices.Contains([]string{"", "none", "writeback", "writethrough", "directsync", "unsafe"}, d.Cache) {
		return api.BadRequest("%s.cache: %q is not none, writeback, writethrough, directsync or unsafe", field, d.Cache)
	}
	if !slices.Contains([]string{"", "native", "threads", "io_uring"}, d.IO) {
		return api.BadRequest("%s.io: %q is not native, threads or io_uring", field, d.IO)
	}
	if d.IO == "native" && d.Cache != "" && d.Cache != "none" && d.Cache != "directsync" {
		return api.BadRequest("%s.io: native needs cache none or directsync (O_DIRECT), not %s", field, d.Cache)
	}
	if !slices.Contains([]string{"", "unmap", "ignore"}, d.Discard) {
		return api.BadRequest("%s.discard: %q is not unmap or ignore", field, d.Discard)
	}
	if d.IOThread < 0 || d.IOThread > iothreads {
		if iothreads == 0 {
			return api.BadRequest("%s.iothread: %d, but the VM has no I/O threads (set iothreads)", field, d.IOThread)
		}
		return api.BadRequest("%s.iothread: %d is not between 1 and iothreads (%d)", field, d.IOThread, iothreads)
	}
	if l := d.Limits; l != nil {
		if l.ReadIOPS < 0 {
			return api.BadRequest("%s.limits.readIops: %d is negative", field, l.ReadIOPS)
		}
		if l.WriteIOPS < 0 {
			return api.BadRequest("%s.limits.writeIops: %d is negative", field, l.WriteIOPS)
		}
	}
	return nil
}

// HostProbe tells what the vm service needs of the host beyond libvirt:
// free huge pages and virtiofsd.
type HostProbe interface {
	// FreeHugepages is the number of free huge pages of size.
	FreeHugepages(size api.Size) (int, error)
	// Virtiofsd returns the path of virtiofsd, or an error saying where
	// it was looked for.
	Virtiofsd() (string, error)
}

// hostFiles is HostProbe on a root directory ("/" on a real host).
type hostFiles struct{ root string }

// HostFiles returns the HostProbe that reads the host's files under root.
func HostFiles(root string) HostProbe { return hostFiles{root: root} }

func (h hostFiles) FreeHugepages(size api.Size) (int, error) {
	p := filepath.Join(h.root, fmt.Sprintf("sys/kernel/mm/hugepages/hugepages-%dkB/free_hugepages", size/api.KiB))
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("this host has no %s huge pages (%v)", size.Human(), err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// VirtiofsdPaths are where distributions install virtiofsd.
var VirtiofsdPaths = []string{"usr/libexec/virtiofsd", "usr/lib/qemu/virtiofsd", "usr/bin/virtiofsd"}

func (h hostFiles) Virtiofsd() (string, error) {
	var tried []string
	for _, p := range VirtiofsdPaths {
		full := filepath.Join(h.root, p)
		if fi, err := os.Stat(full); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return full, nil
		}
		tried = append(tried, "/"+p)
	}
	return "", fmt.Errorf("this host has no virtiofsd (looked at %s); install it (Debian 13: apt-get install virtiofsd) or drop shares", strings.Join(tried, ", "))
}

func (s *Service) probe() HostProbe {
	if s.cfg.Probe != nil {
		return s.cfg.Probe
	}
	return HostFiles("/")
}

// hostTuning checks the tuning fields against this host; hugepages says
// whether to count the free huge pages (not for a VM that runs on them).
func (s *Service) hostTuning(spec api.VMSpec, h hypervisor.HostInfo, hugepages bool) error {
	if h.MaxVCPUs > 0 && spec.MaxCPUs > h.MaxVCPUs {
		return api.BadRequest("maxCpus: %d is more than the %d vCPUs QEMU allows", spec.MaxCPUs, h.MaxVCPUs)
	}
	if h.MemoryBytes > 0 && uint64(spec.MaxMemory) > h.MemoryBytes {
		return api.BadRequest("maxMemory: %s is more than this host's %s", spec.MaxMemory.Human(), api.Size(h.MemoryBytes).Human())
	}
	hostCPU := func(field, list string) error {
		cpus, _ := ParseCPUList(list)
		if h.CPUs > 0 && len(cpus) > 0 && cpus[len(cpus)-1] >= h.CPUs {
			return api.BadRequest("%s: host CPU %d does not exist: this host has %d CPUs (0-%d)", field, cpus[len(cpus)-1], h.CPUs, h.CPUs-1)
		}
		return nil
	}
	if c := spec.CPU; c != nil {
		for i, p := range c.Pin {
			if err := hostCPU(fmt.Sprintf("cpu.pin[%d].hostCpus", i), p.HostCPUs); err != nil {
				return err
			}
		}
		if c.EmulatorPin != "" {
			if err := hostCPU("cpu.emulatorPin", c.EmulatorPin); err != nil {
				return err
			}
		}
	}
	if spec.NUMA != nil && h.NUMANodes > 0 {
		for i, n := range spec.NUMA.Nodes {
			nodes, _ := ParseCPUList(n.HostNodes)
			if len(nodes) > 0 && nodes[len(nodes)-1] >= h.NUMANodes {
				return api.BadRequest("numa.nodes[%d].hostNodes: host node %d does not exist: this host has %d NUMA node(s) (0-%d)", i, nodes[len(nodes)-1], h.NUMANodes, h.NUMANodes-1)
			}
		}
	}
	if hp := spec.Hugepages; hp != nil && hugepages && (hp.Reserved == nil || *hp.Reserved) {
		size := HugepageSizeOf(spec)
		need := int(api.MaxMemoryOf(spec) / size)
		free, err := s.probe().FreeHugepages(size)
		if err != nil {
			return api.BadRequest("hugepages: %v", err)
		}
		if free < need {
			return api.BadRequest("hugepages: the VM needs %d free pages of %s, the host has %d (reserve them first: sysctl vm.nr_hugepages, or hugepages.reserved: false to let the pool grow on demand)", need, size.Human(), free)
		}
	}
	if len(spec.Shares) > 0 {
		if _, err := s.probe().Virtiofsd(); err != nil {
			return api.BadRequest("shares: %v", err)
		}
	}
	return nil
}

// CPUApplies says which CPU a VM gets under virtType, for vm show: under
// TCG, host-passthrough and host-model become QEMU's max CPU.
func CPUApplies(s api.VMSpec, virtType string) string {
	mode := ""
	if s.CPU != nil {
		mode = s.CPU.Mode
	}
	switch {
	case mode == api.CPUCustom:
		return "model " + s.CPU.Model
	case virtType == "qemu" && (mode == api.CPUHostModel || mode == api.CPUHostPassthrough):
		return mode + " asked; under TCG: QEMU's max CPU (every feature TCG emulates)"
	case virtType == "qemu":
		return "QEMU's default CPU (qemu64), under TCG"
	case mode == "":
		return api.CPUHostModel
	}
	return mode
}

// tunedDisk adds the tuning of the spec's disk of the same name.
func tunedDisk(d domainxml.Disk, s api.VMSpec) domainxml.Disk {
	for _, sd := range s.Disks {
		if sd.Name == d.Name {
			d.Cache, d.IO, d.Discard, d.IOThread, d.Limits = sd.Cache, sd.IO, sd.Discard, sd.IOThread, sd.Limits
		}
	}
	return d
}
