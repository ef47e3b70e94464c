package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

// exitCode ends a command with a given exit status; msg, when set, is
// printed as the error.
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return e.msg }

func newEventsCmd(g *globals) *cobra.Command {
	var opts client.EventsOptions
	cmd := &cobra.Command{
		Use:   "events [--vm NAME]",
		Short: "Follow the daemon's events: VM lifecycle (libvirt) and operations",
		Long: `Prints events as they happen until Ctrl-C: libvirt's lifecycle events of
every VM (started, suspended, resumed, stopped with why, crashed, defined,
undefined) and every operation's progress and end. The stream is the
daemon's /v1/events (server-sent events); when the connection drops,
godwit reconnects and resumes after the last event it printed
(Last-Event-ID), so nothing in between is missed while the daemon keeps it.

-o json prints one JSON object per line.`,
		Example: `  godwit events
  godwit events --vm web1
  godwit events --type operation -o json | jq .operation.state`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Type != "" && opts.Type != api.EventVM && opts.Type != api.EventOperation {
				return usagef("--type: %q is not vm or operation", opts.Type)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM) // Ctrl-C ends it, exit 0
			defer stop()
			return followEvents(ctx, g, c, opts)
		},
	}
	cmd.Flags().StringVar(&opts.VM, "vm", "", "only events about this VM")
	cmd.Flags().StringVar(&opts.Type, "type", "", "only vm or operation events")
	cmd.Flags().StringVar(&opts.Host, "from", "", "in a cluster: the events of this host (default: of the host asked, or of --vm's host)")
	cmd.Flags().Uint64Var(&opts.LastEventID, "after", 0, "first replay the events after this id (that the daemon still keeps)")
	_ = cmd.RegisterFlagCompletionFunc("vm", completeVMs(g))
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{"vm", "operation"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// followEvents prints events, reconnecting with the last id when the
// stream breaks, until ctx ends.
func followEvents(ctx context.Context, g *globals, c *client.Client, opts client.EventsOptions) error {
	failures := 0
	for {
		err := c.Events(ctx, opts, func(e api.Event) error {
			failures = 0
			if e.Type != api.EventLost {
				opts.LastEventID = e.ID
			}
			return printEvent(g, e)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			if s := api.Status(err); s >= 400 && s < 500 {
				return err // refused: retrying will not help
			}
			failures++
			if failures == 1 {
				fmt.Fprintf(g.errOut, "event stream interrupted (%v); reconnecting\n", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(min(failures, 5)) * time.Second):
		}
	}
}

func printEvent(g *globals, e api.Event) error {
	switch g.output {
	case "json":
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(g.out, string(b))
		return err
	case "yaml":
		fmt.Fprintln(g.out, "---")
		return printValue(g.out, "yaml", e)
	}
	var what string
	switch {
	case e.Lifecycle != nil:
		what = fmt.Sprintf("%-9s %-20s %s", "vm", e.VM, e.Lifecycle.Event)
		if e.Lifecycle.Detail != "" {
			what += " (" + e.Lifecycle.Detail + ")"
		}
	case e.Operation != nil:
		o := e.Operation
		what = fmt.Sprintf("%-9s %-20s %s %s %s", "operation", o.Target, o.Kind, o.ID, o.State)
		switch {
		case o.Error != "":
			what += ": " + o.Error
		case !o.State.Final() && o.Progress.Message != "":
			what += ": " + o.Progress.Message
			if o.Progress.Total > 0 {
				what += fmt.Sprintf(" (%d%%)", 100*o.Progress.Current/o.Progress.Total)
			}
		}
	default:
		what = fmt.Sprintf("%-9s %s", e.Type, e.Message)
	}
	_, err := fmt.Fprintf(g.out, "%s  %s\n", e.Time.Local().Format("15:04:05.000"), what)
	return err
}

func hostCheckCmd(g *globals) *cobra.Command {
	var only []string
	cmd := &cobra.Command{
		Use:   "check [--only NAME]",
		Short: "Run the host's health checks; exit 0 ok, 1 warning, 2 critical",
		Long: `Runs the health checks the book runs with Sensu, in the daemon:

  libvirtd                 libvirtd answers
  vm-stopped-unexpectedly  a managed VM crashed, failed, froze on an I/O error,
                           or stopped without godwit being asked (until it runs again)
  pool-space               the disk pool is nearly full (daemon config health:
                           poolWarnPercent, default 85; poolCritPercent, default 95)
  failed-backup            the last backup of a VM failed
  failed-migration         the last migration of a VM failed

The exit status follows the Nagios/Sensu plugin convention, so the command
is a check as it is: 0 OK, 1 WARNING, 2 CRITICAL (also when the daemon
cannot be reached). The same checks are metrics (godwit_check_status).`,
		Example: `  godwit host check
  godwit host check --only pool-space     # one Sensu check per command`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			rep, err := c.HostChecks(cmd.Context())
			if err != nil {
				fmt.Fprintf(g.out, "CRITICAL: %v\n", err)
				return exitCode{code: 2}
			}
			if len(only) > 0 {
				var kept []api.Check
				for _, name := range only {
					found := false
					for _, ch := range rep.Checks {
						if ch.Name == name {
							kept, found = append(kept, ch), true
						}
					}
					if !found {
						var names []string
						for _, ch := range rep.Checks {
							names = append(names, ch.Name)
						}
						return usagef("--only: no check %q (checks: %s)", name, strings.Join(names, ", "))
					}
				}
				rep.Checks, rep.Status = kept, api.WorstStatus(kept)
			}
			return checkReport(g, rep, rep.Status, func(w io.Writer) { printChecks(w, rep) })
		},
	}
	cmd.Flags().StringSliceVar(&only, "only", nil, "run only these checks (repeat or comma-separate)")
	_ = cmd.RegisterFlagCompletionFunc("only", cobra.FixedCompletions([]string{"libvirtd", "vm-stopped-unexpectedly", "pool-space", "failed-backup", "failed-migration"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// printChecks prints a Nagios-style first line, then one line per check.
// checkReport prints a report of checks (as a table, or as -o asks) and
// exits as a Nagios/Sensu plugin: 0 ok, 1 warning, 2 critical.
func checkReport(g *globals, rep any, status string, tableOut func(io.Writer)) error {
	if g.output != "table" {
		if err := printValue(g.out, g.output, rep); err != nil {
			return err
		}
	} else {
		tableOut(g.out)
	}
	if code := api.CheckSeverity(status); code != 0 {
		return exitCode{code: code}
	}
	return nil
}

func printChecks(w io.Writer, rep api.HealthReport) {
	var bad []string
	for _, ch := range rep.Checks {
		if ch.Status != api.CheckOK {
			bad = append(bad, ch.Message)
		}
	}
	summary := "all checks pass"
	if len(bad) > 0 {
		summary = strings.Join(bad, "; ")
	}
	fmt.Fprintf(w, "%s: %s\n", strings.ToUpper(rep.Status), summary)
	for _, ch := range rep.Checks {
		fmt.Fprintf(w, "  %-8s %-24s %s\n", strings.ToUpper(ch.Status), ch.Name, ch.Message)
		for _, it := range ch.Items {
			fmt.Fprintf(w, "  %-8s %-24s   %s\n", "", "", it)
		}
	}
}

// vmRates are one VM's rates between two samples.
type vmRates struct {
	Name       string      `json:"name"`
	State      api.VMState `json:"state"`
	CPUPercent float64     `json:"cpuPercent" doc:"Of one CPU: 200 is two busy vCPUs."`
	VCPUs      int         `json:"vcpus"`
	MemoryRSS  api.Size    `json:"memoryRss"`
	Memory     api.Size    `json:"memory"`
	ReadBps    float64     `json:"diskReadBytesPerSec"`
	WriteBps   float64     `json:"diskWriteBytesPerSec"`
	RxBps      float64     `json:"netRxBytesPerSec"`
	TxBps      float64     `json:"netTxBytesPerSec"`
}

// rates computes per-second rates from two samples. A VM missing from a
// or restarted in between (counters went down) shows zeros.
func rates(a, b api.StatsSample) []vmRates {
	prev := map[string]api.VMStats{}
	for _, v := range a.VMs {
		prev[v.Name] = v
	}
	dt := b.Time.Sub(a.Time).Seconds()
	out := []vmRates{}
	for _, v := range b.VMs {
		r := vmRates{Name: v.Name, State: v.State, VCPUs: v.VCPUs, MemoryRSS: v.MemoryRSS, Memory: v.MemoryCurrent}
		p, ok := prev[v.Name]
		if ok && dt > 0 {
			r.CPUPercent = 100 * delta(p.CPUTimeNs, v.CPUTimeNs) / 1e9 / dt
			var pr, pw, cr, cw, prx, ptx, crx, ctx uint64
			for _, d := range p.Disks {
				pr, pw = pr+d.ReadBytes, pw+d.WriteBytes
			}
			for _, d := range v.Disks {
				cr, cw = cr+d.ReadBytes, cw+d.WriteBytes
			}
			for _, n := range p.NICs {
				prx, ptx = prx+n.RxBytes, ptx+n.TxBytes
			}
			for _, n := range v.NICs {
				crx, ctx = crx+n.RxBytes, ctx+n.TxBytes
			}
			r.ReadBps, r.WriteBps = delta(pr, cr)/dt, delta(pw, cw)/dt
			r.RxBps, r.TxBps = delta(prx, crx)/dt, delta(ptx, ctx)/dt
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].CPUPercent != out[j].CPUPercent {
			return out[i].CPUPercent > out[j].CPUPercent
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func delta(a, b uint64) float64 {
	if b < a {
		return 0
	}
	return float64(b - a)
}

func rate(bps float64) string {
	if bps < 1 {
		return "0"
	}
	return api.Size(bps).Human() + "/s"
}

func topRows(list []vmRates) [][]string {
	rows := make([][]string, 0, len(list))
	for _, r := range list {
		mem := "-"
		if r.MemoryRSS > 0 || r.Memory > 0 {
			mem = r.MemoryRSS.Human() + " / " + r.Memory.Human()
		}
		rows = append(rows, []string{r.Name, string(r.State), fmt.Sprintf("%.1f", r.CPUPercent), fmt.Sprint(r.VCPUs), mem,
			rate(r.ReadBps), rate(r.WriteBps), rate(r.RxBps), rate(r.TxBps)})
	}
	return rows
}

var topHeader = []string{"NAME", "STATE", "%CPU", "VCPUS", "MEM RSS / CUR", "DISK RD", "DISK WR", "NET RX", "NET TX"}

func newTopCmd(g *globals) *cobra.Command {
	var interval time.Duration
	var once bool
	var count int
	var vm string
	cmd := &cobra.Command{
		Use:   "top",
		Short: "A live view of the VMs: CPU %, memory, disk and network rates (like virt-top)",
		Long: `Samples every VM's counters (one bulk libvirt call in the daemon) every
--interval and shows the rates in between, busiest first: CPU (percent of
one CPU, so 200 is two busy vCPUs), resident and current memory, disk read
and write, network receive and transmit.

On a terminal the view redraws in place until Ctrl-C. Otherwise, or with
-o json|yaml, it prints plain lines per interval (JSON: one object per VM
per line). --once prints one interval and exits.`,
		Example: `  godwit top
  godwit top --once -o json
  godwit top --interval 5s -n 12 > top.log`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return usagef("--interval: %s is too short (at least 100ms)", interval)
			}
			if once {
				count = 1
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM) // Ctrl-C ends it, exit 0
			defer stop()
			return runTop(ctx, g, c, vm, interval, count, isTerminal(g.out) && g.output == "table")
		},
	}
	cmd.Flags().DurationVarP(&interval, "interval", "d", 2*time.Second, "time between samples")
	cmd.Flags().BoolVar(&once, "once", false, "print one interval and exit")
	cmd.Flags().IntVarP(&count, "iterations", "n", 0, "stop after N intervals (0: until Ctrl-C)")
	cmd.Flags().StringVar(&vm, "vm", "", "only this VM")
	_ = cmd.RegisterFlagCompletionFunc("vm", completeVMs(g))
	return cmd
}

func runTop(ctx context.Context, g *globals, c *client.Client, vm string, interval time.Duration, count int, live bool) error {
	prev, err := c.Stats(ctx, vm)
	if err != nil {
		return err
	}
	for i := 0; count == 0 || i < count; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		cur, err := c.Stats(ctx, vm)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		list := rates(prev, cur)
		prev = cur
		if err := printTop(g, cur.Time, list, live); err != nil {
			return err
		}
	}
	return nil
}

func printTop(g *globals, at time.Time, list []vmRates, live bool) error {
	switch g.output {
	case "json":
		for _, r := range list {
			b, err := json.Marshal(struct {
				Time time.Time `json:"time"`
				vmRates
			}{at, r})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.out, string(b))
		}
		return nil
	case "yaml":
		fmt.Fprintln(g.out, "---")
		return printValue(g.out, "yaml", map[string]any{"time": at, "vms": list})
	}
	running := 0
	var cpu float64
	for _, r := range list {
		if r.State == api.VMRunning {
			running++
		}
		cpu += r.CPUPercent
	}
	if live {
		fmt.Fprint(g.out, "\x1b[H\x1b[2J") // home, clear screen
	}
	fmt.Fprintf(g.out, "godwit top - %s  VMs: %d, %d running  CPU: %.1f%%\n", at.Local().Format("15:04:05"), len(list), running, cpu)
	if err := table(g.out, topHeader, topRows(list)); err != nil {
		return err
	}
	if !live {
		fmt.Fprintln(g.out)
	}
	return nil
}
