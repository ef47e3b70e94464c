package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func newHostCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "The hosts godwit runs on",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Show this host: libvirt, accelerator, resources, warnings",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			h, err := c.Host(cmd.Context())
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, h)
			}
			lv := "connected"
			if !h.Libvirt.Connected {
				lv = "NOT connected: " + h.Libvirt.Error
			}
			accel := h.Accel.Chosen
			if accel == "" {
				accel = "undecided"
			}
			kv := [][2]string{
				{"Name", h.Name}, {"Hostname", orDash(h.Hostname)}, {"godwit", h.Version},
				{"libvirt", fmt.Sprintf("%s %s (QEMU %s)", h.Libvirt.URI, lv, orDash(h.Libvirt.QEMUVersion))},
				{"libvirt version", orDash(h.Libvirt.Version)},
				{"Accelerator", fmt.Sprintf("%s (setting %s): %s", accel, h.Accel.Setting, h.Accel.Reason)},
				{"CPUs", fmt.Sprint(h.CPUs)},
				{"Memory", fmt.Sprintf("%s free of %s", h.MemoryFree.Human(), h.Memory.Human())},
				{"State dir", h.StateDir}, {"Disk pool", h.Pool + " at " + h.PoolPath},
				{"Networks", "libvirt networks " + h.NetworkPrefix + "-NAME"}, {"VMs", fmt.Sprint(h.VMs)},
			}
			if err := fields(g.out, kv); err != nil {
				return err
			}
			for _, w := range h.Warnings {
				fmt.Fprintln(g.out, "WARNING: "+strings.TrimSpace(w))
			}
			return nil
		},
	})
	return cmd
}
