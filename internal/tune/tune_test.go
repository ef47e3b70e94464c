package tune

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/godwit-project/godwit/api"
)

// fakeHost builds a /proc and /sys tree of a host that needs tuning: no
// virtualization extensions, KVM unusable, swappiness 60, two NUMA nodes
// without balancing, powersave, a pool on an SSD with bfq.
func fakeHost(t *testing.T) Host {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/cpuinfo":                                         "processor\t: 0\nflags\t\t: fpu sse2 hypervisor\n",
		"dev/kvm":                                              "",
		"proc/sys/vm/swappiness":                               "60\n",
		"proc/sys/vm/dirty_ratio":                              "40\n",
		"proc/sys/vm/dirty_background_ratio":                   "10\n",
		"proc/sys/vm/nr_hugepages":                             "0\n",
		"proc/sys/kernel/numa_balancing":                       "0\n",
		"sys/kernel/mm/ksm/run":                                "0\n",
		"sys/kernel/mm/transparent_hugepage/enabled":           "always madvise [never]\n",
		"sys/devices/system/node/node0/cpulist":                "0\n",
		"sys/devices/system/node/node1/cpulist":                "1\n",
		"sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "powersave\n",
		"sys/devices/system/cpu/cpu1/cpufreq/scaling_governor": "performance\n",
		"sys/block/sda/queue/scheduler":                        "mq-deadline kyber [bfq] none\n",
		"sys/block/sda/queue/rotational":                       "0\n",
		"sys/block/sda/sda1/partition":                         "1\n",
		"sys/fs/cgroup/cgroup.controllers":                     "cpuset cpu memory pids\n",
	}
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "dev/kvm"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "sys/dev/block"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../block/sda/sda1", filepath.Join(root, "sys/dev/block/8:1")); err != nil {
		t.Fatal(err)
	}
	return Host{Root: root, DevOf: func(string) (uint32, uint32, error) { return 8, 1, nil }}
}

var tcg = Inputs{AccelChosen: "tcg", AccelReason: "/dev/kvm is served in software (kvm_pvm)", VMMemory: 1 << 30, HostMemory: 4 << 30, Pools: []string{"/var/lib/godwit/pool"}}

func statuses(rep api.TuneReport) map[string]string {
	m := map[string]string{}
	for _, it := range rep.Items {
		m[it.Name] = it.Status + " " + it.Current + " -> " + it.Recommended
	}
	return m
}

func TestCheck(t *testing.T) {
	h := fakeHost(t)
	rep, err := h.Check("", tcg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"hardware-virtualization":   "critical none -> vmx or svm",
		"kvm":                       "critical not usable -> usable",
		"ksm":                       "ok 0 -> 0",
		"hugepages":                 "ok 0 -> 0",
		"transparent-hugepages":     "warning never -> always",
		"vm.swappiness":             "warning 60 -> 10",
		"vm.dirty_ratio":            "ok 40 -> 40",
		"vm.dirty_background_ratio": "warning 10 -> 5",
		"kernel.numa_balancing":     "warning 0 -> 1",
		"cpu-governor":              "warning performance,powersave -> performance",
		"vhost-net":                 "warning not loaded -> loaded",
		"io-scheduler sda":          "warning bfq -> none",
		"cgroup-controllers":        "warning v2: cpuset,cpu,memory,pids -> cpu,cpuset,memory,io,pids",
		"iommu":                     "warning disabled -> enabled",
	}
	got := statuses(rep)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
	if rep.Status != api.CheckCritical || rep.Profile != api.TuneProfileVirtualHost {
		t.Errorf("report: %s %s", rep.Profile, rep.Status)
	}
	for _, it := range rep.Items {
		if it.Name == "kvm" && !strings.Contains(it.Why, "no usable KVM") || it.Name == "kvm" && !strings.Contains(it.Why, "kvm_pvm") {
			t.Errorf("kvm: why %q does not say there is no usable KVM and why", it.Why)
		}
		if it.Why == "" {
			t.Errorf("%s: no why", it.Name)
		}
	}
	// Overcommitted: KSM is recommended; huge pages needed: a warning.
	over := tcg
	over.VMMemory, over.Hugepages = 8<<30, 128
	got = statuses(must(h.Check("virtual-host", over)))
	if got["ksm"] != "warning 0 -> 1" || got["hugepages"] != "warning 0 -> 128" {
		t.Errorf("overcommitted: ksm %q, hugepages %q", got["ksm"], got["hugepages"])
	}
	if _, err := h.Check("desktop", tcg); api.Status(err) != 400 || !strings.HasPrefix(err.Error(), "profile:") {
		t.Errorf("unknown profile: %v", err)
	}
}

func must(r api.TuneReport, err error) api.TuneReport {
	if err != nil {
		panic(err)
	}
	return r
}

// A dry run writes nothing; apply writes the warnings' settings after
// recording the old values, persist writes the boot files, and revert
// puts every value and file back.
func TestApplyAndRevert(t *testing.T) {
	h := fakeHost(t)
	state := t.TempDir()
	before := snapshot(t, h.Root)
	dry, err := h.Apply(state, tcg, api.TuneRequest{DryRun: true, Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, snapshot(t, h.Root)) {
		t.Fatal("a dry run changed files")
	}
	if _, err := os.Stat(filepath.Join(state, RecordFile)); err == nil {
		t.Fatal("a dry run left a record")
	}
	var names []string
	for _, c := range dry.Changes {
		names = append(names, c.Name+"="+c.To)
	}
	wantNames := "transparent-hugepages=always vm.swappiness=10 vm.dirty_background_ratio=5 kernel.numa_balancing=1 cpu-governor=performance io-scheduler sda=none"
	if strings.Join(names, " ") != wantNames {
		t.Errorf("plan = %s\nwant   %s", strings.Join(names, " "), wantNames)
	}
	if !reflect.DeepEqual(dry.Files, []string{ModulesFile, SysctlFile}) {
		t.Errorf("files = %v", dry.Files)
	}

	res, err := h.Apply(state, tcg, api.TuneRequest{Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != len(dry.Changes) {
		t.Errorf("applied %d changes, the dry run said %d", len(res.Changes), len(dry.Changes))
	}
	for p, want := range map[string]string{"proc/sys/vm/swappiness": "10", "sys/kernel/mm/transparent_hugepage/enabled": "always",
		"sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance", "sys/block/sda/queue/scheduler": "none"} {
		if got, _ := h.read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	conf, _ := h.read(SysctlFile)
	if !strings.Contains(conf, "vm.swappiness = 10") || !strings.Contains(conf, "vm.dirty_background_ratio = 5") {
		t.Errorf("%s:\n%s", SysctlFile, conf)
	}
	// A second apply changes nothing and keeps the first old values.
	again, err := h.Apply(state, tcg, api.TuneRequest{})
	if err != nil || len(again.Changes) != 0 {
		t.Errorf("second apply: %+v, %v", again, err)
	}
	h.write(t, "proc/sys/vm/swappiness", "30") // someone else changed it
	if _, err := h.Apply(state, tcg, api.TuneRequest{}); err != nil {
		t.Fatal(err)
	}

	rev, err := h.Revert(state)
	if err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, h.Root)
	for p, v := range before {
		// /sys choice files come back as the chosen word.
		if got := after[p]; got != v && got != bracketed(v)+"\n" {
			t.Errorf("after revert %s = %q, want %q", p, got, v)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("revert left %s", p)
		}
	}
	if len(rev.Files) != 2 || len(rev.Changes) != len(dry.Changes) {
		t.Errorf("revert = %+v", rev)
	}
	if _, err := h.Revert(state); api.Status(err) != 409 {
		t.Errorf("second revert: %v", err)
	}
}

func (h Host) write(t *testing.T, p, v string) {
	t.Helper()
	if err := os.WriteFile(h.path(p), []byte(v+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot is every regular file under root with its content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		out[strings.TrimPrefix(p, root)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
