package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/test/testbed"
	"libvirt.org/go/libvirtxml"
)

func init() {
	Register(Benchmark{
		Name: "offline-migrate",
		Summary: "offline migration without shared storage (pause, move memory and disks, resume there): " +
			"godwit migrate --offline (stream, and --transfer files) vs the book's virsh save + copy + virsh restore, same link; " +
			"pause and total, 256 MiB idle and 1 GiB with 512 MiB dirty",
		Run: runOffline,
	})
}

// A guest for offline-migrate: its memory, and what it dirties.
type offGuest struct {
	name   string
	memory api.Size
	dirty  int // the guest's dirty=MiB (0: idle)
}

var offGuests = []offGuest{
	{"256m-idle", 256 * api.MiB, 0},
	// dirty=256 keeps 256 MiB of random data and a copy it rewrites in
	// tmpfs: 512 MiB of the guest's memory hold data.
	{"1g-dirty512", 1024 * api.MiB, 256},
}

type offRun struct {
	total time.Duration
	// tidied: when the source had ended its domain (godwit's Confirm
	// runs after the operation ended; by hand, in virsh save).
	tidied time.Duration
	// pause: how long the guest did not run (save to restore's end by
	// hand; the report's downtime for godwit).
	pause time.Duration
	// files is what moved (state and disks; boot files too for virsh).
	files map[string]int64
	// steps: where the hand-run's time went.
	steps string
}

func runOffline(ctx context.Context, env *Env) ([]Result, error) {
	mb, err := migrationBed(ctx, env, testbed.Options{}, "each host its own pool: disks are copied")
	if err != nil {
		return nil, err
	}
	const byHand = "virsh save + copy over TCP + virsh restore"
	var results []Result
	for _, og := range offGuests {
		total, pause, tidied := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
		for i := 0; i <= env.Runs; i++ { // run 0 warms up
			for _, v := range []string{api.TransferStream, api.TransferFiles, "virsh"} {
				r, err := mb.offlineOnce(ctx, v, og)
				if err != nil {
					return nil, fmt.Errorf("%s %s run %d: %w", og.name, v, i, err)
				}
				env.Logf("%s %s run %d: total %.0f ms, paused %.0f ms, moved %s%s", og.name, v, i, Millis(r.total), Millis(r.pause), fmtFiles(r.files), r.steps)
				if i > 0 {
					total[v] = append(total[v], Millis(r.total))
					pause[v] = append(pause[v], Millis(r.pause))
					tidied[v] = append(tidied[v], Millis(r.tidied))
				}
			}
		}
		m := strings.ReplaceAll(og.name, "-", "_")
		results = append(results,
			Result{Metric: m + "_pause_ms", Godwit: roundMs(Median(pause[api.TransferStream])), Baseline: roundMs(Median(pause["virsh"])), BaselineName: byHand},
			Result{Metric: m + "_total_ms", Godwit: roundMs(Median(total[api.TransferStream])), Baseline: roundMs(Median(total["virsh"])), BaselineName: byHand},
			Result{Metric: m + "_source_tidied_ms", Godwit: roundMs(Median(tidied[api.TransferStream])), Baseline: roundMs(Median(total["virsh"])), BaselineName: byHand},
			Result{Metric: m + "_files_total_ms", Godwit: roundMs(Median(total[api.TransferFiles])), Baseline: roundMs(Median(total["virsh"])), BaselineName: byHand})
	}
	env.Logf("godwit = migrate --offline (stream; _files_: --transfer files, paused for its whole total); by hand the guest is paused from save to restore; target godwit/virsh <= 0.6 for pause and total")
	env.Logf("_source_tidied_: until libvirt on the source had ended the stream's domain (its Confirm, after the operation ended; the operation's end before that was godwit's total until this change)")
	return results, nil
}

// offlineOnce boots a fresh guest on host a and moves it to b offline,
// with godwit or by hand.
func (mb *migBench) offlineOnce(ctx context.Context, variant string, og offGuest) (offRun, error) {
	mb.n++
	name := fmt.Sprintf("bench-off-%s-%d", mb.id, mb.n)
	spec := api.VMSpec{Name: name, CPUs: 1, Memory: og.memory,
		Boot:  &api.Boot{Kernel: mb.g.Kernel, Initrd: mb.g.Initrd, Cmdline: "console=ttyS0 quiet"},
		Disks: []api.Disk{{Name: "root", Size: 64 * api.MiB}}}
	want := "tick 3 "
	if og.dirty > 0 {
		spec.Boot.Cmdline += fmt.Sprintf(" dirty=%d", og.dirty)
		want = "passes=1"
	}
	op, err := mb.a.C.CreateVM(ctx, spec, client.CreateOptions{Start: true})
	if err == nil {
		_, err = mb.a.C.WaitOperation(ctx, op.ID, nil)
	}
	if err != nil {
		return offRun{}, err
	}
	mb.env.Defer("remove "+name, func(ctx context.Context) error { mb.remove(ctx, name); return nil })
	defer mb.remove(context.Background(), name)
	if err := mb.waitConsole(ctx, mb.a, name, want, 4*time.Minute); err != nil {
		return offRun{}, err
	}
	if variant == "virsh" {
		return mb.offlineByHand(ctx, name)
	}
	return mb.offlineGodwit(ctx, name, variant)
}

// offlineGodwit times migrate --offline with a transfer, until the
// operation ends (the VM runs there and the source is tidied up).
func (mb *migBench) offlineGodwit(ctx context.Context, name, transfer string) (offRun, error) {
	t0 := time.Now()
	op, err := mb.a.C.MigrateVM(ctx, name, api.MigrateRequest{To: mb.b.Name, Mode: api.MigrateOffline, Transfer: transfer})
	if err != nil {
		return offRun{}, err
	}
	final, err := mb.a.C.WaitOperation(ctx, op.ID, nil)
	if err != nil {
		return offRun{}, err
	}
	total := time.Since(t0)
	if final.State != api.OpSucceeded {
		return offRun{}, fmt.Errorf("migrate: %s", final.Error)
	}
	tidied := total
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if _, err := mb.a.Virsh("domstate", name); err != nil {
			tidied = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			return offRun{}, fmt.Errorf("%s still has domain %s a minute after the move", mb.a.Name, name)
		}
	}
	var rep api.MigrationReport
	if err := decodeReport(final.Result, &rep); err != nil {
		return offRun{}, err
	}
	if rep.Transfer != transfer {
		return offRun{}, fmt.Errorf("asked for transfer %s, got %s (%s)", transfer, rep.Transfer, rep.TransferNote)
	}
	if st, err := mb.b.Virsh("domstate", name); err != nil || st != "running" {
		return offRun{}, fmt.Errorf("on %s after the move: %q %v", mb.b.Name, st, err)
	}
	steps := ""
	if p := rep.Phases; p != nil {
		steps = fmt.Sprintf(" (begin %d ms, prepare %d ms, perform %d ms, finish %d ms: running there at %d ms; confirm %d ms; source domain gone at %.0f ms)",
			p.BeginMs, p.PrepareMs, p.PerformMs, p.FinishMs, rep.TotalMs, p.ConfirmMs, Millis(tidied))
	}
	return offRun{total: total, tidied: tidied, pause: time.Duration(rep.DowntimeMs) * time.Millisecond, steps: steps,
		files: map[string]int64{"memory": int64(rep.MemoryBytes), "disks": int64(rep.DiskBytes)}}, nil
}

// offlineByHand is the book's offline migration between hosts without
// shared storage: virsh save on the source, copy the saved state and
// every file the domain needs (its disk, kernel and initrd) to the same
// paths on the target over a plain TCP stream (no encryption, no
// checksum: the cheapest copy there is), virsh restore there.
func (mb *migBench) offlineByHand(ctx context.Context, name string) (offRun, error) {
	x, err := mb.a.Virsh("dumpxml", name)
	if err != nil {
		return offRun{}, err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return offRun{}, err
	}
	paths := []string{}
	if dom.OS != nil {
		paths = append(paths, dom.OS.Kernel, dom.OS.Initrd)
	}
	if dom.Devices != nil {
		for _, d := range dom.Devices.Disks {
			if d.Source != nil && d.Source.File != nil {
				paths = append(paths, d.Source.File.File)
			}
		}
	}
	state := testbed.HostStateDir + "/" + name + ".state"
	t0 := time.Now()
	if _, err := mb.a.Virsh("save", name, state); err != nil {
		return offRun{}, fmt.Errorf("virsh save: %w", err)
	}
	saved := time.Since(t0)
	files := map[string]int64{}
	for _, p := range append([]string{state}, paths...) {
		if p == "" {
			continue
		}
		n, err := mb.tcpCopy(ctx, p)
		if err != nil {
			return offRun{}, fmt.Errorf("copy %s: %w", p, err)
		}
		files[filepath.Base(p)] = n
	}
	copied := time.Since(t0)
	if _, err := mb.b.Virsh("restore", state); err != nil {
		return offRun{}, fmt.Errorf("virsh restore: %w", err)
	}
	total := time.Since(t0)
	pause := total // virsh save pauses the guest first; it runs again once restored
	_ = os.Remove(mb.a.RealPath(state))
	_ = os.Remove(mb.b.RealPath(state))
	steps := fmt.Sprintf(" (save %.0f ms, copy %.0f ms, restore %.0f ms)", Millis(saved), Millis(copied-saved), Millis(total-copied))
	return offRun{total: total, tidied: saved, pause: pause, files: files, steps: steps}, nil
}

// tcpCopy copies a file from host a to the same path on host b over a
// TCP connection between them: cat into bash's /dev/tcp there, the bench
// binary itself (sinkEnv) writing the file here.
func (mb *migBench) tcpCopy(ctx context.Context, path string) (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	port := testbed.FreePort()
	if err := os.MkdirAll(filepath.Dir(mb.b.RealPath(path)), 0o755); err != nil {
		return 0, err
	}
	sink := mb.b.Command(exe)
	sink.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d=%s", sinkEnv, mb.b.IP, port, path))
	var sinkOut strings.Builder
	sink.Stdout, sink.Stderr = &sinkOut, &sinkOut
	if err := sink.Start(); err != nil {
		return 0, err
	}
	// The sink listens before it says so.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(sinkOut.String(), "listening") {
		if time.Now().After(deadline) {
			_ = sink.Process.Kill()
			_ = sink.Wait()
			return 0, fmt.Errorf("the sink did not listen: %s", sinkOut.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if out, err := mb.a.Run(ctx, "bash", "-c", fmt.Sprintf("cat %q > /dev/tcp/%s/%d", path, mb.b.IP, port)); err != nil {
		_ = sink.Process.Kill()
		_ = sink.Wait()
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	if err := sink.Wait(); err != nil {
		return 0, fmt.Errorf("sink: %v: %s", err, sinkOut.String())
	}
	st, err := os.Stat(mb.b.RealPath(path))
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// sinkEnv, set to ADDR:PORT=PATH, makes the bench binary a one-shot TCP
// sink: it accepts one connection on ADDR:PORT, writes what arrives to
// PATH, fsyncs it (as godwit's receiving daemon does) and exits. The
// offline-migrate benchmark runs it inside the target host.
const sinkEnv = "GODWIT_BENCH_SINK"

func init() {
	if v := os.Getenv(sinkEnv); v != "" {
		if err := runSink(v); err != nil {
			fmt.Fprintln(os.Stderr, "sink:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func runSink(spec string) error {
	addr, path, ok := strings.Cut(spec, "=")
	if !ok {
		return fmt.Errorf("%s=%q: want ADDR:PORT=PATH", sinkEnv, spec)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("listening")
	c, err := l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, c); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fmtFiles(files map[string]int64) string {
	var parts []string
	var total int64
	for k, n := range files {
		parts = append(parts, fmt.Sprintf("%s %s", k, api.Size(n).Human()))
		total += n
	}
	return fmt.Sprintf("%s [%s]", api.Size(total).Human(), strings.Join(parts, ", "))
}
