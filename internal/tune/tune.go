// Package tune checks the host settings that matter for VMs against a
// profile (after tuned's virtual-host), applies the profile's runtime
// settings (sysctl and /sys files), persists them, and reverts what it
// changed from a record of the old values.
//
// Every file it reads or writes is under Root, "/" on a host and a
// directory tree in tests, so tests never touch the machine's settings.
// It knows nothing of libvirt: the daemon passes in what it knows (the
// accelerator decision, the VMs' memory, the pools' directories).
package tune

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/godwit-project/godwit/api"
)

// Inputs is what the daemon knows that the files do not say.
type Inputs struct {
	// Accel is the daemon's accelerator decision: kvm or tcg, and why.
	AccelChosen, AccelReason string
	// VMMemory is the memory of every VM of this host added up; HostMemory
	// the host's.
	VMMemory, HostMemory uint64
	// Hugepages is the number of 2 MiB huge pages the VMs that want
	// reserved pages need.
	Hugepages int
	// Pools are the directories that hold VM disks.
	Pools []string
}

// Host is the host's files under Root.
type Host struct {
	Root string
	// DevOf gives the block device (major, minor) a path is on (nil:
	// stat(2) of the path under Root).
	DevOf func(path string) (major, minor uint32, err error)
}

func (h Host) path(p string) string { return filepath.Join(h.Root, p) }

// read returns the trimmed content of a file; ok false when it is absent.
func (h Host) read(p string) (string, bool) {
	b, err := os.ReadFile(h.path(p))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// bracketed is the [chosen] word of a /sys choice file: "always [madvise] never".
func bracketed(v string) string {
	for _, w := range strings.Fields(v) {
		if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]") {
			return strings.Trim(w, "[]")
		}
	}
	return v
}

// absent is the Current of a setting the host lacks.
const absent = "absent"

// item builders
func ok(name, cur, rec, why, path string) api.TuneItem {
	return api.TuneItem{Name: name, Current: cur, Recommended: rec, Status: api.CheckOK, Why: why, Path: path}
}

func warn(name, cur, rec, why, path string) api.TuneItem {
	return api.TuneItem{Name: name, Current: cur, Recommended: rec, Status: api.CheckWarning, Why: why, Path: path}
}

func crit(name, cur, rec, why string) api.TuneItem {
	return api.TuneItem{Name: name, Current: cur, Recommended: rec, Status: api.CheckCritical, Why: why}
}

// sysctl is a /proc/sys setting the profile sets to a number.
type sysctl struct {
	name, want, why string
}

// virtualHost are the profile's sysctls (tuned's virtual-host, which
// includes throughput-performance).
var virtualHost = []sysctl{
	{"vm.swappiness", "10", "VMs' memory should stay in RAM: swapping a guest's pages out stalls its vCPUs (tuned throughput-performance: 10)"},
	{"vm.dirty_ratio", "40", "how much dirty page cache may build up before writers block (tuned throughput-performance: 40)"},
	{"vm.dirty_background_ratio", "5", "start writing dirty pages back early, so guests with cache=writeback disks do not flush in bursts (tuned virtual-host: 5)"},
}

func sysctlPath(name string) string { return "proc/sys/" + strings.ReplaceAll(name, ".", "/") }

// Check reports every setting against the profile.
func (h Host) Check(profile string, in Inputs) (api.TuneReport, error) {
	if profile == "" {
		profile = api.TuneProfileVirtualHost
	}
	if profile != api.TuneProfileVirtualHost {
		return api.TuneReport{}, api.BadRequest("profile: %q is not a profile (profiles: %s)", profile, api.TuneProfileVirtualHost)
	}
	var items []api.TuneItem
	items = append(items, h.virtualization(in)...)
	items = append(items, h.ksm(in), h.hugepages(in), h.thp())
	for _, s := range virtualHost {
		p := sysctlPath(s.name)
		cur, found := h.read(p)
		switch {
		case !found:
			items = append(items, ok(s.name, absent, s.want, s.why+"; this kernel has no such setting", ""))
		case cur == s.want:
			items = append(items, ok(s.name, cur, s.want, s.why, "/"+p))
		default:
			items = append(items, warn(s.name, cur, s.want, s.why, "/"+p))
		}
	}
	items = append(items, h.numaBalancing(), h.governor(), h.vhostNet())
	items = append(items, h.schedulers(in)...)
	items = append(items, h.cgroups(), h.iommu())
	rep := api.TuneReport{Profile: profile, Items: items, Status: api.CheckOK}
	for _, it := range items {
		if api.CheckSeverity(it.Status) > api.CheckSeverity(rep.Status) {
			rep.Status = it.Status
		}
	}
	return rep, nil
}

// virtualization is virt-host-validate's first checks: the CPU's
// virtualization extensions, /dev/kvm, and whether the daemon found KVM
// usable.
func (h Host) virtualization(in Inputs) []api.TuneItem {
	var out []api.TuneItem
	cpuinfo, _ := h.read("proc/cpuinfo")
	flag := ""
	for _, line := range strings.Split(cpuinfo, "\n") {
		if !strings.HasPrefix(line, "flags") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if f == "vmx" || f == "svm" {
				flag = f
			}
		}
		break
	}
	if flag != "" {
		out = append(out, ok("hardware-virtualization", flag, "vmx or svm", "the CPU has virtualization extensions (Intel VT-x or AMD-V), which KVM needs", ""))
	} else {
		out = append(out, crit("hardware-virtualization", "none", "vmx or svm",
			"the CPU shows no virtualization extensions (enable VT-x/AMD-V in the firmware; a VM host needs nested virtualization): without them guests run under TCG, emulated, many times slower"))
	}
	dev := "/dev/kvm"
	fi, err := os.Stat(h.path(dev))
	switch {
	case err != nil:
		out = append(out, crit("kvm-device", absent, "present, usable by QEMU", "no /dev/kvm: the kvm module is not loaded (modprobe kvm_intel or kvm_amd), so guests run under TCG"))
	default:
		mode := fmt.Sprintf("%04o", fi.Mode().Perm())
		st, _ := fi.Sys().(*syscall.Stat_t)
		if st != nil && st.Gid == 0 && fi.Mode().Perm()&0o060 == 0 {
			out = append(out, warn("kvm-device", "mode "+mode+" root:root", "0660 root:kvm",
				"only root can open /dev/kvm: QEMU running as libvirt-qemu cannot, and libvirt re-probes QEMU on every call (chgrp kvm /dev/kvm; chmod 0660 /dev/kvm)", ""))
		} else {
			out = append(out, ok("kvm-device", "mode "+mode, "0660 root:kvm", "QEMU can open /dev/kvm", ""))
		}
	}
	switch in.AccelChosen {
	case "kvm":
		out = append(out, ok("kvm", "usable", "usable", "the daemon runs VMs under KVM: "+in.AccelReason, ""))
	case "":
		out = append(out, warn("kvm", "unknown", "usable", "the daemon has not decided on an accelerator yet (libvirt down?)", ""))
	default:
		out = append(out, crit("kvm", "not usable", "usable", "no usable KVM: the daemon runs VMs under TCG (emulation, much slower): "+in.AccelReason))
	}
	return out
}

func (h Host) ksm(in Inputs) api.TuneItem {
	p := "sys/kernel/mm/ksm/run"
	cur, found := h.read(p)
	over := in.HostMemory > 0 && in.VMMemory > in.HostMemory
	want, why := "0", "KSM merges identical pages of guests, at the cost of CPU time; the VMs' memory fits in the host's, so it only costs"
	if over {
		want, why = "1", fmt.Sprintf("the VMs have %s of memory and the host %s: overcommitted, so KSM's merging of identical guest pages is worth its CPU time",
			api.Size(in.VMMemory).Human(), api.Size(in.HostMemory).Human())
	}
	switch {
	case !found:
		return ok("ksm", absent, want, "this kernel has no KSM", "")
	case cur == want || (!over && cur == "2"):
		return ok("ksm", cur, want, why, "/"+p)
	}
	return warn("ksm", cur, want, why, "/"+p)
}

func (h Host) hugepages(in Inputs) api.TuneItem {
	p := "proc/sys/vm/nr_hugepages"
	cur, found := h.read(p)
	n, _ := strconv.Atoi(cur)
	want := strconv.Itoa(max(in.Hugepages, n))
	why := fmt.Sprintf("the VMs that want reserved 2 MiB huge pages need %d", in.Hugepages)
	switch {
	case !found:
		if in.Hugepages > 0 {
			return crit("hugepages", absent, want, why+", and this kernel has no huge pages")
		}
		return ok("hugepages", absent, "0", "no VM wants huge pages; this kernel has none", "")
	case n >= in.Hugepages:
		return ok("hugepages", cur, want, why+"; that many are reserved", "/"+p)
	}
	return warn("hugepages", cur, want, why+"; fewer are reserved, so those VMs cannot start", "/"+p)
}

func (h Host) thp() api.TuneItem {
	p := "sys/kernel/mm/transparent_hugepage/enabled"
	raw, found := h.read(p)
	cur := bracketed(raw)
	why := "transparent huge pages back guest RAM with 2 MiB pages (fewer TLB misses); QEMU asks for them (madvise), so madvise is as good as always"
	switch {
	case !found:
		return ok("transparent-hugepages", absent, "always", "this kernel has no transparent huge pages", "")
	case cur == "always" || cur == "madvise":
		return ok("transparent-hugepages", cur, "always", why, "/"+p)
	}
	return warn("transparent-hugepages", cur, "always", why, "/"+p)
}

func (h Host) numaBalancing() api.TuneItem {
	nodes, _ := filepath.Glob(h.path("sys/devices/system/node/node[0-9]*"))
	p := "proc/sys/kernel/numa_balancing"
	cur, found := h.read(p)
	if len(nodes) <= 1 {
		return ok("kernel.numa_balancing", orAbsent(cur, found), "any", "one NUMA node: there is nothing to balance", "")
	}
	why := fmt.Sprintf("%d NUMA nodes: automatic balancing moves unpinned guests' memory next to their vCPUs (VMs pinned with numa.hostNodes are not moved)", len(nodes))
	if cur == "1" {
		return ok("kernel.numa_balancing", cur, "1", why, "/"+p)
	}
	return warn("kernel.numa_balancing", orAbsent(cur, found), "1", why, "/"+p)
}

func orAbsent(v string, found bool) string {
	if !found {
		return absent
	}
	return v
}

func (h Host) governor() api.TuneItem {
	files, _ := filepath.Glob(h.path("sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"))
	if len(files) == 0 {
		return ok("cpu-governor", absent, "performance", "no cpufreq: the CPUs' frequency is not the kernel's to set here (a VM, or a fixed-frequency host)", "")
	}
	slices.Sort(files)
	govs := map[string]bool{}
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			govs[strings.TrimSpace(string(b))] = true
		}
	}
	var list []string
	for g := range govs {
		list = append(list, g)
	}
	slices.Sort(list)
	why := "vCPUs are host threads: a governor that lowers the clock when the host looks idle adds latency to guests (tuned throughput-performance: performance)"
	// apply writes every CPU's file; the item names the glob.
	path := "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
	if len(list) == 1 && list[0] == "performance" {
		return ok("cpu-governor", "performance", "performance", why, path)
	}
	return warn("cpu-governor", strings.Join(list, ","), "performance", why, path)
}

func (h Host) vhostNet() api.TuneItem {
	_, dev := os.Stat(h.path("dev/vhost-net"))
	_, mod := os.Stat(h.path("sys/module/vhost_net"))
	why := "vhost-net moves virtio NICs' packets in the kernel instead of QEMU's userspace: faster, fewer context switches"
	if dev == nil || mod == nil {
		return ok("vhost-net", "loaded", "loaded", why, "")
	}
	return warn("vhost-net", "not loaded", "loaded", why+"; modprobe vhost_net (this kernel may not have it built: check /lib/modules/$(uname -r))", "")
}

// schedulers checks the I/O scheduler of the disks behind the pools:
// none (or mq-deadline) for SSDs and NVMe, mq-deadline or bfq for
// spinning disks.
func (h Host) schedulers(in Inputs) []api.TuneItem {
	var out []api.TuneItem
	seen := map[string]bool{}
	for _, pool := range in.Pools {
		major, minor, err := h.devOf(pool)
		if err != nil {
			continue
		}
		dir, name, ok2 := h.blockDevice(major, minor)
		if !ok2 {
			out = append(out, ok("io-scheduler "+pool, absent, "-", fmt.Sprintf("the pool is on device %d:%d, not a block device with a queue (tmpfs, overlay, a network filesystem)", major, minor), ""))
			continue
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		raw, _ := h.read(dir + "/queue/scheduler")
		cur := bracketed(raw)
		rot, _ := h.read(dir + "/queue/rotational")
		item := "io-scheduler " + name
		path := "/" + dir + "/queue/scheduler"
		if rot == "1" {
			why := "a spinning disk: mq-deadline (or bfq) orders requests so guests' I/O does not starve"
			if cur == "mq-deadline" || cur == "bfq" {
				out = append(out, ok(item, cur, "mq-deadline", why, path))
			} else {
				out = append(out, warn(item, cur, "mq-deadline", why, path))
			}
			continue
		}
		why := "an SSD, NVMe or virtual disk: reordering buys nothing, so none (or mq-deadline) costs the least CPU"
		if cur == "none" || cur == "mq-deadline" || cur == "" {
			out = append(out, ok(item, orDash(cur), "none", why, path))
		} else {
			out = append(out, warn(item, cur, "none", why, path))
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (h Host) devOf(path string) (uint32, uint32, error) {
	if h.DevOf != nil {
		return h.DevOf(path)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(h.path(path), &st); err != nil {
		return 0, 0, err
	}
	dev := uint64(st.Dev)
	return uint32((dev >> 8) & 0xfff), uint32((dev & 0xff) | ((dev >> 12) & 0xfff00)), nil
}

// blockDevice finds the disk (not the partition) of major:minor under
// /sys/dev/block: its /sys/block directory and name.
func (h Host) blockDevice(major, minor uint32) (dir, name string, ok bool) {
	link := fmt.Sprintf("sys/dev/block/%d:%d", major, minor)
	target, err := filepath.EvalSymlinks(h.path(link))
	if err != nil {
		return "", "", false
	}
	if _, err := os.Stat(filepath.Join(target, "partition")); err == nil {
		target = filepath.Dir(target)
	}
	name = filepath.Base(target)
	if _, err := os.Stat(h.path("sys/block/" + name + "/queue/scheduler")); err != nil {
		return "", "", false
	}
	return "sys/block/" + name, name, true
}

// cgroups checks the controllers libvirt uses to limit and account VMs
// (virt-host-validate's cgroup checks).
func (h Host) cgroups() api.TuneItem {
	want := []string{"cpu", "cpuset", "memory", "io", "pids"}
	if v, found := h.read("sys/fs/cgroup/cgroup.controllers"); found {
		have := strings.Fields(v)
		var missing []string
		for _, c := range want {
			if !slices.Contains(have, c) {
				missing = append(missing, c)
			}
		}
		why := "libvirt puts each VM in a cgroup: cpu for shares and quotas, cpuset for pinning, memory and io for limits, pids"
		if len(missing) == 0 {
			return ok("cgroup-controllers", "v2: "+strings.Join(have, ","), strings.Join(want, ","), why, "")
		}
		return warn("cgroup-controllers", "v2: "+strings.Join(have, ","), strings.Join(want, ","), why+"; missing: "+strings.Join(missing, ", "), "")
	}
	var have, missing []string
	for _, c := range []string{"cpu", "cpuset", "memory", "blkio", "pids"} {
		if _, err := os.Stat(h.path("sys/fs/cgroup/" + c)); err == nil {
			have = append(have, c)
		} else {
			missing = append(missing, c)
		}
	}
	if len(have) == 0 {
		return warn("cgroup-controllers", absent, strings.Join(want, ","), "no cgroup filesystem mounted at /sys/fs/cgroup: libvirt cannot pin, limit or account VMs", "")
	}
	if len(missing) > 0 {
		return warn("cgroup-controllers", "v1: "+strings.Join(have, ","), "cpu,cpuset,memory,blkio,pids", "cgroup v1 controllers missing: "+strings.Join(missing, ", "), "")
	}
	return ok("cgroup-controllers", "v1: "+strings.Join(have, ","), "cpu,cpuset,memory,blkio,pids", "libvirt has the controllers it uses", "")
}

func (h Host) iommu() api.TuneItem {
	groups, _ := os.ReadDir(h.path("sys/kernel/iommu_groups"))
	why := "an IOMMU (Intel VT-d, AMD-Vi) is what PCI passthrough to a guest needs"
	if len(groups) > 0 {
		return ok("iommu", fmt.Sprintf("%d groups", len(groups)), "enabled", why, "")
	}
	return warn("iommu", "disabled", "enabled", why+"; none is on (intel_iommu=on or amd_iommu=on on the kernel command line, VT-d/AMD-Vi in the firmware); without it VMs run, but get no passthrough devices", "")
}
