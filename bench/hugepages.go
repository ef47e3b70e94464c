package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/test/testbed"
)

func init() {
	Register(Benchmark{
		Name: "hugepages",
		Summary: "the test guest with its memory on 2 MiB huge pages vs on ordinary pages: " +
			"create-to-booted time, the host memory it takes and QEMU's page tables",
		Run: runHugepages,
	})
}

const (
	hpMemory  = 256 * api.MiB
	hpPages   = int(hpMemory / (2 * api.MiB))
	hpTimeout = 3 * time.Minute
)

// hpSample is one boot of one variant.
type hpSample struct {
	boot time.Duration
	// rssKiB is QEMU's resident memory (ordinary pages: guest RAM on
	// them, QEMU's own heap, code); hugeKiB the huge pages it took or
	// reserved; pteKiB its page tables.
	rssKiB, hugeKiB, pteKiB int
}

func runHugepages(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	guest, err := env.Guest()
	if err != nil {
		return nil, err
	}
	// The benchmark reserves the guest's pages (sysctl vm.nr_hugepages)
	// and puts the setting back when it ends.
	before, err := testbed.ReserveHugepages(hpPages)
	if before != "" {
		env.Defer("put vm.nr_hugepages back to "+before, func(context.Context) error {
			return os.WriteFile(testbed.NrHugepages2M, []byte(before), 0o644)
		})
	}
	if err != nil {
		return nil, err
	}
	d, err := env.StartDaemon(ctx, "--accel", "tcg")
	if err != nil {
		return nil, err
	}
	prefix := "bench-hp-" + RandomID(6) + "-"
	env.Logf("guest %s, 1 vCPU, %s, no disk; huge pages: %d of 2 MiB reserved for it", guest.Kernel, hpMemory, hpPages)
	variants := []string{"ordinary", "hugepages"}
	got := map[string][]hpSample{}
	for run := 0; run <= env.Runs; run++ { // run 0 warms up
		for _, v := range variants {
			spec := api.VMSpec{
				Name: fmt.Sprintf("%s%s-%d", prefix, v, run), CPUs: 1, Memory: hpMemory,
				Boot: &api.Boot{Kernel: guest.Kernel, Initrd: guest.Initrd, Cmdline: "console=ttyS0 quiet"},
			}
			if v == "hugepages" {
				spec.Hugepages = &api.Hugepages{}
			}
			s, err := hpBoot(ctx, d, spec)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v, err)
			}
			env.Logf("run %d %-9s boot %5.0f ms, QEMU RSS %6d KiB, huge pages %6d KiB, page tables %4d KiB",
				run, v, Millis(s.boot), s.rssKiB, s.hugeKiB, s.pteKiB)
			if run > 0 {
				got[v] = append(got[v], s)
			}
		}
	}
	med := func(v string, f func(hpSample) float64) float64 {
		var xs []float64
		for _, s := range got[v] {
			xs = append(xs, f(s))
		}
		return Median(xs)
	}
	boot := func(s hpSample) float64 { return roundMs(Millis(s.boot)) }
	host := func(s hpSample) float64 { return float64(s.rssKiB+s.hugeKiB) / 1024 }
	pte := func(s hpSample) float64 { return float64(s.pteKiB) }
	env.Logf("under TCG the guest's TLB is QEMU's software TLB, so huge pages save the host's page walks and page tables, not the guest's; " +
		"the host memory line counts huge pages taken or reserved, which no other process can use")
	base := "the same VM on ordinary pages"
	return []Result{
		{Metric: "boot_ms", Godwit: med("hugepages", boot), Baseline: med("ordinary", boot), BaselineName: base},
		{Metric: "host_memory_mib", Godwit: med("hugepages", host), Baseline: med("ordinary", host), BaselineName: base},
		{Metric: "page_tables_kib", Godwit: med("hugepages", pte), Baseline: med("ordinary", pte), BaselineName: base},
	}, nil
}

// hpBoot creates and starts the VM, times it to the guest's boot line,
// then reads QEMU's footprint once the guest runs its counter.
func hpBoot(ctx context.Context, d *Daemon, spec api.VMSpec) (hpSample, error) {
	var s hpSample
	del := d.CreateCleanup(spec.Name)
	defer func() { _ = del.Run(context.Background()) }()
	rctx, cancel := context.WithTimeout(ctx, hpTimeout)
	defer cancel()
	hugeBefore, err := hugeTakenKiB()
	if err != nil {
		return s, err
	}
	t0 := time.Now()
	op, err := d.Client.CreateVM(rctx, spec, client.CreateOptions{Start: true})
	if err != nil {
		return s, err
	}
	if op, err = d.Client.WaitOperation(rctx, op.ID, nil); err != nil {
		return s, err
	}
	if op.State != api.OpSucceeded {
		return s, fmt.Errorf("create: %s", op.Error)
	}
	stream, err := d.Client.Console(rctx, spec.Name, client.ConsoleOptions{Follow: true})
	if err != nil {
		return s, err
	}
	defer stream.Close()
	if err := waitLine(stream, "GODWIT-GUEST-UP", func() { s.boot = time.Since(t0) }, "tick 2 "); err != nil {
		return s, err
	}
	pid, err := qemuPID(spec.Name)
	if err != nil {
		return s, err
	}
	st, err := procStatusKiB(pid, "VmRSS", "VmPTE")
	if err != nil {
		return s, err
	}
	s.rssKiB, s.pteKiB = st["VmRSS"], st["VmPTE"]
	hugeAfter, err := hugeTakenKiB()
	if err != nil {
		return s, err
	}
	s.hugeKiB = hugeAfter - hugeBefore
	return s, nil
}

// waitLine reads the console until first appears (then calls at) and
// after it until then appears.
func waitLine(r io.Reader, first string, at func(), then string) error {
	sc := bufio.NewScanner(r)
	seen := false
	for sc.Scan() {
		line := sc.Text()
		if !seen && strings.Contains(line, first) {
			seen = true
			at()
		}
		if seen && strings.Contains(line, then) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("console ended before " + first + " and " + then)
}

// procStatusKiB reads kB fields of /proc/PID/status.
func procStatusKiB(pid int, keys ...string) (map[string]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, want := range keys {
			if k == want {
				if f := strings.Fields(v); len(f) > 0 {
					out[k], _ = strconv.Atoi(f[0])
				}
			}
		}
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("/proc/%d/status has no %s", pid, k)
		}
	}
	return out, nil
}

// hugeTakenKiB is the host's 2 MiB huge pages in use or reserved for a
// first touch, in KiB (/proc/meminfo: Total - Free + Rsvd).
func hugeTakenKiB() (int, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	m := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if f := strings.Fields(v); ok && len(f) > 0 {
			m[k], _ = strconv.Atoi(f[0])
		}
	}
	return (m["HugePages_Total"] - m["HugePages_Free"] + m["HugePages_Rsvd"]) * m["Hugepagesize"], nil
}
