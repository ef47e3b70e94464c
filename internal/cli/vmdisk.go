package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
)

func vmDiskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "disk",
		Short: "Attach and detach volumes, on running (hot-plug) or stopped VMs",
	}
	cmd.AddCommand(vmDiskAttachCmd(g), vmDiskDetachCmd(g))
	return cmd
}

func vmDiskAttachCmd(g *globals) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "attach VM POOL/VOLUME [--name DISK]",
		Short: "Attach a volume to a VM: the running guest sees a new /dev/vdX",
		Args:  exactArgs(2, "a VM and a POOL/VOLUME"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return completeVMs(g)(cmd, args, s)
			}
			return completeVolumes(g)(cmd, args, s)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := splitVol(args[1]); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			v, err := c.AttachDisk(cmd.Context(), args[0], api.DiskAttach{Volume: args[1], Name: name})
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, v)
			}
			for _, d := range v.Disks {
				if d.Pool+"/"+d.Volume == args[1] && !g.quiet {
					fmt.Fprintf(g.out, "volume %s attached to vm %s as disk %s (%s)\n", args[1], args[0], d.Name, d.Target)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "disk name in the VM (default: from the volume name)")
	return cmd
}

func vmDiskDetachCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "detach VM DISK|POOL/VOLUME",
		Short:             "Detach an attached volume from a VM (the volume stays)",
		Args:              exactArgs(2, "a VM and a disk name or POOL/VOLUME"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			disk := args[1]
			if _, _, err := splitVol(disk); err == nil {
				v, err := c.GetVM(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				for _, d := range v.Disks {
					if d.Pool+"/"+d.Volume == disk {
						disk = d.Name
					}
				}
			}
			v, err := c.DetachDisk(cmd.Context(), args[0], disk)
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, v)
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "disk %s detached from vm %s\n", args[1], args[0])
			}
			return nil
		},
	}
}
