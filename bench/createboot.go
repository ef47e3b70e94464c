package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func init() {
	Register(Benchmark{
		Name: "create-boot",
		Summary: "create-to-guest-booted latency: godwit (CreateVM+start, console follow) " +
			"vs virsh define+start of the same domain XML vs plain qemu-system-x86_64 -accel tcg",
		Run: runCreateBoot,
	})
}

// The create-boot guest and what counts as booted.
const (
	cbCPUs      = 1
	cbMemory    = 256 * api.MiB
	cbDisk      = 64 * api.MiB
	cbCmdline   = "console=ttyS0 quiet"
	cbBootLine  = "GODWIT-GUEST-UP"
	cbTimeout   = 3 * time.Minute
	cbPoll      = 20 * time.Millisecond // baselines' (and the cross-check's) log polling
	cbTarget    = 1.15                  // godwit/virsh should stay within this
	cbSettle    = 500 * time.Millisecond
	cbNamespace = "bench-cb-"
)

type createBoot struct {
	env    *Env
	guest  Guest
	d      *Daemon
	prefix string // bench-cb-<random>-: every domain this run makes
	dir    string // baselines' disks, logs and XML
	// template is a godwit-made domain's inactive XML, for virsh.
	template string
}

func runCreateBoot(ctx context.Context, env *Env) ([]Result, error) {
	if err := env.RequireRoot(); err != nil {
		return nil, err
	}
	guest, err := env.Guest()
	if err != nil {
		return nil, err
	}
	env.Logf("warming libvirt (virsh domcapabilities)")
	if err := env.RequireLibvirt(ctx); err != nil {
		return nil, err
	}
	cb := &createBoot{env: env, guest: guest, prefix: cbNamespace + RandomID(3) + "-"}
	if cb.dir, err = env.SubDir("baseline"); err != nil {
		return nil, err
	}
	if cb.d, err = env.StartDaemon(ctx, "--accel", "tcg"); err != nil {
		return nil, err
	}
	env.Logf("guest %s + %s, %d vCPU, %s, one %s blank disk, cmdline %q; domains named %s*",
		guest.Kernel, guest.Initrd, cbCPUs, cbMemory, cbDisk, cbCmdline, cb.prefix)
	env.Logf("load average at start: %s", loadavg())

	variants := []struct {
		name string
		run  func(context.Context, string) (time.Duration, string, error)
	}{
		{"godwit", cb.godwit},
		{"virsh", cb.virsh},
		{"qemu", cb.qemu},
	}
	env.Logf("warm-up round (not counted)")
	for _, v := range variants {
		d, note, err := v.run(ctx, "warm")
		if err != nil {
			return nil, fmt.Errorf("warm-up %s: %w", v.name, err)
		}
		env.Logf("warm-up %-6s %6.0f ms%s", v.name, Millis(d), note)
	}

	times := map[string][]float64{}
	for i := 1; i <= env.Runs; i++ {
		for _, v := range variants {
			d, note, err := v.run(ctx, fmt.Sprint(i))
			if err != nil {
				return nil, fmt.Errorf("run %d %s: %w", i, v.name, err)
			}
			times[v.name] = append(times[v.name], Millis(d))
			env.Logf("run %d/%d %-6s %6.0f ms%s", i, env.Runs, v.name, Millis(d), note)
		}
	}
	env.Logf("load average at end: %s", loadavg())

	med := map[string]float64{}
	for _, v := range variants {
		med[v.name] = Median(times[v.name])
		env.Logf("%-6s median %6.0f ms of %s", v.name, med[v.name], fmtMillis(times[v.name]))
	}
	ratio := med["godwit"] / med["virsh"]
	verdict := "within target"
	if ratio > cbTarget {
		verdict = "ABOVE target"
	}
	env.Logf("target: godwit/virsh <= %.2f; measured %.2f (%s)", cbTarget, ratio, verdict)
	return []Result{
		{Metric: "latency_ms", Godwit: roundMs(med["godwit"]), Baseline: roundMs(med["virsh"]), BaselineName: "virsh"},
		{Metric: "latency_ms", Godwit: roundMs(med["godwit"]), Baseline: roundMs(med["qemu"]), BaselineName: "qemu"},
	}, nil
}

// godwit creates and starts a VM through the daemon's API and follows its
// console through the API, as `godwit vm create --start --wait` does. The
// note reports when the line reached the log file (polled directly), so the
// console stream's own delay shows.
func (cb *createBoot) godwit(ctx context.Context, tag string) (time.Duration, string, error) {
	name := cb.prefix + "godwit-" + tag
	c := cb.d.Client
	spec := api.VMSpec{
		Name: name, CPUs: cbCPUs, Memory: cbMemory,
		Boot:  &api.Boot{Kernel: cb.guest.Kernel, Initrd: cb.guest.Initrd, Cmdline: cbCmdline},
		Disks: []api.Disk{{Name: "root", Size: cbDisk}},
	}
	del := cb.d.CreateCleanup(name)
	defer cb.settle(del)
	rctx, cancel := context.WithTimeout(ctx, cbTimeout)
	defer cancel()

	t0 := time.Now()
	op, err := c.CreateVM(rctx, spec, client.CreateOptions{Start: true})
	if err != nil {
		return 0, "", err
	}
	failed := make(chan error, 2)
	go func() {
		if _, err := c.WaitOperation(rctx, op.ID, nil); err != nil {
			failed <- fmt.Errorf("create operation: %w", err)
		}
	}()
	// The console answers 404 until the operation has stored the VM.
	var stream io.ReadCloser
	for {
		stream, err = c.Console(rctx, name, client.ConsoleOptions{Follow: true})
		if err == nil {
			break
		}
		if api.Status(err) != 404 {
			return 0, "", fmt.Errorf("console: %w", err)
		}
		select {
		case err := <-failed:
			return 0, "", err
		case <-rctx.Done():
			return 0, "", rctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	defer stream.Close()
	seen := make(chan time.Time, 1)
	go func() {
		t, err := WaitStreamLine(stream, cbBootLine)
		if err != nil {
			failed <- fmt.Errorf("console stream: %w", err)
			return
		}
		seen <- t
	}()
	// Cross-check: the same line in the log file itself.
	fileSeen := make(chan time.Time, 1)
	go func() {
		vm, err := c.GetVM(rctx, name)
		if err != nil || vm.ConsoleLog == "" {
			return
		}
		if t, err := WaitFileLine(rctx, vm.ConsoleLog, cbBootLine, cbPoll, nil); err == nil {
			fileSeen <- t
		}
	}()
	var t1 time.Time
	select {
	case t1 = <-seen:
	case err := <-failed:
		return 0, "", err
	case <-rctx.Done():
		return 0, "", fmt.Errorf("%s not on the console after %s: %w", cbBootLine, cbTimeout, rctx.Err())
	}
	note := ""
	select {
	case tf := <-fileSeen:
		note = fmt.Sprintf(" (in the log file at %.0f ms)", Millis(tf.Sub(t0)))
	case <-time.After(time.Second):
	}
	if cb.template == "" {
		x, err := Virsh(ctx, "dumpxml", "--inactive", name)
		if err != nil {
			return 0, "", fmt.Errorf("fetch godwit's domain XML: %w", err)
		}
		cb.template = x
	}
	return t1.Sub(t0), note, nil
}

// virsh defines and starts godwit's domain XML, renamed, with a disk of
// its own made by qemu-img (part of the timed create, as in godwit).
func (cb *createBoot) virsh(ctx context.Context, tag string) (time.Duration, string, error) {
	if cb.template == "" {
		return 0, "", errors.New("no domain XML from godwit yet")
	}
	name := cb.prefix + "virsh-" + tag
	uuid := NewUUID()
	disk := filepath.Join(cb.dir, name+".qcow2")
	logPath := filepath.Join(cb.dir, name+".log")
	xmlPath := filepath.Join(cb.dir, name+".xml")
	x, err := RewriteDomainXML(cb.template, name, uuid, disk, logPath)
	if err != nil {
		return 0, "", err
	}
	if err := os.WriteFile(xmlPath, []byte(x), 0o644); err != nil {
		return 0, "", err
	}
	del := cb.env.Defer("virsh destroy+undefine "+name, func(ctx context.Context) error {
		return RemoveDomain(ctx, uuid)
	})
	defer cb.settle(del)
	rctx, cancel := context.WithTimeout(ctx, cbTimeout)
	defer cancel()

	t0 := time.Now()
	if err := QemuImgCreate(rctx, disk, uint64(cbDisk)); err != nil {
		return 0, "", err
	}
	if _, err := Virsh(rctx, "define", xmlPath); err != nil {
		return 0, "", err
	}
	if _, err := Virsh(rctx, "start", name); err != nil {
		return 0, "", err
	}
	t1, err := WaitFileLine(rctx, logPath, cbBootLine, cbPoll, nil)
	if err != nil {
		return 0, "", err
	}
	return t1.Sub(t0), "", nil
}

// qemu boots the same kernel, initrd, cmdline, memory and a blank qcow2
// disk with plain QEMU and a serial file.
func (cb *createBoot) qemu(ctx context.Context, tag string) (time.Duration, string, error) {
	name := cb.prefix + "qemu-" + tag
	disk := filepath.Join(cb.dir, name+".qcow2")
	logPath := filepath.Join(cb.dir, name+".log")
	outPath := filepath.Join(cb.dir, name+".out")
	out, err := os.Create(outPath)
	if err != nil {
		return 0, "", err
	}
	defer out.Close()
	rctx, cancel := context.WithTimeout(ctx, cbTimeout)
	defer cancel()

	t0 := time.Now()
	if err := QemuImgCreate(rctx, disk, uint64(cbDisk)); err != nil {
		return 0, "", err
	}
	// Not CommandContext: the cleanup stops it, by PID.
	cmd := Command(context.Background(), "qemu-system-x86_64",
		"-name", name, "-accel", "tcg", "-machine", "pc",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-smp", fmt.Sprint(cbCPUs), "-m", fmt.Sprint(uint64(cbMemory/api.MiB)),
		"-kernel", cb.guest.Kernel, "-initrd", cb.guest.Initrd, "-append", cbCmdline,
		"-drive", "file="+disk+",format=qcow2,if=virtio,cache=none",
		"-serial", "file:"+logPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return 0, "", err
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		exited <- fmt.Errorf("qemu exited early (%v): %s", err, tail(outPath, 5))
		close(done)
	}()
	pid := cmd.Process.Pid
	kill := cb.env.Defer(fmt.Sprintf("kill qemu pid %d", pid), func(context.Context) error {
		select {
		case <-done:
			return nil
		default:
		}
		_ = cmd.Process.Kill()
		<-done
		return nil
	})
	defer cb.settle(kill)

	t1, err := WaitFileLine(rctx, logPath, cbBootLine, cbPoll, exited)
	if err != nil {
		return 0, "", err
	}
	return t1.Sub(t0), "", nil
}

// settle undoes a run at once (so at most one of the benchmark's guests
// runs at a time) and lets the host calm down before the next run. A
// failure is left to the final cleanup, which retries.
func (cb *createBoot) settle(c *Cleanup) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		cb.env.Logf("warning: %v", err)
	}
	time.Sleep(cbSettle)
}

// RewriteDomainXML turns a godwit-made domain's XML into one virsh can
// define beside it: a new name and UUID, no godwit metadata (it is not
// godwit's VM), the first disk at disk and the serial log at logPath.
func RewriteDomainXML(in, name, uuid, disk, logPath string) (string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(in); err != nil {
		return "", fmt.Errorf("parse domain XML: %w", err)
	}
	d.Name, d.UUID, d.Metadata = name, uuid, nil
	if d.Devices == nil || len(d.Devices.Disks) == 0 {
		return "", errors.New("domain XML has no disk")
	}
	src := d.Devices.Disks[0].Source
	if src == nil || src.File == nil {
		return "", errors.New("domain XML: the first disk is not a file")
	}
	src.File.File = disk
	logs := 0
	for i := range d.Devices.Serials {
		if l := d.Devices.Serials[i].Log; l != nil {
			l.File = logPath
			logs++
		}
	}
	for i := range d.Devices.Consoles {
		if l := d.Devices.Consoles[i].Log; l != nil {
			l.File = logPath
		}
	}
	if logs == 0 {
		return "", errors.New("domain XML has no serial log")
	}
	return d.Marshal()
}

func roundMs(v float64) float64 { return float64(int64(v + 0.5)) }

func fmtMillis(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprintf("%.0f", v)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
