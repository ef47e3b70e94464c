package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/migrate"
	"github.com/godwit-project/godwit/test/testbed"
)

func init() {
	Register(Benchmark{
		Name: "migrate",
		Summary: "live migration on a two-host test bed with shared storage, same guest: godwit's default " +
			"vs virsh migrate --live --p2p with libvirt's defaults; an idle guest, and a guest dirtying 64 MiB on a 100 Mbit link",
		Run: runMigrate,
	})
}

// dirtyLimit is the time both sides get for the dirtying guest.
const dirtyLimit = 3 * time.Minute

// idleOnlyEnv, set to 1, skips the slow dirtying-guest part (for
// iterating on the idle downtime).
const idleOnlyEnv = "GODWIT_BENCH_MIGRATE_IDLE_ONLY"

// traceEnv, set to a directory, turns on libvirtd's debug log of its
// migration, process and monitor code on both hosts and copies the logs
// there at the end (timestamps of every step of Finish, every QMP command;
// the logging slows libvirtd: not for the numbers).
const traceEnv = "GODWIT_BENCH_MIGRATE_TRACE"

type migBench struct {
	env  *Env
	bed  *testbed.Bed
	a, b *testbed.Host
	g    Guest
	id   string
	n    int
}

type migRun struct {
	ok         bool
	totalMs    float64
	downtimeMs float64
	mib        float64
	// phases: godwit's own account of the move (nil for virsh).
	phases *api.MigrationPhases
}

// breakdown says where godwit's downtime went: the guest pauses for the
// stop-and-copy at Perform's end, then the source daemon relays Perform's
// cookie to the destination daemon, whose libvirt Finish resumes the guest
// part way through: libvirtd's debug log (GODWIT_BENCH_MIGRATE_TRACE)
// shows its cont 3-10 ms in, the rest (resetting the migration
// parameters) after the resume. The stop-and-copy printed is the downtime
// less the relay and all of Finish: a lower bound.
func (r migRun) breakdown() string {
	p := r.phases
	if p == nil {
		return ""
	}
	relay := int64(p.FinishMs) - int64(p.DestHandlerMs)
	stopCopy := r.downtimeMs - float64(p.DestFinishMs) - float64(max(relay, 0))
	return fmt.Sprintf(" (downtime: stop-and-copy and switch-over >= %.0f ms, relay of the cookie %d ms, libvirt Finish there %d ms, of which only the part before its resume counts; phases begin %d, prepare %d, perform %d, finish %d ms)",
		stopCopy, relay, p.DestFinishMs, p.BeginMs, p.PrepareMs, p.PerformMs, p.FinishMs)
}

// startBed starts a test bed of simulated hosts running godwit built from
// this tree, removed when the benchmark ends; say tells what kind.
func startBed(ctx context.Context, env *Env, opts testbed.Options, say string) (*testbed.Bed, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	bin, err := env.BuildGodwit(ctx)
	if err != nil {
		return nil, err
	}
	env.Logf("starting a %d-host test bed (%s)", opts.Hosts, say)
	opts.Godwit = bin
	bed, err := testbed.Up(ctx, opts)
	if err != nil {
		return nil, err
	}
	env.Defer("remove the test bed", func(context.Context) error { bed.Down(); return nil })
	return bed, nil
}

// migrationBed starts a two-host test bed of peers for the migration
// benchmarks.
func migrationBed(ctx context.Context, env *Env, opts testbed.Options, say string) (*migBench, error) {
	g, err := env.Guest()
	if err != nil {
		return nil, err
	}
	opts.Hosts = 2
	bed, err := startBed(ctx, env, opts, say)
	if err != nil {
		return nil, err
	}
	if err := bed.Join(ctx); err != nil {
		return nil, err
	}
	return &migBench{env: env, bed: bed, a: bed.Hosts[0], b: bed.Hosts[1], g: g, id: RandomID(3)}, nil
}

func runMigrate(ctx context.Context, env *Env) ([]Result, error) {
	mb, err := migrationBed(ctx, env, testbed.Options{SharedPool: true, LibvirtTCP: true}, "shared storage; libvirtd on TCP for virsh --p2p only")
	if err != nil {
		return nil, err
	}
	if dir := os.Getenv(traceEnv); dir != "" {
		if err := mb.trace(ctx, dir); err != nil {
			return nil, err
		}
	}
	runs := map[string][]migRun{}
	env.Logf("idle guest, %d runs each, interleaved", env.Runs)
	for i := 0; i < env.Runs; i++ {
		for _, v := range []string{"godwit", "virsh", "virsh-tuned", "virsh-tuned-transient"} {
			r, err := mb.once(ctx, v, false, 0)
			if err != nil {
				return nil, fmt.Errorf("%s idle run %d: %w", v, i+1, err)
			}
			env.Logf("idle %s run %d: total %.0f ms, downtime %.0f ms, %.1f MiB%s", v, i+1, r.totalMs, r.downtimeMs, r.mib, r.breakdown())
			runs[v] = append(runs[v], r)
		}
	}
	med := func(v string, f func(migRun) float64) float64 {
		var xs []float64
		for _, r := range runs[v] {
			xs = append(xs, f(r))
		}
		return Median(xs)
	}
	results := []Result{
		{Metric: "idle_downtime_ms", Godwit: med("godwit", func(r migRun) float64 { return r.downtimeMs }), Baseline: med("virsh", func(r migRun) float64 { return r.downtimeMs }), BaselineName: "virsh migrate --live --p2p"},
		{Metric: "idle_downtime_ms", Godwit: med("godwit", func(r migRun) float64 { return r.downtimeMs }), Baseline: med("virsh-tuned", func(r migRun) float64 { return r.downtimeMs }), BaselineName: "virsh tuned to godwit's settings"},
		{Metric: "idle_downtime_ms", Godwit: med("godwit", func(r migRun) float64 { return r.downtimeMs }), Baseline: med("virsh-tuned-transient", func(r migRun) float64 { return r.downtimeMs }), BaselineName: "virsh tuned, no --persistent (transient there)"},
		{Metric: "idle_total_ms", Godwit: med("godwit", func(r migRun) float64 { return r.totalMs }), Baseline: med("virsh", func(r migRun) float64 { return r.totalMs }), BaselineName: "virsh"},
		{Metric: "idle_mib", Godwit: med("godwit", func(r migRun) float64 { return r.mib }), Baseline: med("virsh", func(r migRun) float64 { return r.mib }), BaselineName: "virsh"},
	}
	env.Logf("targets: idle downtime godwit/virsh <= 0.25, godwit/virsh-tuned <= 0.8; measured %.2f and %.2f (%.2f against virsh tuned without --persistent)", results[0].Ratio(), results[1].Ratio(), results[2].Ratio())
	if os.Getenv(idleOnlyEnv) == "1" {
		env.Logf("%s=1: the dirtying guest is skipped", idleOnlyEnv)
		return results, nil
	}

	env.Logf("guest dirtying 64 MiB over a 100 Mbit link, one run each, %s for each", dirtyLimit)
	for _, h := range []*testbed.Host{mb.a, mb.b} {
		if err := h.Shape("100mbit"); err != nil {
			return nil, err
		}
	}
	dirty := map[string]migRun{}
	for _, v := range []string{"godwit", "virsh"} {
		r, err := mb.once(ctx, v, true, dirtyLimit)
		if err != nil {
			return nil, fmt.Errorf("%s dirty run: %w", v, err)
		}
		state := "completed"
		if !r.ok {
			state = "did NOT converge (aborted)"
		}
		env.Logf("dirty %s: %s, total %.0f ms, downtime %.0f ms, %.1f MiB", v, state, r.totalMs, r.downtimeMs, r.mib)
		dirty[v] = r
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	results = append(results,
		Result{Metric: "dirty100mbit_completed", Godwit: b2f(dirty["godwit"].ok), Baseline: b2f(dirty["virsh"].ok), BaselineName: "virsh (1 = finished within the limit)"},
		Result{Metric: "dirty100mbit_total_ms", Godwit: dirty["godwit"].totalMs, Baseline: dirty["virsh"].totalMs, BaselineName: "virsh (the limit when it did not finish)"},
	)
	return results, nil
}

// trace turns on libvirtd's debug log on both hosts (virt-admin, no
// restart) and copies the logs to dir when the benchmark ends.
func (mb *migBench) trace(ctx context.Context, dir string) error {
	const log = "/var/log/libvirt/trace.log"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, h := range []*testbed.Host{mb.a, mb.b} {
		for _, args := range [][]string{
			{"daemon-log-filters", "1:qemu.qemu_migration 1:qemu.qemu_process 1:qemu.qemu_monitor 1:qemu.qemu_domain 1:conf.domain_conf"},
			{"daemon-log-outputs", "1:file:" + log},
		} {
			if out, err := h.Run(ctx, "virt-admin", append([]string{"-c", "libvirtd:///system"}, args...)...); err != nil {
				return fmt.Errorf("virt-admin %s on %s: %v: %s", args[0], h.Name, err, out)
			}
		}
		mb.env.Defer("copy the libvirtd trace of "+h.Name, func(ctx context.Context) error {
			out, err := h.Run(ctx, "cat", log)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, h.Name+"-libvirtd.log"), []byte(out), 0o644)
		})
	}
	mb.env.Logf("%s: libvirtd's debug log on, copied to %s at the end", traceEnv, dir)
	return nil
}

// once boots a fresh guest on host a and migrates it to b with godwit or
// virsh; afterwards the guest is removed.
func (mb *migBench) once(ctx context.Context, variant string, dirtying bool, limit time.Duration) (migRun, error) {
	mb.n++
	name := fmt.Sprintf("bench-mig-%s-%d", mb.id, mb.n)
	spec := api.VMSpec{Name: name, CPUs: 1, Memory: 256 * api.MiB,
		Boot:  &api.Boot{Kernel: mb.g.Kernel, Initrd: mb.g.Initrd, Cmdline: "console=ttyS0 quiet"},
		Disks: []api.Disk{{Name: "root", Size: 64 * api.MiB}}}
	if dirtying {
		spec.Memory = 320 * api.MiB
		spec.Boot.Cmdline += " dirty=64"
	}
	op, err := mb.a.C.CreateVM(ctx, spec, client.CreateOptions{Start: true})
	if err == nil {
		_, err = mb.a.C.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		return migRun{}, err
	}
	mb.env.Defer("remove "+name, func(ctx context.Context) error { mb.remove(ctx, name); return nil })
	want := "tick 3 "
	if dirtying {
		want = "passes=2"
	}
	if err := mb.waitConsole(ctx, mb.a, name, want, 3*time.Minute); err != nil {
		return migRun{}, err
	}
	defer mb.remove(context.Background(), name)
	switch variant {
	case "godwit":
		return mb.godwit(ctx, name, limit)
	case "virsh-tuned":
		return mb.virshTuned(ctx, name, true)
	case "virsh-tuned-transient":
		return mb.virshTuned(ctx, name, false)
	}
	return mb.virsh(ctx, name, limit)
}

func (mb *migBench) godwit(ctx context.Context, name string, limit time.Duration) (migRun, error) {
	req := api.MigrateRequest{To: mb.b.Name}
	if limit > 0 {
		req.TimeoutSeconds = int(limit.Seconds())
	}
	op, err := mb.a.C.MigrateVM(ctx, name, req)
	if err != nil {
		return migRun{}, err
	}
	final, err := mb.a.C.WaitOperation(ctx, op.ID, nil)
	if err != nil {
		if limit > 0 && final.State == api.OpFailed {
			return migRun{totalMs: Millis(limit)}, nil
		}
		return migRun{}, err
	}
	var rep api.MigrationReport
	if err := decodeReport(final.Result, &rep); err != nil {
		return migRun{}, err
	}
	return migRun{ok: true, totalMs: float64(rep.TotalMs), downtimeMs: float64(rep.DowntimeMs), mib: float64(rep.Bytes) / (1 << 20), phases: rep.Phases}, nil
}

var jobInfoRE = regexp.MustCompile(`(?m)^(Time elapsed|Total downtime|Data processed):\s+([0-9.]+)\s*(\S*)`)

// virsh migrates with libvirt's defaults: --live --p2p (and --unsafe: the
// shared directory is on a local filesystem, as godwit's side has it too).
func (mb *migBench) virsh(ctx context.Context, name string, limit time.Duration, flags ...string) (migRun, error) {
	dst := fmt.Sprintf("qemu+tcp://%s/system", mb.b.IP)
	mctx := ctx
	cancel := func() {}
	if limit > 0 {
		mctx, cancel = context.WithTimeout(ctx, limit)
	}
	defer cancel()
	start := time.Now()
	args := append([]string{"-q", "-c", "qemu:///system", "migrate", "--live", "--p2p", "--unsafe"}, flags...)
	cmd := mb.a.Command("virsh", append(args, name, dst)...)
	done := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = cmd.CombinedOutput()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return migRun{}, fmt.Errorf("virsh migrate: %v: %s", err, strings.TrimSpace(string(out)))
		}
	case <-mctx.Done():
		// Out of time: abort, as godwit's precopy timeout would.
		_, _ = mb.a.Virsh("domjobabort", name)
		<-done
		if ctx.Err() != nil {
			return migRun{}, ctx.Err()
		}
		return migRun{totalMs: Millis(time.Since(start))}, nil
	}
	info, err := mb.a.Virsh("domjobinfo", "--completed", name)
	if err != nil {
		// --undefinesource: the source has no domain left to ask; the
		// destination keeps the completed job's stats too.
		info, err = mb.b.Virsh("domjobinfo", "--completed", name)
	}
	if err != nil {
		return migRun{}, fmt.Errorf("domjobinfo: %w", err)
	}
	r := migRun{ok: true}
	for _, m := range jobInfoRE.FindAllStringSubmatch(info, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[1] {
		case "Time elapsed":
			r.totalMs = v
		case "Total downtime":
			r.downtimeMs = v
		case "Data processed":
			r.mib = toMiB(v, m[3])
		}
	}
	return r, nil
}

// virshTuned is what a careful virsh user does to get godwit's settings:
// the same 100 ms downtime limit set before the move
// (migrate-setmaxdowntime), auto-converge and postcopy allowed (never
// switched to for an idle guest), the definition moved with it. Without
// persist it is the same move less --persistent (a transient domain
// there): libvirt's Finish writes the persistent definition before it
// resumes the guest, so the two tell that write's share of the downtime.
func (mb *migBench) virshTuned(ctx context.Context, name string, persist bool) (migRun, error) {
	limit := fmt.Sprint(migrate.DefaultMaxDowntime.Milliseconds())
	if _, err := mb.a.Virsh("migrate-setmaxdowntime", name, limit); err != nil {
		return migRun{}, fmt.Errorf("migrate-setmaxdowntime: %w", err)
	}
	if got, err := mb.a.Virsh("migrate-getmaxdowntime", name); err != nil || strings.TrimSpace(got) != limit {
		return migRun{}, fmt.Errorf("migrate-getmaxdowntime says %q (%v), not %s", got, err, limit)
	}
	flags := []string{"--undefinesource", "--auto-converge", "--postcopy"}
	if persist {
		flags = append(flags, "--persistent")
	}
	return mb.virsh(ctx, name, 0, flags...)
}

func toMiB(v float64, unit string) float64 {
	switch unit {
	case "KiB":
		return v / 1024
	case "GiB":
		return v * 1024
	case "B", "bytes":
		return v / (1 << 20)
	}
	return v
}

// remove deletes the guest wherever it is: godwit on either host, or a
// domain virsh moved (transient on b, an inactive definition left on a).
func (mb *migBench) remove(ctx context.Context, name string) {
	for _, h := range []*testbed.Host{mb.b, mb.a} {
		_, _ = h.Virsh("destroy", name)
		if op, err := h.C.DeleteVM(ctx, name, client.DeleteOptions{Force: true}); err == nil {
			_, _ = h.C.WaitOperation(ctx, op.ID, nil)
		}
		_, _ = h.Virsh("undefine", name)
	}
}

func (mb *migBench) waitConsole(ctx context.Context, h *testbed.Host, name, needle string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rc, err := h.C.Console(ctx, name, client.ConsoleOptions{Follow: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := WaitStreamLine(rc, needle); err != nil {
		return fmt.Errorf("vm %s never showed %q: %w", name, needle, err)
	}
	return nil
}

func decodeReport(b []byte, r *api.MigrationReport) error {
	if len(b) == 0 {
		return fmt.Errorf("the migration reported nothing")
	}
	return json.Unmarshal(b, r)
}
