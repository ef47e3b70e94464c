package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "network",
		Aliases: []string{"net"},
		Short:   "Create, list and delete networks for VM NICs",
		Long: `Networks that VM NICs plug into (nics: [{network: NAME}] in a VM spec):

  nat       a private subnet on a bridge of its own, with DHCP, NATed out
  isolated  the same without forwarding: guests reach each other and the
            host's DHCP/DNS only
  bridge    an existing Linux bridge of the host (--bridge br0)
  ovs       an existing Open vSwitch bridge (--bridge ovsbr0)

A network is a libvirt network named PREFIX-NAME (see 'godwit host show'),
so that daemons sharing a libvirtd never collide. The daemon makes a
'default' NAT network on a free /24 at its first start (unless started
with --no-default-network). Libvirt networks godwit did not create are
listed as unmanaged and left alone.`,
	}
	cmd.AddCommand(networkCreateCmd(g), networkListCmd(g), networkShowCmd(g), networkDeleteCmd(g))
	return cmd
}

// completeNetworks completes the names of the networks godwit manages.
func completeNetworks(g *globals) completion {
	managed := func(c *client.Client, ctx context.Context) ([]api.Network, error) {
		nets, err := c.ListNetworks(ctx)
		return slices.DeleteFunc(nets, func(n api.Network) bool { return !n.Managed }), err
	}
	return firstArg(completeNames(g, managed, func(n api.Network) string { return n.Name + "\t" + n.Type + " " + n.Subnet }))
}

// readNetworkSpec reads a network spec file strictly (unknown fields are
// errors), "-" for stdin.
func readNetworkSpec(path string, stdin io.Reader) (api.NetworkSpec, error) {
	var spec api.NetworkSpec
	b, err := readInput(path, stdin)
	if err != nil {
		return spec, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		if errors.Is(err, io.EOF) {
			return spec, fmt.Errorf("%s: the spec is empty", path)
		}
		return spec, fmt.Errorf("%s: %s", path, yamlError(err))
	}
	return spec, nil
}

func networkCreateCmd(g *globals) *cobra.Command {
	var file string
	var spec api.NetworkSpec
	var dhcpStart, dhcpEnd string
	var noDHCP bool
	var hosts []string
	cmd := &cobra.Command{
		Use:   "create NAME [flags] | create -f SPEC.yaml",
		Short: "Create a network (started, and started again with libvirtd)",
		Example: `  godwit network create lab --subnet 10.20.30.0/24
  godwit network create lab --subnet 10.20.30.0/24 --dhcp-start 10.20.30.100 --dhcp-end 10.20.30.199 \
      --host 52:54:00:00:00:11=10.20.30.11=web1
  godwit network create quiet --type isolated
  godwit network create lan --type bridge --bridge br0
  godwit network create -f lab.yaml     # name, type, subnet, gateway, dhcp: {start, end, hosts: [{mac, ip, name}]}`,
		Args: func(cmd *cobra.Command, args []string) error {
			if file != "" && len(args) > 0 {
				return usagef("give the name in the spec file or as an argument, not both")
			}
			if file == "" && len(args) != 1 {
				return usagef("expected a network name (or -f SPEC.yaml), got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				if cmd.Flags().NFlag() > 1 {
					return usagef("-f takes everything from the file; drop the other flags")
				}
				var err error
				if spec, err = readNetworkSpec(file, cmd.InOrStdin()); err != nil {
					return err
				}
			} else {
				spec.Name = args[0]
				if dhcpStart != "" || dhcpEnd != "" || len(hosts) > 0 || noDHCP {
					spec.DHCP = &api.DHCP{Start: dhcpStart, End: dhcpEnd}
					if noDHCP {
						off := false
						spec.DHCP.Enabled = &off
					}
					for _, h := range hosts {
						parts := strings.Split(h, "=")
						if len(parts) < 2 || len(parts) > 3 {
							return usagef("--host %q: want MAC=IP or MAC=IP=NAME", h)
						}
						dh := api.DHCPHost{MAC: parts[0], IP: parts[1]}
						if len(parts) == 3 {
							dh.Name = parts[2]
						}
						spec.DHCP.Hosts = append(spec.DHCP.Hosts, dh)
					}
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := c.CreateNetwork(cmd.Context(), spec)
			if err != nil {
				return err
			}
			return printMade(g, n, n.Name, func() {
				where := n.Subnet
				if where == "" {
					where = "bridge " + n.Bridge
				}
				fmt.Fprintf(g.out, "network %s created: %s, %s (libvirt network %s)\n", n.Name, n.Type, where, n.Libvirt)
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the network spec (YAML or JSON), - for stdin")
	f.StringVar(&spec.Type, "type", "", "nat (default), isolated, bridge or ovs")
	f.StringVar(&spec.Subnet, "subnet", "", "IPv4 subnet, e.g. 10.20.30.0/24 (nat, isolated; default a free /24)")
	f.StringVar(&spec.Gateway, "gateway", "", "the host's address on the subnet (default its first)")
	f.StringVar(&dhcpStart, "dhcp-start", "", "first address DHCP hands out")
	f.StringVar(&dhcpEnd, "dhcp-end", "", "last address DHCP hands out")
	f.BoolVar(&noDHCP, "no-dhcp", false, "serve no DHCP")
	// Not --host: that is every command's daemon URL.
	f.StringArrayVar(&hosts, "lease", nil, "a static lease MAC=IP[=NAME]; repeat for more")
	f.StringVar(&spec.Bridge, "bridge", "", "the existing host bridge (bridge and ovs networks)")
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{"nat", "isolated", "bridge", "ovs"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func networkListCmd(g *globals) *cobra.Command {
	return listCmd(g, listing[api.Network]{
		use:     "list",
		aliases: []string{"ls"},
		short:   "List networks (including libvirt networks godwit did not create)",
		fetch:   (*client.Client).ListNetworks,
		wrap:    func(nets []api.Network) any { return api.NetworkList{Networks: nets} },
		name:    func(n api.Network) string { return n.Name },
		header:  []string{"NAME", "TYPE", "SUBNET", "BRIDGE", "STATE", "VMS", "LIBVIRT", "NOTE"},
		row: func(n api.Network) []string {
			note := n.Error
			if !n.Managed {
				note = "unmanaged (not created by godwit)"
			}
			vms := "-"
			if n.Managed {
				vms = fmt.Sprint(len(n.VMs))
			}
			return []string{n.Name, orDash(n.Type), orDash(n.Subnet), orDash(n.Bridge), activeState(n.Active), vms, n.Libvirt, note}
		},
	})
}

func networkShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "show NAME",
		Short:             "Show a network with its DHCP leases",
		Args:              exactArgs(1, "a network name"),
		ValidArgsFunction: completeNetworks(g),
		RunE:              showRun(g, (*client.Client).GetNetwork, showNetwork),
	}
}

func showNetwork(w io.Writer, n api.Network) error {
	state := activeState(n.Active)
	if n.Error != "" {
		state += " (" + n.Error + ")"
	}
	kv := [][2]string{{"Name", n.Name}, {"Type", orDash(n.Type)}, {"State", state}, {"Libvirt", n.Libvirt}, {"Bridge", orDash(n.Bridge)}}
	if !n.Managed {
		kv = append(kv, [2]string{"Managed", "no: a libvirt network godwit did not create (read-only here)"})
	}
	if n.Subnet != "" {
		kv = append(kv, [2]string{"Subnet", n.Subnet}, [2]string{"Gateway", orDash(n.Gateway)})
	}
	if n.Managed && (n.Type == api.NetworkNAT || n.Type == api.NetworkIsolated) {
		dhcp := "off"
		if n.DHCP != nil {
			dhcp = n.DHCP.Start + " - " + n.DHCP.End
		}
		kv = append(kv, [2]string{"DHCP", dhcp})
	}
	if n.Managed {
		kv = append(kv, [2]string{"Autostart", fmt.Sprint(n.Autostart)}, [2]string{"VMs", orDash(strings.Join(n.VMs, ", "))})
	}
	if err := fields(w, kv); err != nil {
		return err
	}
	if n.DHCP != nil && len(n.DHCP.Hosts) > 0 {
		fmt.Fprintln(w, "Static leases:")
		rows := make([][]string, 0, len(n.DHCP.Hosts))
		for _, h := range n.DHCP.Hosts {
			rows = append(rows, []string{"  " + h.MAC, h.IP, orDash(h.Name)})
		}
		if err := table(w, []string{"  MAC", "IP", "NAME"}, rows); err != nil {
			return err
		}
	}
	if len(n.Leases) > 0 {
		fmt.Fprintln(w, "Leases:")
		rows := make([][]string, 0, len(n.Leases))
		for _, l := range n.Leases {
			rows = append(rows, []string{"  " + l.MAC, l.IP, orDash(l.Hostname), l.Expires.Local().Format(time.TimeOnly)})
		}
		return table(w, []string{"  MAC", "IP", "HOSTNAME", "EXPIRES"}, rows)
	}
	return nil
}

func networkDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Aliases:           []string{"rm"},
		Short:             "Delete a network no VM uses",
		Args:              exactArgs(1, "a network name"),
		ValidArgsFunction: completeNetworks(g),
		RunE:              deleteRun(g, "network", "deleted", (*client.Client).DeleteNetwork),
	}
}
