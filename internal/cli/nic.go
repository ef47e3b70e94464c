package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func vmNICCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nic",
		Short: "Plug NICs into VMs and out of them, running or stopped",
		Long: `A VM's NICs are in its spec (nics: [{network: NAME, mac: ..., model: virtio}]).
These commands change them on a running VM (hot-plug, and in its definition)
or a stopped one (its definition), and keep the VM's spec in step.`,
	}
	cmd.AddCommand(vmNICAttachCmd(g), vmNICDetachCmd(g), vmNICListCmd(g))
	return cmd
}

func vmNICAttachCmd(g *globals) *cobra.Command {
	var nic api.NIC
	var w waitFlags
	cmd := &cobra.Command{
		Use:               "attach VM --network NET [--mac MAC] [--model virtio]",
		Short:             "Plug a new NIC into a VM",
		Example:           "  godwit vm nic attach web1 --network lab\n  godwit vm nic attach web1 --network lab --mac 52:54:00:00:00:11",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if nic.Network == "" {
				return usagef("--network is required")
			}
			v, err := opResult[api.VM](cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.AttachNIC(ctx, args[0], nic)
			})
			if err != nil || w.noWait {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, v)
			}
			if len(v.NICs) > 0 && !g.quiet {
				n := v.NICs[len(v.NICs)-1]
				fmt.Fprintf(g.out, "vm %s: NIC %s plugged into network %s\n", args[0], n.MAC, n.Network)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&nic.Network, "network", "", "the network to plug into")
	cmd.Flags().StringVar(&nic.MAC, "mac", "", "MAC address (default: a random one in 52:54:00)")
	cmd.Flags().StringVar(&nic.Model, "model", "", "virtio (default), e1000, e1000e or rtl8139")
	_ = cmd.RegisterFlagCompletionFunc("network", completeNetworks(g))
	w.add(cmd.Flags())
	return cmd
}

func vmNICDetachCmd(g *globals) *cobra.Command {
	var w waitFlags
	cmd := &cobra.Command{
		Use:               "detach VM MAC|NETWORK",
		Short:             "Unplug a VM's NIC, named by its MAC or its network",
		Args:              exactArgs(2, "a VM name and a NIC's MAC or network"),
		ValidArgsFunction: completeVMs(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := startOp(cmd.Context(), g, w, func(c *client.Client, ctx context.Context) (api.Operation, error) {
				return c.DetachNIC(ctx, args[0], args[1])
			}); err != nil || w.noWait {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "vm %s: NIC %s unplugged\n", args[0], args[1])
			}
			return nil
		},
	}
	w.add(cmd.Flags())
	return cmd
}

func vmNICListCmd(g *globals) *cobra.Command {
	nics := func(c *client.Client, ctx context.Context, vm string) ([]api.VMNIC, error) {
		v, err := c.GetVM(ctx, vm)
		return v.NICs, err
	}
	return &cobra.Command{
		Use:               "list VM",
		Aliases:           []string{"ls"},
		Short:             "List a VM's NICs with the guest's addresses",
		Args:              exactArgs(1, "a VM name"),
		ValidArgsFunction: completeVMs(g),
		RunE: showRun(g, nics, func(w io.Writer, nics []api.VMNIC) error {
			return nicTable(w, nics, "")
		}),
	}
}

// nicTable prints NICs, each line indented by indent.
func nicTable(w io.Writer, nics []api.VMNIC, indent string) error {
	rows := make([][]string, 0, len(nics))
	for _, n := range nics {
		rows = append(rows, []string{indent + n.MAC, n.Network, n.Model, orDash(n.Device), orDash(addressList(n.Addresses, true))})
	}
	return table(w, []string{indent + "MAC", "NETWORK", "MODEL", "DEVICE", "ADDRESSES"}, rows)
}

// addressList joins addresses; with sources, each says where it is from.
func addressList(addrs []api.Address, sources bool) string {
	var out []string
	for _, a := range addrs {
		s := a.IP
		if sources {
			s += " (" + a.Source + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// vmAddresses are a VM's IPv4 addresses without prefix, for vm list.
func vmAddresses(v api.VM) string {
	var out []string
	for _, n := range v.NICs {
		for _, a := range n.Addresses {
			ip, _, _ := strings.Cut(a.IP, "/")
			if !strings.Contains(ip, ":") {
				out = append(out, ip)
			}
		}
	}
	return strings.Join(out, ",")
}
