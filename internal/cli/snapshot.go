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

func newSnapshotCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshot",
		Aliases: []string{"snap"},
		Short:   "Take, list, revert to and delete VM snapshots",
		Long: `Snapshots are internal by default: kept inside the VM's qcow2 disks, with
the guest's memory when the VM runs (libvirt cannot snapshot a running VM's
disks internally without it), so a revert resumes the guest where it was.
--disk-only takes an external snapshot instead: each disk continues in a new
qcow2 overlay next to its volume and the old file holds the snapshot; the
guest keeps running. Deleting an external snapshot merges its overlay back.`,
		Example: `  godwit snapshot create web1 before-upgrade
  godwit snapshot list web1
  godwit snapshot revert web1 before-upgrade
  godwit snapshot create web1 nightly --disk-only --quiesce
  godwit snapshot delete web1 nightly`,
	}
	cmd.AddCommand(snapshotCreateCmd(g), snapshotListCmd(g), snapshotShowCmd(g), snapshotRevertCmd(g), snapshotDeleteCmd(g))
	return cmd
}

// completeSnapshots completes a VM name, then its snapshots.
func completeSnapshots(g *globals) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	vms := completeVMs(g)
	return func(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return vms(cmd, args, s)
		}
		if len(args) > 1 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := g.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		list, err := c.ListSnapshots(ctx, args[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, sn := range list {
			out = append(out, sn.Name+"\t"+sn.Kind)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func snapshotCreateCmd(g *globals) *cobra.Command {
	var req api.SnapshotRequest
	var w waitFlags
	cmd := &cobra.Command{
		Use:               "create VM NAME",
		Short:             "Take a snapshot (internal; --memory keeps a running guest's memory; --disk-only is external)",
		Args:              exactArgs(2, "a VM name and a snapshot name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[1]
			sn, err := opResult[api.Snapshot](cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.CreateSnapshot(ctx, args[0], req)
			})
			if err != nil || w.noWait {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, sn)
			}
			if !g.quiet {
				what := sn.Kind
				if sn.Memory {
					what += ", with memory"
				}
				fmt.Fprintf(g.out, "snapshot %s of vm %s taken (%s)\n", sn.Name, args[0], what)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&req.Memory, "memory", false, "keep the running guest's memory (a revert resumes it)")
	f.BoolVar(&req.DiskOnly, "disk-only", false, "disks only, as external qcow2 overlays; the guest keeps running")
	f.BoolVar(&req.Quiesce, "quiesce", false, "with --disk-only: freeze the guest's filesystems first (guest agent)")
	f.StringVar(&req.Description, "description", "", "a note kept with the snapshot")
	w.add(f)
	return cmd
}

func snapshotListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "list VM",
		Aliases:           []string{"ls"},
		Short:             "List a VM's snapshots as a tree",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.ListSnapshots(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, api.SnapshotList{Snapshots: list})
			}
			if g.quiet {
				for _, sn := range list {
					fmt.Fprintln(g.out, sn.Name)
				}
				return nil
			}
			return snapshotTree(g.out, list)
		},
	}
}

// snapshotTree prints snapshots under their parents, oldest first.
func snapshotTree(w io.Writer, list []api.Snapshot) error {
	byName := map[string]api.Snapshot{}
	children := map[string][]string{}
	var roots []string
	for _, sn := range list {
		byName[sn.Name] = sn
	}
	for _, sn := range list {
		if _, ok := byName[sn.Parent]; sn.Parent != "" && ok {
			children[sn.Parent] = append(children[sn.Parent], sn.Name)
		} else {
			roots = append(roots, sn.Name)
		}
	}
	var rows [][]string
	var walk func(name, prefix, branch string)
	walk = func(name, prefix, branch string) {
		sn := byName[name]
		cur := ""
		if sn.Current {
			cur = "*"
		}
		mem := "no"
		if sn.Memory {
			mem = "yes"
		}
		rows = append(rows, []string{prefix + branch + sn.Name, sn.Kind, orDash(sn.VMState), mem, sn.Size.Human(),
			sn.CreatedAt.Local().Format("2006-01-02 15:04:05"), cur})
		kids := children[name]
		next := prefix
		switch branch {
		case "├─ ":
			next += "│  "
		case "└─ ":
			next += "   "
		}
		for i, k := range kids {
			b := "├─ "
			if i == len(kids)-1 {
				b = "└─ "
			}
			walk(k, next, b)
		}
	}
	for _, r := range roots {
		walk(r, "", "")
	}
	return table(w, []string{"NAME", "KIND", "VM STATE", "MEMORY", "SIZE", "CREATED", "CURRENT"}, rows)
}

func snapshotShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "show VM SNAPSHOT",
		Short:             "Show a snapshot",
		Args:              exactArgs(2, "a VM name and a snapshot name"),
		ValidArgsFunction: completeSnapshots(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			sn, err := c.GetSnapshot(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return printObject(g, sn, showSnapshot)
		},
	}
}

func showSnapshot(w io.Writer, sn api.Snapshot) error {
	return fields(w, [][2]string{{"Name", sn.Name}, {"VM", sn.VM}, {"Kind", sn.Kind}, {"Memory", fmt.Sprint(sn.Memory)},
		{"VM state", orDash(sn.VMState)}, {"Parent", orDash(sn.Parent)}, {"Children", orDash(strings.Join(sn.Children, ", "))},
		{"Created", sn.CreatedAt.Local().Format(time.RFC3339) + " (" + age(sn.CreatedAt) + " ago)"},
		{"Current", fmt.Sprint(sn.Current)}, {"Size", sn.Size.Human()}, {"Description", orDash(sn.Description)},
		{"Files", orDash(strings.Join(sn.Files, ", "))}})
}

// snapshotOpCmd is a snapshot action that runs as an operation.
func snapshotOpCmd(g *globals, use, short, done string, call func(c *client.Client, ctx context.Context, vm, snap string) (api.Operation, error)) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:               use + " VM SNAPSHOT",
		Short:             short,
		Args:              exactArgs(2, "a VM name and a snapshot name"),
		ValidArgsFunction: completeSnapshots(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := startOp(cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return call(c, ctx, args[0], args[1])
			}); err != nil || w.noWait {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "vm %s %s snapshot %s\n", args[0], done, args[1])
			}
			return nil
		},
	}
	w.add(cmd.Flags())
	return cmd
}

func snapshotRevertCmd(g *globals) *cobra.Command {
	return snapshotOpCmd(g, "revert", "Revert a VM to a snapshot (running or stopped)", "reverted to", (*client.Client).RevertSnapshot)
}

func snapshotDeleteCmd(g *globals) *cobra.Command {
	cmd := snapshotOpCmd(g, "delete", "Delete a snapshot (an external one is merged back)", "deleted", (*client.Client).DeleteSnapshot)
	cmd.Aliases = []string{"rm"}
	return cmd
}
