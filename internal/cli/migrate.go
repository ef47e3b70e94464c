package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newMigrateCmd(g *globals) *cobra.Command {
	var req api.MigrateRequest
	var offline, cold bool
	var maxDowntime, timeout, progressTimeout, postcopyAfter time.Duration
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "migrate VM --to HOST",
		Short: "Move a VM to another host: live (default), offline or cold",
		Long: `Migrate moves a VM to a peer host (see 'godwit host add').

A running VM moves live: its memory (and, without shared storage, its
disks) is copied while it runs, then it pauses for a moment (the downtime)
and resumes on the destination. Disks on storage both hosts see are not
copied; godwit finds out which disks those are by itself.

Checks run before anything moves: the destination answers, has the memory,
the CPU, the disk space, the kernel files; the name is free there.

Policies for a guest that writes memory faster than the link carries it:
  auto      precopy with a downtime target; QEMU's auto-converge throttles
            the guest's CPUs when a pass does not gain, and when it still
            does not converge (or after --postcopy-after), godwit switches
            to postcopy, which always finishes (default)
  precopy   precopy only; aborts at --timeout if it never converges
  postcopy  switch to postcopy after the first pass

--offline pauses the guest and moves it while it is paused. By default
(--transfer stream) libvirt migrates the paused guest QEMU to QEMU over
QEMU's TLS: its memory is sent once, its disks (unless shared) by NBD at
the same time, and it resumes there when both are complete. --transfer
files saves its memory to a file, sends that and the disks between the
daemons with SHA-256 checks and restores it there; an offline move falls
back to files, and says why, when QEMU TLS is not set up on both hosts or
the VM has snapshots. A paused VM stays paused. --cold moves a shut-off
VM. A failed or cancelled migration leaves the VM running on this host.`,
		Example: `  godwit migrate web1 --to host2
  godwit migrate web1 --to host2 --policy precopy --max-downtime 100ms --bandwidth 100
  godwit migrate web1 --to host2 --offline
  godwit migrate web1 --to host2 --offline --transfer files
  godwit op cancel OPID          # abort a running migration`,
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.To == "" {
				return usagef("--to HOST is required")
			}
			if offline && cold {
				return usagef("--offline and --cold exclude each other")
			}
			switch {
			case offline:
				req.Mode = api.MigrateOffline
			case cold:
				req.Mode = api.MigrateCold
			}
			req.MaxDowntimeMs = int(maxDowntime.Milliseconds())
			req.TimeoutSeconds = int(timeout.Seconds())
			req.ProgressTimeoutSeconds = int(progressTimeout.Seconds())
			req.PostcopyAfterSeconds = int(postcopyAfter.Seconds())
			rep, err := opResult[api.MigrationReport](cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.MigrateVM(ctx, args[0], req)
			})
			if err != nil || w.noWait {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, rep)
			}
			fmt.Fprintln(g.out, migrationLine(rep))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.To, "to", "", "destination host (a peer)")
	f.BoolVar(&offline, "offline", false, "pause the guest, move it paused, resume it there")
	f.StringVar(&req.Transfer, "transfer", "", "offline moves: stream (default) or files")
	f.BoolVar(&cold, "cold", false, "move a shut-off VM (definition and disks)")
	f.StringVar(&req.Policy, "policy", "auto", "live convergence policy: auto, precopy or postcopy")
	f.DurationVar(&maxDowntime, "max-downtime", 100*time.Millisecond, "downtime target of a live migration")
	f.IntVar(&req.BandwidthMiB, "bandwidth", 0, "bandwidth cap in MiB/s (0: none)")
	f.IntVar(&req.Parallel, "parallel", 0, "parallel connections (multifd)")
	f.BoolVar(&req.TLS, "tls", false, "encrypt the migration stream with QEMU's TLS (needs QEMU TLS set up on both hosts)")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "abort a precopy migration not finished by then")
	f.DurationVar(&progressTimeout, "progress-timeout", time.Minute, "abort when no byte moved for this long (a dead link)")
	f.DurationVar(&postcopyAfter, "postcopy-after", 20*time.Second, "auto policy: switch to postcopy when not converged after this long")
	_ = cmd.RegisterFlagCompletionFunc("transfer", cobra.FixedCompletions([]string{"stream", "files"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("policy", cobra.FixedCompletions([]string{"auto", "precopy", "postcopy"}, cobra.ShellCompDirectiveNoFileComp))
	w.add(f)
	return cmd
}

// migrationLine is the one-line report of a migration.
func migrationLine(r api.MigrationReport) string {
	downtime := fmt.Sprintf("%d ms", r.DowntimeMs)
	if r.Postcopy && r.DowntimeMs == 0 {
		downtime = "n/a ms" // libvirt does not measure postcopy's switchover
	}
	line := fmt.Sprintf("migrated %s from %s to %s: total %d ms, downtime %s, %.1f MiB", r.VM, r.From, r.To,
		r.TotalMs, downtime, float64(r.Bytes)/(1<<20))
	extra := fmt.Sprintf(" (%s", r.Mode)
	if r.Policy != "" {
		extra += ", policy " + r.Policy
	}
	if r.Transfer != "" {
		extra += ", transfer " + r.Transfer
	}
	if r.TransferNote != "" {
		extra += " (" + r.TransferNote + ")"
	}
	if r.Postcopy {
		extra += ", switched to postcopy"
	}
	if r.AutoConverge > 0 {
		extra += fmt.Sprintf(", auto-converge up to %d%%", r.AutoConverge)
	}
	extra += fmt.Sprintf(", %d disk(s) shared, %d copied)", r.SharedDisks, r.CopiedDisks)
	if r.Warning != "" {
		extra += "\nwarning: " + r.Warning
	}
	return line + extra
}

// evacuationReport follows an evacuation or drain and prints what moved
// where and what did not, and why.
func evacuationReport(ctx context.Context, g *globals, c *client.Client, op api.Operation, w waitFlags) error {
	final, ferr := follow(ctx, g, c, op, w)
	return printReport(g, w, final, ferr, func(rep api.EvacuationReport) {
		for _, m := range rep.Moved {
			fmt.Fprintln(g.out, migrationLine(m))
		}
		for _, m := range rep.Failed {
			to := ""
			if m.To != "" {
				to = " to " + m.To
			}
			fmt.Fprintf(g.out, "did not move %s%s: %s\n", m.VM, to, m.Reason)
		}
		fmt.Fprintf(g.out, "%d moved, %d did not\n", len(rep.Moved), len(rep.Failed))
	})
}

func hostDrainCmd(g *globals) *cobra.Command {
	var req api.EvacuateRequest
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "drain HOST",
		Short: "Mark a host of the cluster unschedulable and move its VMs where placement picks",
		Long: `Drain marks HOST unschedulable (placement puts no new VM there) and moves
each of its VMs, running ones live and stopped ones cold, to the host
placement picks for it (room is reserved there first), N at a time. It
ends with a summary of what moved where, and what did not, and why. The
host stays drained until 'godwit host undrain HOST'.`,
		Args: exactArgs(1, "HOST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			op, err := c.DrainHost(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return evacuationReport(cmd.Context(), g, c, op, w)
		},
	}
	cmd.Flags().IntVar(&req.Parallel, "parallel", 1, "migrations at once")
	cmd.Flags().StringVar(&req.Policy, "policy", "auto", "live convergence policy: auto, precopy or postcopy")
	w.add(cmd.Flags())
	return cmd
}

func hostUndrainCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "undrain HOST",
		Short: "Make a drained host schedulable again",
		Args:  exactArgs(1, "HOST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.UndrainHost(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "host %s is schedulable\n", args[0])
			return nil
		},
	}
}

func hostEvacuateCmd(g *globals) *cobra.Command {
	var req api.EvacuateRequest
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "evacuate [HOST]",
		Short: "Migrate every running VM off this host (for maintenance)",
		Long: `Evacuate moves every running VM of this host to its peers, live, N at a
time: to --to, or per VM to the peer with the most free memory that passes
the checks. It ends with a summary of what moved where, and what did not,
and why. HOST, when given, must be this host's name.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				h, err := c.Host(cmd.Context())
				if err != nil {
					return err
				}
				if h.Name != args[0] {
					return usagef("this daemon is host %s, not %s (use --socket or --host to talk to %s)", h.Name, args[0], args[0])
				}
			}
			op, err := c.Evacuate(cmd.Context(), req)
			if err != nil {
				return err
			}
			return evacuationReport(cmd.Context(), g, c, op, w)
		},
	}
	cmd.Flags().StringVar(&req.To, "to", "", "move every VM to this host (default: the best peer per VM)")
	cmd.Flags().IntVar(&req.Parallel, "parallel", 1, "migrations at once")
	cmd.Flags().StringVar(&req.Policy, "policy", "auto", "live convergence policy: auto, precopy or postcopy")
	w.add(cmd.Flags())
	return cmd
}
