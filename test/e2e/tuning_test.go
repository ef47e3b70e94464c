package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/testenv"
	"github.com/godwit-project/godwit/internal/vm"
	"github.com/godwit-project/godwit/test/sweep"
	"github.com/godwit-project/godwit/test/testbed"
)

// TestTuning is issue 13 on a real guest, one VM for every check (TCG):
// vCPU pinning in virsh vcpupin and vm show, and changed live; a live
// memory change (balloon) in the guest's /proc/meminfo; a hot-added vCPU
// the guest brings online; a disk read limit measured in the guest with
// dd, within 20%, and changed live; host tune --check on this machine;
// hugepages-backed memory in the host's /proc/meminfo (the test reserves
// the pages).
func TestTuning(t *testing.T) {
	concurrent(t)
	// --accel auto: the daemon's own decision, which host tune reports.
	d := StartDaemon(t, "--accel", "auto")
	name := "e2e-tune-" + uniq()
	spec := guestSpec(t, name)
	spec.CPUs, spec.MaxCPUs = 1, 2
	spec.Memory, spec.MaxMemory = 192*api.MiB, 320*api.MiB
	spec.CPU = &api.CPUTuning{Pin: []api.CPUPin{{VCPU: 0, HostCPUs: "1"}}}
	const readLimit = 2 * api.MiB
	spec.Disks[0].Limits = &api.DiskLimits{ReadBytes: readLimit}
	if op := d.createVM(spec, true); op.State != api.OpSucceeded {
		t.Fatalf("create: %s %s", op.State, op.Error)
	}
	d.waitConsole(name, `^tick 1 `, 0, guestWait)

	// Pinning: libvirt has it, vm show says it; then it changes live.
	pinned := func(vcpu, host string) {
		t.Helper()
		out, err := virsh(t, "vcpupin", name)
		if err != nil || !regexp.MustCompile(`(?m)^\s*`+vcpu+`\s+`+host+`\s*$`).MatchString(out) {
			t.Errorf("virsh vcpupin: vCPU %s is not on host CPU %s: %q (%v)", vcpu, host, out, err)
		}
		if show := d.MustCLI("vm", "show", name); !strings.Contains(show, "vCPU "+vcpu+" -> host CPU "+host) {
			t.Errorf("vm show does not say vCPU %s -> host CPU %s:\n%s", vcpu, host, show)
		}
	}
	pinned("0", "1")
	// Under TCG vm show says which CPU the guest gets.
	if host, _ := d.C.Host(ctxT(t, 10*time.Second)); host.Accel.Chosen == "tcg" {
		if show := d.MustCLI("vm", "show", name); !strings.Contains(show, "QEMU's default CPU (qemu64), under TCG") {
			t.Errorf("vm show does not say which CPU applies under TCG:\n%s", show)
		}
	}
	if out := d.MustCLI("vm", "set", name, "--pin", "0:0"); !strings.Contains(out, "vCPU 0 -> host CPUs 0 (live)") {
		t.Errorf("vm set --pin: %q", out)
	}
	pinned("0", "0")

	// Memory: the balloon holds the guest at 192 of 320 MiB; 288 MiB
	// live gives the guest 96 MiB more (MemTotal is RAM less the kernel's).
	memTotal := func() int {
		out, rc := d.guestExec(name, "awk '/MemTotal/{print $2}' /proc/meminfo", 30*time.Second)
		n, err := strconv.Atoi(strings.TrimSpace(out))
		if rc != 0 || err != nil {
			t.Fatalf("MemTotal: %q rc=%d", out, rc)
		}
		return n
	}
	var before int
	eventually(t, time.Minute, "the balloon to hold the guest below 192 MiB", func() bool {
		before = memTotal()
		return before <= 192*1024
	})
	if out := d.MustCLI("vm", "set", name, "--memory", "288MiB"); !strings.Contains(out, "memory: 192MiB -> 288MiB (live)") {
		t.Errorf("vm set --memory: %q", out)
	}
	var after int
	deadline := time.Now().Add(time.Minute)
	for after = memTotal(); after-before < 88*1024 && time.Now().Before(deadline); after = memTotal() {
		time.Sleep(time.Second)
	}
	if grew := after - before; grew < 88*1024 || grew > 104*1024 {
		t.Errorf("guest MemTotal %d -> %d kB: grew %d kB, want 96 MiB (98304 kB) +- 8 MiB", before, after, grew)
	}

	// vCPU hot-add: the guest sees the second vCPU (its /init onlines it).
	if out := d.MustCLI("vm", "set", name, "--cpus", "2"); !strings.Contains(out, "cpus: 1 -> 2 (live)") {
		t.Errorf("vm set --cpus: %q", out)
	}
	var online string
	deadline = time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if online, _ = d.guestExec(name, "cat /sys/devices/system/cpu/online", 30*time.Second); strings.TrimSpace(online) == "0-1" {
			break
		}
		time.Sleep(time.Second)
	}
	if strings.TrimSpace(online) != "0-1" {
		t.Errorf("guest CPUs online: %q, want 0-1", online)
	}
	if n, err := virsh(t, "vcpucount", name, "--live", "--active"); err != nil || n != "2" {
		t.Errorf("virsh vcpucount --live --active = %q, %v", n, err)
	}

	// I/O limit: read 8 MiB with O_DIRECT in the guest at the 2 MiB/s of
	// the spec, then at 4 MiB/s set live.
	rate := func(limit api.Size) {
		t.Helper()
		const mib = 8
		out, rc := d.guestExec(name, fmt.Sprintf(`s=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/vda of=/dev/null bs=64k count=%d iflag=direct 2>/dev/null; e=$(cut -d' ' -f1 /proc/uptime); echo "$s $e"`, mib*16), time.Minute)
		var s, e float64
		if _, err := fmt.Sscan(out, &s, &e); rc != 0 || err != nil || e <= s {
			t.Fatalf("dd in the guest: %q rc=%d", out, rc)
		}
		got := float64(mib*api.MiB) / (e - s)
		if ratio := got / float64(limit); ratio < 0.8 || ratio > 1.2 {
			t.Errorf("read %d MiB in %.2fs: %.2f MiB/s, limit %s/s (ratio %.2f, want 0.8-1.2)", mib, e-s, got/float64(api.MiB), limit, ratio)
		} else {
			t.Logf("read %d MiB in %.2fs: %.2f MiB/s against a limit of %s/s", mib, e-s, got/float64(api.MiB), limit)
		}
	}
	rate(readLimit)
	if out := d.MustCLI("vm", "set", name, "--read-bytes", "4MiB"); !strings.Contains(out, "(live)") {
		t.Errorf("vm set --read-bytes: %q", out)
	}
	if out, _ := virsh(t, "blkdeviotune", name, "vda"); !regexp.MustCompile(`read_bytes_sec\s*:\s*4194304`).MatchString(out) {
		t.Errorf("virsh blkdeviotune: %s", out)
	}
	rate(4 * api.MiB)

	// The stored spec is what runs.
	v, err := d.C.GetVM(ctxT(t, 10*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	if s := v.Spec; s.CPUs != 2 || s.Memory != 288*api.MiB || s.CPU.Pin[0].HostCPUs != "0" || s.Disks[0].Limits.ReadBytes != 4*api.MiB {
		t.Errorf("stored spec: cpus %d memory %s pin %+v limits %+v", s.CPUs, s.Memory, s.CPU.Pin, s.Disks[0].Limits)
	}

	// host tune on this machine: KVM is not usable, and it says why.
	stdout, _, code := d.CLI("host", "tune", "--check", "-o", "json")
	var rep api.TuneReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("host tune -o json: %v\n%s", err, stdout)
	}
	host, _ := d.C.Host(ctxT(t, 10*time.Second))
	for _, it := range rep.Items {
		if it.Name != "kvm" {
			continue
		}
		if host.Accel.Chosen == "kvm" {
			t.Logf("this host runs KVM: %s", it.Why)
			break
		}
		if it.Status != api.CheckCritical || !strings.Contains(it.Why, "no usable KVM") || !strings.Contains(it.Why, host.Accel.Reason) || host.Accel.Reason == "" {
			t.Errorf("host tune's kvm item does not say there is no usable KVM and why (%q): %+v", host.Accel.Reason, it)
		}
		if code != 2 {
			t.Errorf("host tune --check exit %d, want 2 (critical)", code)
		}
		t.Logf("host tune: %s", it.Why)
	}
	table, _, _ := d.CLI("host", "tune")
	if !strings.Contains(table, "no usable KVM") {
		t.Errorf("host tune's table does not say there is no usable KVM:\n%s", table)
	}
	t.Logf("host tune on this machine:\n%s", table)

	t.Run("virtiofs", func(t *testing.T) {
		share := guestSpec(t, name+"-fs")
		share.Shares = []api.Share{{Source: t.TempDir(), Tag: "data"}}
		if _, lookErr := vm.HostFiles("/").Virtiofsd(); lookErr != nil {
			// Create refuses, saying why, and makes nothing.
			_, err := d.C.CreateVM(ctxT(t, time.Minute), share, client.CreateOptions{})
			if api.Status(err) != 400 || !strings.HasPrefix(err.Error(), "shares: this host has no virtiofsd") {
				t.Fatalf("create with shares on a host without virtiofsd: %v", err)
			}
			if _, gerr := d.C.GetVM(ctxT(t, 10*time.Second), share.Name); api.Status(gerr) != 404 {
				t.Errorf("the refused create left a VM: %v", gerr)
			}
			testenv.SkipUnsupported(t, "no virtiofsd on this host, so no guest mounts a share ("+lookErr.Error()+")")
		}
		// This host has one (Debian 12's qemu-system-common ships QEMU's
		// own): the guest mounts the share and reads what the host wrote.
		if err := os.WriteFile(filepath.Join(share.Shares[0].Source, "hello"), []byte("from the host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(share.Shares[0].Source, 0o755)
		if op := d.createVM(share, true); op.State != api.OpSucceeded {
			t.Fatalf("create with shares: %s %s", op.State, op.Error)
		}
		d.waitConsole(share.Name, `^tick 1 `, 0, guestWait)
		out, rc := d.guestExec(share.Name, "mkdir -p /mnt && mount -t virtiofs data /mnt && cat /mnt/hello", 30*time.Second)
		if rc != 0 || strings.TrimSpace(out) != "from the host" {
			t.Errorf("guest reading the share: %q rc=%d", out, rc)
		}
	})

	t.Run("hugepages", func(t *testing.T) {
		// The test reserves the VM's 64 pages itself (what an admin does
		// with sysctl vm.nr_hugepages) and puts the setting back after,
		// or the sweeper does when the run is killed.
		const pages = 64
		d.track(func(r *sweep.Record) {
			b, _ := os.ReadFile(testbed.NrHugepages2M)
			r.Restores = append(r.Restores, sweep.Restore{Path: testbed.NrHugepages2M, Value: strings.TrimSpace(string(b))})
		})
		before, err := testbed.ReserveHugepages(pages)
		if before != "" {
			t.Cleanup(func() {
				if err := os.WriteFile(testbed.NrHugepages2M, []byte(before), 0o644); err != nil {
					t.Errorf("putting vm.nr_hugepages back to %s: %v", before, err)
				}
			})
		}
		if err != nil {
			testenv.SkipUnsupported(t, "reserving 2 MiB huge pages: "+err.Error())
		}
		free, _ := vm.HostFiles("/").FreeHugepages(2 * api.MiB)
		hp := guestSpec(t, name+"-hp")
		hp.Memory = pages * 2 * api.MiB
		hp.Hugepages = &api.Hugepages{}
		if op := d.createVM(hp, true); op.State != api.OpSucceeded {
			t.Fatalf("create: %s %s", op.State, op.Error)
		}
		d.waitConsole(hp.Name, `^tick 1 `, 0, guestWait)
		// QEMU maps the guest's RAM from hugetlbfs: the pages are taken
		// (or reserved for the first touch) while the VM runs.
		used := func() (int, string) {
			m := hostMeminfo(t)
			return (m["HugePages_Total"] - m["HugePages_Free"]) + m["HugePages_Rsvd"], fmt.Sprintf("HugePages_Total %d, Free %d, Rsvd %d", m["HugePages_Total"], m["HugePages_Free"], m["HugePages_Rsvd"])
		}
		if n, line := used(); n < pages {
			t.Errorf("/proc/meminfo while the VM runs: %s (%d free before): fewer than the %d pages of its memory are used or reserved", line, free, pages)
		} else {
			t.Logf("/proc/meminfo while the VM runs: %s", line)
		}
		d.MustCLI("vm", "stop", hp.Name, "--force")
		if n, line := used(); n >= pages {
			t.Errorf("/proc/meminfo after the VM stopped: %s: its pages were not given back", line)
		}
	})
}

// hostMeminfo reads the host's /proc/meminfo (values as written: kB, or
// a count for the HugePages_ lines).
func hostMeminfo(t *testing.T) map[string]int {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) > 0 {
			m[k], _ = strconv.Atoi(f[0])
		}
	}
	return m
}
