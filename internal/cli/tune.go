package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
)

func hostTuneCmd(g *globals) *cobra.Command {
	var check, apply, dryRun, persist, revert bool
	var profile string
	cmd := &cobra.Command{
		Use:   "tune [--check | --apply [--dry-run] [--persist] | --revert] [--profile virtual-host]",
		Short: "Check (and set) the host settings that matter for VMs; exit 0 ok, 1 warning, 2 critical",
		Long: `Lists each host setting that matters for VMs with its value, the value of
the profile (virtual-host, after tuned's) and why, as virt-host-validate
and tuned would: hardware virtualization, /dev/kvm and whether KVM is
usable, KSM (on for overcommitted hosts), huge pages reserved against
what VMs need, transparent huge pages, swappiness, the vm.dirty_* ratios,
NUMA balancing, the CPU frequency governor, vhost-net, the I/O scheduler
of the pool's disk, cgroup controllers, the IOMMU.

--check (the default) exits 0 OK, 1 WARNING, 2 CRITICAL, like host check.
--apply shows the changes, then writes the runtime settings (/proc/sys,
/sys) where the check warns; --dry-run stops after showing them;
--persist also writes /etc/sysctl.d/90-godwit-virtual-host.conf (and
/etc/modules-load.d/godwit.conf for vhost_net) for the next boot.
--revert puts back every value apply replaced and removes those files
(the daemon keeps the old values in its state directory). What is not a
runtime setting (firmware, kernel command line, packages) is only
reported.`,
		Example: `  godwit host tune
  godwit host tune -o json
  godwit host tune --apply --dry-run
  godwit host tune --apply --persist
  godwit host tune --revert`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			modes := 0
			for _, m := range []bool{check, apply, revert} {
				if m {
					modes++
				}
			}
			if modes > 1 {
				return usagef("--check, --apply and --revert exclude each other")
			}
			if (dryRun || persist) && !apply {
				return usagef("--dry-run and --persist go with --apply")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			switch {
			case revert:
				res, err := c.RevertHostTune(ctx)
				if err != nil {
					return err
				}
				return printTuneResult(g, res, "reverted")
			case apply:
				// The diff first, then the change.
				plan, err := c.ApplyHostTune(ctx, api.TuneRequest{Profile: profile, DryRun: true, Persist: persist})
				if err != nil {
					return err
				}
				if dryRun || (len(plan.Changes) == 0 && len(plan.Files) == 0) {
					return printTuneResult(g, plan, "would change")
				}
				if g.output == "table" && !g.quiet {
					printTuneDiff(g.out, plan)
				}
				res, err := c.ApplyHostTune(ctx, api.TuneRequest{Profile: profile, Persist: persist})
				if err != nil {
					return err
				}
				return printTuneResult(g, res, "changed")
			}
			rep, err := c.HostTune(ctx, profile)
			if err != nil {
				fmt.Fprintf(g.out, "CRITICAL: %v\n", err)
				return exitCode{code: 2}
			}
			return checkReport(g, rep, rep.Status, func(w io.Writer) { printTune(w, rep) })
		},
	}
	f := cmd.Flags()
	f.BoolVar(&check, "check", false, "report the settings (the default)")
	f.BoolVar(&apply, "apply", false, "set the profile's runtime settings where the check warns, after showing them")
	f.BoolVar(&dryRun, "dry-run", false, "with --apply: only show what would change")
	f.BoolVar(&persist, "persist", false, "with --apply: also write them under /etc for the next boot")
	f.BoolVar(&revert, "revert", false, "put back what --apply changed")
	f.StringVar(&profile, "profile", api.TuneProfileVirtualHost, "the tuning profile")
	return cmd
}

func printTune(w io.Writer, rep api.TuneReport) {
	fmt.Fprintf(w, "%s: profile %s\n", strings.ToUpper(rep.Status), rep.Profile)
	rows := make([][]string, 0, len(rep.Items))
	for _, it := range rep.Items {
		rows = append(rows, []string{"  " + strings.ToUpper(it.Status), it.Name, it.Current, it.Recommended, it.Why})
	}
	_ = table(w, []string{"  STATUS", "SETTING", "CURRENT", "RECOMMENDED", "WHY"}, rows)
}

func printTuneDiff(w io.Writer, res api.TuneResult) {
	for _, c := range res.Changes {
		fmt.Fprintf(w, "- %s %s: %s\n+ %s %s: %s\n", c.Name, c.Path, c.From, c.Name, c.Path, c.To)
	}
	for _, f := range res.Files {
		fmt.Fprintf(w, "+ file %s\n", f)
	}
}

func printTuneResult(g *globals, res api.TuneResult, verb string) error {
	if g.output != "table" {
		return printValue(g.out, g.output, res)
	}
	if len(res.Changes) == 0 && len(res.Files) == 0 {
		fmt.Fprintln(g.out, "nothing to change: the settings the profile sets are as it wants them")
		return nil
	}
	if verb == "would change" {
		printTuneDiff(g.out, res)
		return nil
	}
	for _, c := range res.Changes {
		fmt.Fprintf(g.out, "%s %s: %s -> %s (%s)\n", verb, c.Name, c.From, c.To, c.Path)
	}
	for _, f := range res.Files {
		fmt.Fprintf(g.out, "%s file %s\n", verb, f)
	}
	return nil
}
