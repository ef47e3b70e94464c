package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newHostCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "This host and its peers: show, list, join, token, remove",
		Long: `Hosts running godwit daemons join each other as peers, then migrate VMs
between them. To join host B from host A (both daemons started with
--listen ADDR:PORT):

  on B:  godwit host token                     # prints a one-time token
  on A:  godwit host add B https://B:PORT --token TOKEN

The daemons then trust each other's certificate authority and talk over
mutual TLS; libvirtd never listens on the network.`,
	}
	cmd.AddCommand(hostListCmd(g), hostAddCmd(g), hostRemoveCmd(g), hostTokenCmd(g), hostEvacuateCmd(g), hostDrainCmd(g), hostUndrainCmd(g))
	cmd.AddCommand(hostCheckCmd(g), hostTuneCmd(g))
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
			if h.Cluster != "" {
				kv = append(kv, [2]string{"Cluster", h.Cluster})
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

func hostListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List this host and its peers: reachability, free memory, CPUs, versions",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListPeers(cmd.Context())
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, l)
			}
			row := func(name, url, state string, h *api.Host) []string {
				if h == nil {
					return []string{name, url, state, "-", "-", "-", "-", "-"}
				}
				return []string{name, orDash(url), state, h.MemoryFree.Human() + "/" + h.Memory.Human(), fmt.Sprint(h.CPUs),
					orDash(h.CPUModel), orDash(h.Libvirt.Version) + "/" + orDash(h.Libvirt.QEMUVersion), fmt.Sprint(h.VMs)}
			}
			rows := [][]string{row(l.Self.Name+" (this host)", l.Self.URL, "ok", &l.Self)}
			for _, p := range l.Peers {
				state := "ok"
				if !p.Reachable {
					state = "UNREACHABLE: " + p.Error
				}
				rows = append(rows, row(p.Name, p.URL, state, p.Host))
			}
			return table(g.out, []string{"NAME", "URL", "STATE", "FREE/MEMORY", "CPUS", "CPU MODEL", "LIBVIRT/QEMU", "VMS"}, rows)
		},
	}
}

func hostAddCmd(g *globals) *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "add NAME URL --token TOKEN",
		Short: "Join another host as a peer, with a token from 'godwit host token' there",
		Args:  exactArgs(2, "a host name and its URL (https://HOST:PORT)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return usagef("--token is required (run 'godwit host token' on %s)", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.AddPeer(cmd.Context(), api.PeerAdd{Name: args[0], URL: args[1], Token: token})
			if err != nil {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(g.out, "host %s (%s) is now a peer\n", p.Name, p.URL)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "one-time token printed by 'godwit host token' on the other host")
	return cmd
}

func hostRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Forget a peer (on this host)",
		Args:  exactArgs(1, "a host name"),
		RunE:  deleteRun(g, "host", "removed", (*client.Client).RemovePeer),
	}
}

func hostTokenCmd(g *globals) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a one-time token another host joins this one with",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.CreateJoinToken(cmd.Context(), ttl)
			if err != nil {
				return err
			}
			return printMade(g, t, t.Token, func() {
				fmt.Fprintf(g.out, "%s\n\nValid once, until %s. On the other host run:\n  godwit host add NAME URL --token %s\n",
					t.Token, t.ExpiresAt.Local().Format(time.RFC3339), t.Token)
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 10*time.Minute, "how long the token is valid")
	return cmd
}
