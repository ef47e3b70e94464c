package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
)

func newPoolCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Storage pools: where volumes live",
		Long: `Storage pools are libvirt's: a directory (dir), a filesystem on a block
device that libvirt mounts (fs), an LVM volume group (logical) or an NFS
export (netfs). 'pool list' shows every libvirt pool; the daemon's own pool,
where VM disks go, is marked default. --shared marks a pool whose path is
the same shared filesystem on every host (migration then copies no disks).`,
	}
	cmd.AddCommand(poolCreateCmd(g), poolListCmd(g), poolShowCmd(g), poolDeleteCmd(g))
	return cmd
}

func completePools(g *globals) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := g.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		pools, err := c.ListPools(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names := make([]string, 0, len(pools))
		for _, p := range pools {
			names = append(names, p.Name+"\t"+p.Type)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func poolCreateCmd(g *globals) *cobra.Command {
	var req api.PoolCreate
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a storage pool",
		Example: `  godwit pool create fast --path /srv/fast                      # dir (default)
  godwit pool create data --type fs --device /dev/sdb1 --path /srv/data --build
  godwit pool create vg0 --type logical --device /dev/sdc --build
  godwit pool create nfs --type netfs --source-host nas --export /vms --path /srv/nfs --shared`,
		Args: exactArgs(1, "a pool name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.CreatePool(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, p)
			}
			if g.quiet {
				fmt.Fprintln(g.out, p.Name)
				return nil
			}
			fmt.Fprintf(g.out, "pool %s created (%s at %s, %s available)\n", p.Name, p.Type, p.Path, p.Available.Human())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Type, "type", "dir", "dir, fs, logical or netfs")
	f.StringVar(&req.Path, "path", "", "directory (dir), mount point (fs, netfs); logical: /dev/VG")
	f.StringVar(&req.Device, "device", "", "block device: fs (the filesystem), logical (the PV)")
	f.StringVar(&req.Format, "format", "", "fs: filesystem type (default auto; ext4 with --build)")
	f.StringVar(&req.Host, "source-host", "", "netfs: the NFS server")
	f.StringVar(&req.Export, "export", "", "netfs: the exported directory")
	f.StringVar(&req.VG, "vg", "", "logical: volume group name (default: the pool name)")
	f.BoolVar(&req.Build, "build", false, "fs: mkfs when the device has no filesystem; logical: create the VG on --device")
	f.BoolVar(&req.Shared, "shared", false, "the path is the same shared filesystem on every host")
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{"dir", "fs", "logical", "netfs"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func poolListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List storage pools with their space",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			pools, err := c.ListPools(cmd.Context())
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, api.PoolList{Pools: pools})
			}
			if g.quiet {
				for _, p := range pools {
					fmt.Fprintln(g.out, p.Name)
				}
				return nil
			}
			rows := make([][]string, 0, len(pools))
			for _, p := range pools {
				rows = append(rows, []string{p.Name, p.Type, poolState(p), flags(p), p.Capacity.Human(), p.Allocation.Human(), p.Available.Human(), fmt.Sprint(p.Volumes), p.Path})
			}
			return table(g.out, []string{"NAME", "TYPE", "STATE", "FLAGS", "CAPACITY", "ALLOCATION", "AVAILABLE", "VOLUMES", "PATH"}, rows)
		},
	}
}

func poolState(p api.Pool) string {
	if p.Active {
		return "active"
	}
	return "inactive"
}

func flags(p api.Pool) string {
	s := ""
	if p.Default {
		s += "default,"
	}
	if p.Shared {
		s += "shared,"
	}
	if p.Autostart {
		s += "autostart,"
	}
	if s == "" {
		return "-"
	}
	return s[:len(s)-1]
}

func poolShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "show NAME",
		Short:             "Show a storage pool",
		Args:              exactArgs(1, "a pool name"),
		ValidArgsFunction: completePools(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.GetPool(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, p)
			}
			return fields(g.out, [][2]string{
				{"Name", p.Name}, {"Type", p.Type}, {"Path", p.Path}, {"Source", orDash(p.Source)},
				{"State", poolState(p)}, {"Flags", flags(p)}, {"Capacity", p.Capacity.Human()},
				{"Allocation", p.Allocation.Human()}, {"Available", p.Available.Human()}, {"Volumes", fmt.Sprint(p.Volumes)},
			})
		},
	}
}

func poolDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete an empty storage pool",
		Args:              exactArgs(1, "a pool name"),
		ValidArgsFunction: completePools(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeletePool(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "pool %s deleted\n", args[0])
			}
			return nil
		},
	}
}
