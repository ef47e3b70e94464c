package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newBackupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back VMs up into a deduplicated repository, verify, restore, prune",
		Long: `Backups read a VM's disks through libvirt's backup API while the VM runs
(a stopped VM is started paused for it, and stopped again). The first backup
of a VM reads every block that holds data; the next ones read only the blocks
that changed since the last, using QEMU's dirty bitmaps (a libvirt
checkpoint). When the checkpoint is gone or broken (the VM crashed, was
redefined, its disk moved), the backup is full again and says why.

Backups go into a repository directory (the daemon's --backup-repo, default
STATE-DIR/backups) as 64 KiB chunks named by their SHA-256, zstd-compressed
and shared by every backup and VM. Every backup is logically full: restore
never replays a chain.`,
		Example: `  godwit backup create web1
  godwit backup list web1
  godwit backup restore web1@20261129-155536 --as web1-copy
  godwit backup verify
  godwit backup prune --keep-last 3 --keep-daily 7 --keep-weekly 4
  godwit backup schedule web1 --every 24h --keep-daily 7`,
	}
	cmd.AddCommand(backupCreateCmd(g), backupListCmd(g), backupShowCmd(g), backupRestoreCmd(g),
		backupVerifyCmd(g), backupPruneCmd(g), backupScheduleCmd(g), backupSchedulesCmd(g))
	return cmd
}

// completeBackups completes backup ids (and VM names, meaning their newest).
func completeBackups(g *globals) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		c, err := g.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		list, err := c.ListBackups(ctx, "")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, b := range list {
			out = append(out, b.ID+"\t"+b.Mode)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func backupCreateCmd(g *globals) *cobra.Command {
	var full bool
	var w waitFlags
	cmd := &cobra.Command{
		Use:               "create VM",
		Short:             "Back a VM up (incremental when possible)",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := opResult[api.Backup](cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.CreateBackup(ctx, args[0], api.BackupRequest{Full: full})
			})
			if err != nil || w.noWait {
				return err
			}
			return printMade(g, b, b.ID, func() {
				fmt.Fprintf(g.out, "backup %s (%s): read %s, stored %s new, in %.1fs\n", b.ID, b.Mode,
					b.Stats.BytesRead.Human(), b.Stats.BytesStored.Human(), b.Stats.Seconds)
				if b.Note != "" && b.Mode == "full" {
					fmt.Fprintf(g.out, "full because: %s\n", b.Note)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&full, "full", false, "read the whole disk even when an incremental backup is possible")
	w.add(cmd.Flags())
	return cmd
}

func backupListCmd(g *globals) *cobra.Command {
	l := listing[api.Backup]{
		wrap:   func(list []api.Backup) any { return api.BackupList{Backups: list} },
		name:   func(b api.Backup) string { return b.ID },
		header: []string{"ID", "VM", "MODE", "CREATED", "SIZE", "DATA", "READ", "STORED", "TIME"},
		row: func(b api.Backup) []string {
			return []string{b.ID, b.VM, b.Mode, b.CreatedAt.Local().Format("2006-01-02 15:04:05"),
				b.Size.Human(), b.DataBytes.Human(), b.Stats.BytesRead.Human(), b.Stats.BytesStored.Human(),
				fmt.Sprintf("%.1fs", b.Stats.Seconds)}
		},
	}
	return &cobra.Command{
		Use:     "list [VM]",
		Aliases: []string{"ls"},
		Short:   "List backups, oldest first",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("expected at most a VM name, got %d arguments", len(args))
			}
			return nil
		},
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			vm := ""
			if len(args) == 1 {
				vm = args[0]
			}
			list, err := c.ListBackups(cmd.Context(), vm)
			if err != nil {
				return err
			}
			return l.print(g, list)
		},
	}
}

func backupShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "show BACKUP",
		Short:             "Show a backup (a VM name shows its newest)",
		Args:              exactArgs(1, "a backup id or VM name"),
		ValidArgsFunction: completeBackups(g),
		RunE:              showRun(g, (*client.Client).GetBackup, showBackup),
	}
}

func showBackup(w io.Writer, b api.Backup) error {
	kv := [][2]string{{"ID", b.ID}, {"VM", b.VM}, {"Created", b.CreatedAt.Local().Format(time.RFC3339) + " (" + age(b.CreatedAt) + " ago)"},
		{"Mode", b.Mode}, {"Parent", orDash(b.Parent)}, {"Note", orDash(b.Note)}, {"Host", orDash(b.Host)},
		{"Size", b.Size.Human()}, {"Data", b.DataBytes.Human()},
		{"Read", b.Stats.BytesRead.Human()}, {"Stored", fmt.Sprintf("%s new (%d new chunks, %d reused)", b.Stats.BytesStored.Human(), b.Stats.ChunksNew, b.Stats.ChunksReused)},
		{"Time", fmt.Sprintf("%.1fs", b.Stats.Seconds)}}
	if err := fields(w, kv); err != nil {
		return err
	}
	fmt.Fprintln(w, "Disks:")
	rows := make([][]string, 0, len(b.Disks))
	for _, d := range b.Disks {
		rows = append(rows, []string{"  " + d.Name, d.Target, d.Size.Human(), d.DataBytes.Human(), fmt.Sprint(d.Chunks)})
	}
	return table(w, []string{"  NAME", "TARGET", "SIZE", "DATA", "CHUNKS"}, rows)
}

func backupRestoreCmd(g *globals) *cobra.Command {
	var req api.RestoreRequest
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Recreate a VM from a backup (its spec and disks)",
		Long: `Restore makes a new VM from the backup's spec, named as the backed-up VM
(which must not exist) or --as NEWNAME, with standalone disks of the
backed-up sizes holding exactly the backed-up bytes. BACKUP is a backup id,
or a VM name for that VM's newest backup.`,
		Args:              exactArgs(1, "a backup id or VM name"),
		ValidArgsFunction: completeBackups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := opResult[api.RestoreResult](cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.RestoreBackup(ctx, args[0], req)
			})
			if err != nil || w.noWait {
				return err
			}
			return printMade(g, res, res.VM, func() {
				where := ""
				if res.Host != "" {
					where = " on " + res.Host
				}
				fmt.Fprintf(g.out, "vm %s restored from %s%s (%s written)\n", res.VM, res.Backup, where, res.BytesWritten.Human())
			})
		},
	}
	cmd.Flags().StringVar(&req.As, "as", "", "name of the restored VM (default: the backed-up VM's)")
	cmd.Flags().StringVar(&req.To, "to", "", "peer host to restore on (restored here, then moved there cold)")
	cmd.Flags().BoolVar(&req.Start, "start", false, "start the VM once restored")
	w.add(cmd.Flags())
	return cmd
}

func backupVerifyCmd(g *globals) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:               "verify [BACKUP...]",
		Short:             "Re-hash backups' chunks and report damage (all backups by default)",
		ValidArgsFunction: completeBackups(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			// a verify that found damage fails, with the report as its result
			_, final, ferr := startOp(cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.VerifyBackups(ctx, args)
			})
			return printReport(g, w, final, ferr, func(rep api.VerifyReport) {
				fmt.Fprintf(g.out, "%d backup(s), %d chunk(s), %s checked\n", rep.Backups, rep.ChunksChecked, rep.BytesChecked.Human())
				for _, d := range rep.Damaged {
					fmt.Fprintf(g.out, "DAMAGED %s (vm %s): %d bad chunk(s)\n", d.ID, d.VM, d.BadChunks)
					for _, p := range d.Problems {
						fmt.Fprintf(g.out, "  %s\n", p)
					}
				}
				if rep.OK {
					fmt.Fprintln(g.out, "ok: every chunk matches its hash")
				}
			})
		},
	}
	w.add(cmd.Flags())
	return cmd
}

func backupPruneCmd(g *globals) *cobra.Command {
	var req api.PruneRequest
	var w waitFlags
	cmd := &cobra.Command{
		Use:   "prune --keep-last N --keep-daily N --keep-weekly N",
		Short: "Remove backups a retention policy does not keep, and the chunks only they used",
		Long: `Prune applies the policy to each VM's backups on its own: it keeps the
newest --keep-last, the newest of each of the last --keep-daily days that
have backups, and of the last --keep-weekly weeks; a backup kept by any rule
stays. The newest backup of a VM always stays. Then it removes every chunk
no remaining backup needs. Backups wait while prune runs.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := opResult[api.PruneResult](cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.PruneBackups(ctx, req)
			})
			if err != nil || w.noWait {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, res)
			}
			rows := [][]string{}
			for _, d := range res.Decisions {
				what := "remove"
				if d.Keep {
					what = "keep"
				}
				rows = append(rows, []string{d.ID, d.VM, what, orDash(strings.Join(d.Reasons, ", "))})
			}
			if err := table(g.out, []string{"ID", "VM", "ACTION", "KEPT BY"}, rows); err != nil {
				return err
			}
			if res.DryRun {
				fmt.Fprintf(g.out, "dry run: %d backup(s) would be removed\n", res.Removed)
			} else {
				fmt.Fprintf(g.out, "removed %d backup(s), %d chunk(s), %s freed\n", res.Removed, res.ChunksRemoved, res.BytesFreed.Human())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.VM, "vm", "", "only this VM's backups")
	f.IntVar(&req.KeepLast, "keep-last", 0, "keep the newest N backups")
	f.IntVar(&req.KeepDaily, "keep-daily", 0, "keep the newest backup of each of the last N days")
	f.IntVar(&req.KeepWeekly, "keep-weekly", 0, "keep the newest backup of each of the last N weeks")
	f.BoolVar(&req.DryRun, "dry-run", false, "say what would be removed, remove nothing")
	_ = cmd.RegisterFlagCompletionFunc("vm", completeVMs(g))
	w.add(f)
	return cmd
}

func backupScheduleCmd(g *globals) *cobra.Command {
	var req api.ScheduleRequest
	var remove bool
	cmd := &cobra.Command{
		Use:   "schedule VM --every 24h [--keep-last N] [--keep-daily N] [--keep-weekly N]",
		Short: "Back a VM up periodically (the daemon runs it; --remove stops it)",
		Long: `The daemon backs the VM up every --every, then prunes the VM's backups
with the --keep-* policy, if one is given. A run missed while the daemon was
down is caught up once when it is back, not once per missed period.`,
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if remove {
				if err := c.DeleteBackupSchedule(cmd.Context(), args[0]); err != nil {
					return err
				}
				if !g.quiet {
					fmt.Fprintf(g.out, "vm %s is no longer backed up periodically\n", args[0])
				}
				return nil
			}
			if req.Every == "" {
				return usagef("--every is required (or --remove)")
			}
			sc, err := c.SetBackupSchedule(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, sc)
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "vm %s is backed up every %s; next run %s\n", sc.VM, sc.Every, sc.NextRun.Local().Format(time.RFC3339))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Every, "every", "", "how often, e.g. 24h, 6h, 90m")
	f.IntVar(&req.KeepLast, "keep-last", 0, "after each run keep the newest N backups")
	f.IntVar(&req.KeepDaily, "keep-daily", 0, "after each run keep the newest backup of each of the last N days")
	f.IntVar(&req.KeepWeekly, "keep-weekly", 0, "after each run keep the newest backup of each of the last N weeks")
	f.BoolVar(&remove, "remove", false, "stop backing the VM up periodically")
	return cmd
}

func backupSchedulesCmd(g *globals) *cobra.Command {
	return listCmd(g, listing[api.BackupSchedule]{
		use:    "schedules",
		short:  "List backup schedules",
		fetch:  (*client.Client).ListBackupSchedules,
		wrap:   func(list []api.BackupSchedule) any { return api.BackupScheduleList{Schedules: list} },
		header: []string{"VM", "EVERY", "KEEP", "LAST RUN", "LAST BACKUP", "NEXT RUN", "LAST ERROR"},
		row: func(s api.BackupSchedule) []string {
			keep := []string{}
			if s.KeepLast > 0 {
				keep = append(keep, fmt.Sprintf("last %d", s.KeepLast))
			}
			if s.KeepDaily > 0 {
				keep = append(keep, fmt.Sprintf("daily %d", s.KeepDaily))
			}
			if s.KeepWeekly > 0 {
				keep = append(keep, fmt.Sprintf("weekly %d", s.KeepWeekly))
			}
			last := "-"
			if !s.LastRun.IsZero() {
				last = age(s.LastRun) + " ago"
			}
			return []string{s.VM, s.Every, orDash(strings.Join(keep, ", ")), last, orDash(s.LastBackup),
				s.NextRun.Local().Format("2006-01-02 15:04"), orDash(s.LastError)}
		},
	})
}
