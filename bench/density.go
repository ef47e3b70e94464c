package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func init() {
	Register(Benchmark{
		Name: "density",
		Summary: "100 defined VMs (50 of them running, under TCG) against 1: the daemon's resident memory and vm list latency; " +
			"20 concurrent vm create (define only) against a loop of 20 virsh define",
		Run: runDensity,
	})
}

const (
	dnPrefix  = "bench-dn-"
	dnVMs     = 100
	dnRunning = 50
	dnBatch   = 20
	// dnMemory: the running VMs boot nothing (see create), so they need
	// little; the defined ones never run.
	dnMemory = 32 * api.MiB
	dnLists  = 30
	dnSettle = 15 * time.Second
)

type density struct {
	env    *Env
	d      *Daemon
	guest  Guest
	prefix string
	dir    string
	dels   map[string]*Cleanup
	mu     sync.Mutex
}

func runDensity(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	guest, err := env.Guest()
	if err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	dn := &density{env: env, guest: guest, prefix: dnPrefix + RandomID(3) + "-", dels: map[string]*Cleanup{}}
	if dn.dir, err = env.SubDir("virsh"); err != nil {
		return nil, err
	}
	if dn.d, err = env.StartDaemon(ctx, "--accel", "tcg"); err != nil {
		return nil, err
	}
	c := dn.d.Client
	env.Logf("VMs: 1 vCPU, %s, named %s*; the running ones one blank 1 MiB disk (SeaBIOS finds nothing to boot and halts), the others the test guest's kernel and no disk; load average at start: %s", dnMemory.Human(), dn.prefix, loadavg())

	// One VM, running.
	first := dn.prefix + "000"
	if err := dn.create(ctx, first, true); err != nil {
		return nil, err
	}
	if err := dn.start(ctx, []string{first}); err != nil {
		return nil, err
	}
	rss1, err := dn.rss(ctx)
	if err != nil {
		return nil, err
	}
	list1, err := dn.listLatency(ctx, 1)
	if err != nil {
		return nil, err
	}

	// The virsh baseline defines what godwit's create defines.
	tmplName := dn.prefix + "tmpl"
	if err := dn.create(ctx, tmplName, false); err != nil {
		return nil, err
	}
	x, err := Virsh(ctx, "dumpxml", "--inactive", tmplName)
	if err != nil {
		return nil, err
	}
	if err := dn.delete(ctx, tmplName); err != nil {
		return nil, err
	}

	// 20 concurrent creates against 20 virsh defines, -runs rounds
	// after a warm-up one, each round's VMs deleted after it.
	var createT, defineT []float64
	for i := 0; i <= env.Runs; i++ {
		tag := fmt.Sprintf("c%d-", i)
		g, err := dn.createBatch(ctx, tag)
		if err != nil {
			return nil, err
		}
		v, err := dn.defineBatch(ctx, x, tag)
		if err != nil {
			return nil, err
		}
		what := "warm-up (not counted)"
		if i > 0 {
			what = fmt.Sprintf("run %d/%d", i, env.Runs)
			createT, defineT = append(createT, Millis(g)), append(defineT, Millis(v))
		}
		env.Logf("%s: %d concurrent vm create %.0f ms, %d virsh define in a loop %.0f ms", what, dnBatch, Millis(g), dnBatch, Millis(v))
	}

	// 100 defined, 50 running.
	var names []string
	for i := 1; i < dnVMs; i++ {
		names = append(names, fmt.Sprintf("%s%03d", dn.prefix, i))
	}
	t0 := time.Now()
	if err := dn.parallel(ctx, names, 10, func(ctx context.Context, name string) error {
		return dn.create(ctx, name, name <= names[dnRunning-2])
	}); err != nil {
		return nil, err
	}
	env.Logf("defined %d more VMs in %.1f s", len(names), time.Since(t0).Seconds())
	t0 = time.Now()
	if err := dn.start(ctx, names[:dnRunning-1]); err != nil {
		return nil, err
	}
	env.Logf("started %d more in %.1f s; load average %s; settling %s", dnRunning-1, time.Since(t0).Seconds(), loadavg(), dnSettle)
	time.Sleep(dnSettle)
	vms, err := c.ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	running := 0
	vms = dn.ours(vms)
	for _, v := range vms {
		if v.State == api.VMRunning {
			running++
		}
	}
	if len(vms) != dnVMs || running != dnRunning {
		return nil, fmt.Errorf("the daemon lists %d VMs, %d running; want %d, %d", len(vms), running, dnVMs, dnRunning)
	}
	rss100, err := dn.rss(ctx)
	if err != nil {
		return nil, err
	}
	list100, err := dn.listLatency(ctx, dnVMs)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(vms)
	env.Logf("the list's answer for the benchmark's 100 VMs: %s of JSON (%.1f KiB per VM, each with its spec)", api.Size(len(body)).Human(), float64(len(body))/dnVMs/1024)
	qemu := dn.qemuRSS(names[:dnRunning-1])
	env.Logf("QEMU resident memory per running guest: %.0f MiB (median); load average %s", qemu/(1<<20), loadavg())

	// Back to one VM: the list's latency again (the daemon's memory
	// need not shrink: Go keeps what it allocated for a while).
	t0 = time.Now()
	if err := dn.parallel(ctx, names, 10, dn.delete); err != nil {
		return nil, err
	}
	env.Logf("deleted %d VMs in %.1f s", len(names), time.Since(t0).Seconds())
	list1b, err := dn.listLatency(ctx, 1)
	if err != nil {
		return nil, err
	}
	rss1b, _ := dn.rss(ctx)
	env.Logf("after deleting them: vm list %.2f ms, daemon RSS %.1f MiB", list1b, rss1b/(1<<20))
	env.Logf("targets: none set; memory per extra VM %.0f KiB, list cost per extra VM %.3f ms",
		(rss100-rss1)/(dnVMs-1)/1024, (list100-min(list1, list1b))/(dnVMs-1))
	return []Result{
		{Metric: "daemon_rss_MiB_100_vs_1", Godwit: rss100 / (1 << 20), Baseline: rss1 / (1 << 20), BaselineName: "1 VM"},
		{Metric: "vm_list_ms_100_vs_1", Godwit: list100, Baseline: list1, BaselineName: "1 VM"},
		{Metric: "create20_ms", Godwit: Median(createT), Baseline: Median(defineT), BaselineName: "20 virsh define in a loop"},
	}, nil
}

// create creates (defines, does not start) one VM through the daemon. A
// VM to run gets a blank 1 MiB disk to boot from: SeaBIOS finds no boot
// sector and halts, so it is a running domain (a QEMU, its console, its
// stats) that takes no CPU once halted. 50 test guests booting Linux
// under TCG took minutes each on this shared machine. The others boot the
// test guest's kernel (never started).
func (dn *density) create(ctx context.Context, name string, toRun bool) error {
	spec := api.VMSpec{Name: name, CPUs: 1, Memory: dnMemory}
	if toRun {
		spec.Disks = []api.Disk{{Name: "root", Size: api.MiB}}
	} else {
		spec.Boot = &api.Boot{Kernel: dn.guest.Kernel, Initrd: dn.guest.Initrd, Cmdline: "console=ttyS0 quiet"}
	}
	del := dn.d.CreateCleanup(name)
	dn.mu.Lock()
	dn.dels[name] = del
	dn.mu.Unlock()
	op, err := dn.d.Client.CreateVM(ctx, spec, client.CreateOptions{})
	if err == nil {
		op, err = dn.d.Client.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		return fmt.Errorf("create vm %s: %w", name, err)
	}
	return nil
}

func (dn *density) delete(ctx context.Context, name string) error {
	dn.mu.Lock()
	del := dn.dels[name]
	dn.mu.Unlock()
	return del.Run(ctx)
}

// createBatch creates dnBatch VMs at once through the API and returns the
// time until the last create ended; then deletes them.
func (dn *density) createBatch(ctx context.Context, tag string) (time.Duration, error) {
	var names []string
	for i := 0; i < dnBatch; i++ {
		names = append(names, fmt.Sprintf("%s%s%02d", dn.prefix, tag, i))
	}
	t0 := time.Now()
	err := dn.parallel(ctx, names, dnBatch, func(ctx context.Context, name string) error { return dn.create(ctx, name, false) })
	d := time.Since(t0)
	if err != nil {
		return d, err
	}
	return d, dn.parallel(ctx, names, 10, dn.delete)
}

// defineBatch defines dnBatch domains from godwit's XML (renamed, new
// UUIDs, no godwit metadata) with one virsh define after the other, and
// returns their total time; then undefines them.
func (dn *density) defineBatch(ctx context.Context, tmpl, tag string) (time.Duration, error) {
	var paths []string
	var uuids []string
	for i := 0; i < dnBatch; i++ {
		name := fmt.Sprintf("%svirsh-%s%02d", dn.prefix, tag, i)
		var d libvirtxml.Domain
		if err := d.Unmarshal(tmpl); err != nil {
			return 0, err
		}
		uuid := NewUUID()
		d.Name, d.UUID, d.Metadata = name, uuid, nil
		for j := range d.Devices.Serials {
			if l := d.Devices.Serials[j].Log; l != nil {
				l.File = filepath.Join(dn.dir, name+".log")
			}
		}
		for j := range d.Devices.Consoles {
			if l := d.Devices.Consoles[j].Log; l != nil {
				l.File = filepath.Join(dn.dir, name+".log")
			}
		}
		x, err := d.Marshal()
		if err != nil {
			return 0, err
		}
		p := filepath.Join(dn.dir, name+".xml")
		if err := os.WriteFile(p, []byte(x), 0o644); err != nil {
			return 0, err
		}
		paths, uuids = append(paths, p), append(uuids, uuid)
	}
	undef := dn.env.Defer(fmt.Sprintf("virsh undefine the %d domains of batch %s", dnBatch, tag), func(ctx context.Context) error {
		var errs []error
		for _, u := range uuids {
			errs = append(errs, RemoveDomain(ctx, u))
		}
		return errors.Join(errs...)
	})
	t0 := time.Now()
	for _, p := range paths {
		if _, err := Virsh(ctx, "define", p); err != nil {
			return 0, err
		}
	}
	d := time.Since(t0)
	return d, undef.Run(ctx)
}

// start starts VMs, four at a time.
func (dn *density) start(ctx context.Context, names []string) error {
	return dn.parallel(ctx, names, 4, func(ctx context.Context, name string) error {
		c := dn.d.Client
		op, err := c.StartVM(ctx, name)
		if err == nil {
			_, err = c.WaitOperation(ctx, op.ID, nil)
		}
		if err != nil {
			return fmt.Errorf("start vm %s: %w", name, err)
		}
		return nil
	})
}

// parallel runs f on every name, at most n at once; the first error wins.
func (dn *density) parallel(ctx context.Context, names []string, n int, f func(context.Context, string) error) error {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(ctx, name); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}

// ours are the VMs of vms this benchmark made.
func (dn *density) ours(vms []api.VM) []api.VM {
	var out []api.VM
	for _, v := range vms {
		if strings.HasPrefix(v.Name, dn.prefix) {
			out = append(out, v)
		}
	}
	return out
}

// rss is the daemon's resident memory (VmRSS) after a settling second
// and a list (so it has looked at every VM at least once).
func (dn *density) rss(ctx context.Context) (float64, error) {
	if _, err := dn.d.Client.ListVMs(ctx); err != nil {
		return 0, err
	}
	time.Sleep(time.Second)
	return vmRSS(dn.d.PID)
}

// listLatency is the median time of dnLists ListVMs calls (the API call
// `godwit vm list` makes), checking the count.
func (dn *density) listLatency(ctx context.Context, want int) (float64, error) {
	var ts []float64
	total := 0
	for i := 0; i < dnLists; i++ {
		t0 := time.Now()
		vms, err := dn.d.Client.ListVMs(ctx)
		d := time.Since(t0)
		if err != nil {
			return 0, err
		}
		if n := len(dn.ours(vms)); n != want {
			return 0, fmt.Errorf("vm list: %d VMs of the benchmark, want %d", n, want)
		}
		total = len(vms)
		ts = append(ts, Millis(d))
	}
	m := Median(ts)
	dn.env.Logf("vm list with %d VMs of the benchmark (%d in all, others' on the shared libvirtd included): median %.2f ms of %d calls", want, total, m, dnLists)
	return m, nil
}

// qemuRSS is the median resident memory of the named domains' QEMUs.
func (dn *density) qemuRSS(names []string) float64 {
	var vs []float64
	for _, n := range names {
		if pid, err := qemuPID(n); err == nil {
			if r, err := vmRSS(pid); err == nil {
				vs = append(vs, r)
			}
		}
	}
	return Median(vs)
}

// vmRSS reads a process's VmRSS from /proc, in bytes.
func vmRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseFloat(f[0], 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
