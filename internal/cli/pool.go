package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
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

func completePools(g *globals) completion {
	return firstArg(completeNames(g, (*client.Client).ListPools, func(p api.Pool) string { return p.Name + "\t" + p.Type }))
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
			return printMade(g, p, p.Name, func() {
				fmt.Fprintf(g.out, "pool %s created (%s at %s, %s available)\n", p.Name, p.Type, p.Path, p.Available.Human())
			})
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
	return listCmd(g, listing[api.Pool]{
		use:    "list",
		short:  "List storage pools with their space",
		fetch:  (*client.Client).ListPools,
		wrap:   func(pools []api.Pool) any { return api.PoolList{Pools: pools} },
		name:   func(p api.Pool) string { return p.Name },
		header: []string{"NAME", "TYPE", "STATE", "FLAGS", "CAPACITY", "ALLOCATION", "AVAILABLE", "VOLUMES", "PATH"},
		row: func(p api.Pool) []string {
			return []string{p.Name, p.Type, activeState(p.Active), flags(p), p.Capacity.Human(), p.Allocation.Human(), p.Available.Human(), fmt.Sprint(p.Volumes), p.Path}
		},
	})
}

// activeState names libvirt's active flag of a pool or network.
func activeState(active bool) string {
	if active {
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
		RunE:              showRun(g, (*client.Client).GetPool, showPool),
	}
}

func showPool(w io.Writer, p api.Pool) error {
	return fields(w, [][2]string{
		{"Name", p.Name}, {"Type", p.Type}, {"Path", p.Path}, {"Source", orDash(p.Source)},
		{"State", activeState(p.Active)}, {"Flags", flags(p)}, {"Capacity", p.Capacity.Human()},
		{"Allocation", p.Allocation.Human()}, {"Available", p.Available.Human()}, {"Volumes", fmt.Sprint(p.Volumes)},
	})
}

func poolDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Short:             "Delete an empty storage pool",
		Args:              exactArgs(1, "a pool name"),
		ValidArgsFunction: completePools(g),
		RunE:              deleteRun(g, "pool", "deleted", (*client.Client).DeletePool),
	}
}
