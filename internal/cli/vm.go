package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newVMCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Create, run and delete virtual machines",
		Long: `Virtual machines: each is a libvirt domain of the same name, made from a
YAML spec such as:

  name: web1
  cpus: 2
  memory: 1GiB
  boot: {kernel: /srv/vmlinuz, initrd: /srv/initrd.gz, cmdline: console=ttyS0}
  disks:
    - {name: root, image: debian-12, size: 10GiB}   # catalog image (or /abs/path)
    - {name: data, size: 20GiB}
    - {name: logs, volume: default/web1-logs}       # an existing volume
  cloudInit: {hostname: web1, sshKeys: ["ssh-ed25519 AAAA..."]}
  nics:
    - {network: default}
  autostart: true
  labels: {app: web}

Sizes take units (MiB, GiB, ...). A disk with an image is a qcow2 overlay
on it (clone: full copies it); with a volume, that volume (left alone when
the VM is deleted); otherwise a blank disk. cloudInit goes to the guest on
a NoCloud seed CD-ROM. Unknown fields are errors.`,
	}
	cmd.AddCommand(vmCreateCmd(g), vmListCmd(g), vmShowCmd(g), vmStartCmd(g), vmStopCmd(g), vmKillCmd(g),
		vmRebootCmd(g), vmPauseCmd(g), vmResumeCmd(g), vmDeleteCmd(g), vmConsoleCmd(g), vmVNCCmd(g), vmApplyCmd(g), vmSetCmd(g), vmAdoptCmd(g), vmReleaseCmd(g))
	cmd.AddCommand(vmNICCmd(g))
	cmd.AddCommand(vmDiskCmd(g))
	return cmd
}

// completeVMs completes VM names from the daemon.
func completeVMs(g *globals) completion {
	return firstArg(completeNames(g, (*client.Client).ListVMs, func(v api.VM) string { return v.Name + "\t" + string(v.State) }))
}

// bootWait is --wait / --wait-for: after the VM started, wait until its
// console shows a line matching a pattern.
type bootWait struct {
	wait    bool
	pattern string
	timeout time.Duration
}

func (b *bootWait) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&b.wait, "wait", false, "after starting, wait until the guest prints on its serial console")
	f.StringVar(&b.pattern, "wait-for", "", "with --wait: a regular expression the console must show (default: any output)")
	f.DurationVar(&b.timeout, "wait-timeout", 5*time.Minute, "give up waiting for the console after this long")
}

// on says whether --wait or --wait-for was given.
func (b bootWait) on() bool { return b.wait || b.pattern != "" }

// run waits on the console output of the boot that op (a start or a
// create with start) began.
func (b bootWait) run(ctx context.Context, g *globals, c *client.Client, name string, op api.Operation) error {
	if !b.on() {
		return nil
	}
	pattern := b.pattern
	if pattern == "" {
		pattern = `\S`
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return usagef("--wait-for: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if !g.quiet {
		fmt.Fprintf(g.errOut, "waiting for vm %s's console to show %q ...\n", name, pattern)
	}
	var res api.StartResult
	if err := decodeResult(op, &res); err != nil {
		return err
	}
	rc, err := c.Console(ctx, name, client.ConsoleOptions{Follow: true, Offset: res.ConsoleOffset})
	if err != nil {
		return err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if re.MatchString(sc.Text()) {
			if !g.quiet {
				fmt.Fprintf(g.errOut, "vm %s is up: %s\n", name, strings.TrimSpace(sc.Text()))
			}
			return nil
		}
	}
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("vm %s: the console did not show %q within %s", name, pattern, b.timeout)
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return ctx.Err()
}

func vmCreateCmd(g *globals) *cobra.Command {
	var file, host string
	var start, dryRun bool
	var w waitFlags
	var bw bootWait
	cmd := &cobra.Command{
		Use:   "create -f SPEC.yaml",
		Short: "Create a VM from a YAML spec",
		Long: `Create makes a VM from a spec. In a cluster, the VM goes to the host
placement picks (hosts that are up and not drained, with the labels of the
spec's placement.hostSelector, no VM of its placement.antiAffinity group,
its networks, pools and images, and room for its CPUs and memory; then the
one with the most room left, or the least with placement: pack), unless
--on names one. --dry-run says which host and why, creating nothing.
A VM with ha: restart (its disks on a shared pool) is restarted on another
host when its host is lost; docs/cluster.md has the timings.`,
		Example: `  godwit vm create -f web1.yaml
  godwit vm create -f web1.yaml --start --wait
  godwit vm create -f web1.yaml --dry-run
  godwit vm create -f web1.yaml --on hostb
  cat web1.yaml | godwit vm create -f - --start --wait-for 'login:'`,
		Args: exactArgs(0, "no arguments (the spec comes with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("-f SPEC.yaml is required")
			}
			if bw.on() {
				start = true
			}
			if w.noWait && bw.on() {
				return usagef("--no-wait and --wait exclude each other")
			}
			spec, err := readSpec(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if dryRun {
				return placeDryRun(cmd.Context(), g, spec, host)
			}
			c, final, err := startOp(cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.CreateVM(ctx, spec, client.CreateOptions{Start: start, Host: host})
			})
			if err != nil || w.noWait {
				return err
			}
			if g.quiet {
				fmt.Fprintln(g.out, spec.Name)
			} else if start {
				fmt.Fprintf(g.out, "vm %s created and started\n", spec.Name)
			} else {
				fmt.Fprintf(g.out, "vm %s created (godwit vm start %s boots it)\n", spec.Name, spec.Name)
			}
			return bw.run(cmd.Context(), g, c, spec.Name, final)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the VM spec (YAML or JSON), - for stdin")
	cmd.Flags().BoolVar(&start, "start", false, "start the VM once created")
	// Not --host: that is every command's daemon URL.
	cmd.Flags().StringVar(&host, "on", "", "in a cluster: create it on this host (default: the one placement picks)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say which host placement picks and why; create nothing")
	w.add(cmd.Flags())
	bw.add(cmd)
	_ = cmd.MarkFlagFilename("file", "yaml", "yml", "json")
	return cmd
}

// placeDryRun prints where the VM would go: a line per host, the picked
// one first.
func placeDryRun(ctx context.Context, g *globals, spec api.VMSpec, host string) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	dec, err := c.Place(ctx, spec, host)
	if err != nil {
		return err
	}
	if g.output != "table" {
		return printValue(g.out, g.output, dec)
	}
	for _, v := range dec.Verdicts {
		what := v.Reason
		switch {
		case v.Picked:
			what = "picked (" + v.Reason + ")"
		case v.Fits:
			what = "fits, ranked lower (" + v.Reason + ")"
		}
		fmt.Fprintf(g.out, "%s: %s\n", v.Host, what)
	}
	if dec.Picked == "" {
		return fmt.Errorf("no host can take vm %s", spec.Name)
	}
	return nil
}

func vmApplyCmd(g *globals) *cobra.Command {
	var file string
	var start bool
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "apply -f SPEC.yaml",
		Short: "Make a VM match a spec: create it, or apply what changed",
		Long: `Apply compares the spec with the VM and changes what differs. Labels and
autostart change at any time. On a running VM, what QEMU can change live
is changed live (and in the definition), as vm set does: memory up to
maxMemory (balloon), more CPUs up to maxCpus (hot-add), vCPU and emulator
pinning, disk I/O limits; apply says which changes were live. The rest
(boot, console, disks added at the end or grown, NICs, CPU model and
topology, hugepages, NUMA...) waits for a restart: apply refuses it while
the VM runs and says which changes those are ('godwit vm nic
attach|detach' changes NICs of a running VM). Apply never removes or
shrinks a disk. A VM that does not exist is created.`,
		Args: exactArgs(0, "no arguments (the spec comes with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usagef("-f SPEC.yaml is required")
			}
			spec, err := readSpec(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			_, final, err := startOp(cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.ApplyVM(ctx, spec, client.CreateOptions{Start: start})
			})
			if err != nil || w.noWait {
				return err
			}
			if final.Kind == "vm.create" {
				fmt.Fprintf(g.out, "vm %s created\n", spec.Name)
				return nil
			}
			return printApplyResult(g, spec.Name, final)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the VM spec (YAML or JSON), - for stdin")
	cmd.Flags().BoolVar(&start, "start", false, "start the VM if apply creates it")
	w.add(cmd.Flags())
	return cmd
}

func vmListCmd(g *globals) *cobra.Command {
	return listCmd(g, listing[api.VM]{
		use:     "list",
		aliases: []string{"ls"},
		short:   "List VMs (including libvirt domains godwit did not create); in a cluster, every host's",
		fetch:   (*client.Client).ListVMs,
		wrap:    func(vms []api.VM) any { return api.VMList{VMs: vms} },
		name:    func(v api.VM) string { return v.Name },
		header:  []string{"NAME", "HOST", "STATE", "CPUS", "MEMORY", "DISKS", "ADDRESSES", "AGE", "NOTE"},
		row: func(v api.VM) []string {
			cpus, mem, disks, note := "-", "-", "-", ""
			if v.Spec != nil {
				cpus, mem, disks = fmt.Sprint(v.Spec.CPUs), v.Spec.Memory.Human(), fmt.Sprint(len(v.Disks))
			}
			if !v.Managed {
				note = "unmanaged (not created by godwit)"
			} else if v.Adopted {
				note = "adopted"
			} else if v.State == api.VMMissing {
				note = "libvirt domain missing"
			} else if v.Reason != "" && v.State == api.VMUnknown {
				note = v.Reason
			}
			return []string{v.Name, orDash(v.Host), string(v.State), cpus, mem, disks, orDash(vmAddresses(v)), age(v.CreatedAt), note}
		},
	})
}

func vmShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "show NAME",
		Short:             "Show a VM: state, spec, disks, console log",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE:              showRun(g, (*client.Client).GetVM, showVM),
	}
}

// graphicsNote says what graphical console the VM has.
func graphicsNote(g string) string {
	if g == api.GraphicsVNC {
		return "vnc (a unix socket on the host, through the daemon: the web page, or godwit vm vnc NAME)"
	}
	return "none (serial console only)"
}

func showVM(w io.Writer, v api.VM) error {
	state := string(v.State)
	if v.Reason != "" {
		state += " (" + v.Reason + ")"
	}
	kv := [][2]string{{"Name", v.Name}, {"State", state}, {"UUID", orDash(v.UUID)}, {"Host", orDash(v.Host)}}
	if !v.Managed {
		kv = append(kv, [2]string{"Managed", "no: a libvirt domain godwit did not create (read-only here; vm adopt takes it)"})
		return fields(w, kv)
	}
	s := v.Spec
	if v.Adopted {
		kv = append(kv, [2]string{"Adopted", adoptedNote(v)})
	}
	kv = append(kv, [2]string{"Created", v.CreatedAt.Local().Format(time.RFC3339) + " (" + age(v.CreatedAt) + " ago)"},
		[2]string{"CPUs", fmt.Sprint(s.CPUs)}, [2]string{"Memory", s.Memory.Human()})
	switch {
	case s.Boot != nil && s.Boot.Image != "":
		kv = append(kv, [2]string{"Boot", "kernel of image " + s.Boot.Image})
	case s.Boot != nil && s.Boot.Kernel != "":
		kv = append(kv, [2]string{"Boot", "kernel " + s.Boot.Kernel}, [2]string{"Initrd", orDash(s.Boot.Initrd)}, [2]string{"Cmdline", orDash(s.Boot.Cmdline)})
	case s.Boot != nil && s.Boot.Firmware == "uefi":
		kv = append(kv, [2]string{"Boot", "UEFI from the first disk"})
	default:
		kv = append(kv, [2]string{"Boot", "BIOS from the first disk"})
	}
	kv = append(kv, tuningFields(v)...)
	kv = append(kv, [2]string{"Autostart", fmt.Sprint(s.Autostart)}, [2]string{"Console log", orDash(v.ConsoleLog)}, [2]string{"Graphics", graphicsNote(s.Graphics)})
	if ci := s.CloudInit; ci != nil {
		host := ci.Hostname
		if host == "" {
			host = v.Name
		}
		kv = append(kv, [2]string{"Cloud-init", fmt.Sprintf("seed CD-ROM: hostname %s, %d user(s), %d SSH key(s), user-data %t, network-config %t",
			host, len(ci.Users), len(ci.SSHKeys), ci.UserData != "", ci.NetworkConfig != "")})
	}
	if len(s.Labels) > 0 {
		var l []string
		for k, val := range s.Labels {
			l = append(l, k+"="+val)
		}
		kv = append(kv, [2]string{"Labels", strings.Join(l, ", ")})
	}
	if err := fields(w, kv); err != nil {
		return err
	}
	if len(v.NICs) > 0 {
		fmt.Fprintln(w, "NICs:")
		if err := nicTable(w, v.NICs, "  "); err != nil {
			return err
		}
	}
	defer printKept(w, v.Kept)
	if len(v.Disks) == 0 {
		return nil
	}
	fmt.Fprintln(w, "Disks:")
	rows := make([][]string, 0, len(v.Disks))
	for _, d := range v.Disks {
		backing := orDash(d.Backing)
		switch {
		case d.Image != "":
			backing = "image " + d.Image
		case d.External && v.Adopted:
			backing = "(the adopted domain's volume)"
		case d.External:
			backing = "(attached volume)"
		}
		rows = append(rows, []string{"  " + d.Name, d.Target, d.Size.Human(), d.Pool + "/" + d.Volume, backing})
	}
	return table(w, []string{"  NAME", "TARGET", "SIZE", "VOLUME", "BACKING"}, rows)
}

// opCmd is a VM action that runs as an operation.
func opCmd(g *globals, use, short, done string, call func(c *client.Client, ctx context.Context, name string) (api.Operation, error)) *cobra.Command {
	cmd, _ := opCmdWithResult(g, use, short, done, call)
	return cmd
}

// opCmdWithResult is opCmd that also hands back the ended operation, once
// the command ran, for commands that continue after it.
func opCmdWithResult(g *globals, use, short, done string, call func(c *client.Client, ctx context.Context, name string) (api.Operation, error)) (*cobra.Command, *api.Operation) {
	var w waitFlags
	final := &api.Operation{}
	cmd := &cobra.Command{
		Use:               use + " NAME",
		Short:             short,
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, ended, err := startOp(cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return call(c, ctx, args[0])
			})
			*final = ended
			if err != nil || w.noWait {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "vm %s %s\n", args[0], done)
			}
			return nil
		},
	}
	w.add(cmd.Flags())
	return cmd, final
}

// nowCmd is a quick VM action answered at once with the VM.
func nowCmd(g *globals, use, short, done string, call func(c *client.Client, ctx context.Context, name string) (api.VM, error)) *cobra.Command {
	return &cobra.Command{
		Use:               use + " NAME",
		Short:             short,
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := call(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, v)
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "vm %s %s (%s)\n", args[0], done, v.State)
			}
			return nil
		},
	}
}

func vmStartCmd(g *globals) *cobra.Command {
	var bw bootWait
	cmd, final := opCmdWithResult(g, "start", "Start a stopped VM", "started", (*client.Client).StartVM)
	bw.add(cmd)
	run := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if noWait, _ := cmd.Flags().GetBool("no-wait"); noWait && bw.on() {
			return usagef("--no-wait and --wait exclude each other")
		}
		if err := run(cmd, args); err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		return bw.run(cmd.Context(), g, c, args[0], *final)
	}
	return cmd
}

func vmStopCmd(g *globals) *cobra.Command {
	var force bool
	var timeout time.Duration
	cmd := opCmd(g, "stop", "Shut a VM down (ACPI power button; --force pulls the plug)", "stopped", func(c *client.Client, ctx context.Context, name string) (api.Operation, error) {
		return c.StopVM(ctx, name, api.StopRequest{Force: force, Timeout: int(timeout.Seconds())})
	})
	cmd.Long = `Stop presses the VM's ACPI power button and waits until the guest has
powered off (--timeout). A guest that ignores the button is left running and
the command fails; --force destroys the VM at once instead, like pulling the
plug (the guest gets no chance to flush its disks).`
	cmd.Flags().BoolVar(&force, "force", false, "destroy the VM at once instead of asking the guest")
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long to wait for the guest to power off")
	return cmd
}

func vmRebootCmd(g *globals) *cobra.Command {
	return opCmd(g, "reboot", "Reboot a running VM (ACPI)", "is rebooting", (*client.Client).RebootVM)
}

func vmKillCmd(g *globals) *cobra.Command {
	return nowCmd(g, "kill", "Destroy a running VM at once (like pulling the plug)", "killed", (*client.Client).KillVM)
}

func vmPauseCmd(g *globals) *cobra.Command {
	return nowCmd(g, "pause", "Pause a VM's vCPUs (its memory stays)", "paused", (*client.Client).PauseVM)
}

func vmResumeCmd(g *globals) *cobra.Command {
	return nowCmd(g, "resume", "Resume a paused VM", "resumed", (*client.Client).ResumeVM)
}

func vmDeleteCmd(g *globals) *cobra.Command {
	var keep, force bool
	cmd := opCmd(g, "delete", "Delete a VM with its disks and console log", "deleted", func(c *client.Client, ctx context.Context, name string) (api.Operation, error) {
		return c.DeleteVM(ctx, name, client.DeleteOptions{KeepDisks: keep, Force: force})
	})
	cmd.Aliases = []string{"rm"}
	cmd.Flags().BoolVar(&keep, "keep-disks", false, "keep the VM's disk volumes in the pool")
	cmd.Flags().BoolVar(&force, "force", false, "delete a running VM (it is destroyed first)")
	return cmd
}

// emptyConsoleNote says why a console printed nothing: a VM that never ran
// has no output, which an empty screen does not tell.
func emptyConsoleNote(ctx context.Context, c *client.Client, name string) string {
	v, err := c.GetVM(ctx, name)
	switch {
	case err != nil:
		return fmt.Sprintf("vm %s: no console output", name)
	case v.State == api.VMStopped || v.State == api.VMCreating:
		return fmt.Sprintf("vm %s has no console output: it is %s and has not run yet (godwit vm start %s)", name, v.State, name)
	}
	return fmt.Sprintf("vm %s is %s but has printed nothing on its serial console yet", name, v.State)
}

func vmConsoleCmd(g *globals) *cobra.Command {
	var noFollow, input bool
	var lines int
	cmd := &cobra.Command{
		Use:   "console NAME",
		Short: "Show a VM's serial console output, following it (--input: type into it too)",
		Long: `Console prints what the VM wrote on its serial console and keeps printing
new output until interrupted (Ctrl-C). With --no-follow it prints what is
there and exits. With --input (-i) what you type goes to the serial port as
well (admin scope; Ctrl-] leaves), over the same websocket the web page's
console uses; other viewers keep seeing the output.`,
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if input {
				if noFollow {
					return fmt.Errorf("--input and --no-follow: typing into a console needs it followed")
				}
				return attachConsole(cmd.Context(), c, args[0], lines, cmd.InOrStdin(), g.out, g.errOut)
			}
			rc, err := c.Console(cmd.Context(), args[0], client.ConsoleOptions{Follow: !noFollow, Lines: lines})
			if err != nil {
				return err
			}
			defer rc.Close()
			n, err := io.Copy(g.out, rc)
			if err != nil && (errors.Is(err, context.Canceled) || cmd.Context().Err() != nil) {
				return nil
			}
			if err == nil && n == 0 && noFollow {
				fmt.Fprintln(g.errOut, emptyConsoleNote(cmd.Context(), c, args[0]))
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&noFollow, "no-follow", false, "print the output so far and exit")
	cmd.Flags().IntVarP(&lines, "lines", "n", 0, "start with only the last N lines")
	cmd.Flags().BoolVarP(&input, "input", "i", false, "type into the console too (stdin; Ctrl-] leaves)")
	return cmd
}
