package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Several hosts as one: init, join, status, remove",
		Long: `A cluster keeps its hosts' state in one replicated store (an etcd embedded
in each daemon) instead of each host's own file, so that any host serves the
whole API: it lists every host's VMs and forwards a request for a VM to the
host that owns it. Up to 3 (or 5) hosts vote in the store; later hosts use it
as clients. A host keeps its VMs when it starts or joins a cluster.

  on A:  godwit cluster init                  # A is the first member
  on A:  godwit host token                    # a one-time token
  on B:  godwit cluster join https://A:PORT --token TOKEN

Both daemons must run with --listen ADDR:PORT; the store member listens on
the same address, ports 2380 and 2379 (--cluster-peer-port,
--cluster-client-port).`,
	}
	cmd.AddCommand(clusterInitCmd(g), clusterJoinCmd(g), clusterStatusCmd(g), clusterRemoveCmd(g))
	return cmd
}

func clusterInitCmd(g *globals) *cobra.Command {
	var voters int
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Make this host the first member of a new cluster (its VMs stay)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if voters != 3 && voters != 5 {
				return usagef("--voters: %d; a cluster has 3 or 5 voters", voters)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.InitCluster(cmd.Context(), api.ClusterInit{MaxVoters: voters})
			if err != nil {
				return err
			}
			return printMade(g, st, st.ID, func() {
				fmt.Fprintf(g.out, "cluster %s made: %s is its first voter (of %d). To add a host, run 'godwit host token' here, then on that host:\n  godwit cluster join %s --token TOKEN\n",
					st.ID, st.Self, voters, selfURL(st))
			})
		},
	}
	cmd.Flags().IntVar(&voters, "voters", 3, "how many voting members the cluster takes, 3 or 5 (later hosts join as clients)")
	return cmd
}

func selfURL(st api.ClusterStatus) string {
	for _, h := range st.Hosts {
		if h.Name == st.Self && h.URL != "" {
			return h.URL
		}
	}
	return "https://THIS-HOST:PORT"
}

func clusterJoinCmd(g *globals) *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "join URL --token TOKEN",
		Short: "Join the cluster of the host at URL, with a token from 'godwit host token' there",
		Args:  exactArgs(1, "the URL of a cluster host (https://HOST:PORT)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				return usagef("--token is required (run 'godwit host token' on the host at %s)", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			t0 := time.Now()
			st, err := c.JoinCluster(cmd.Context(), api.ClusterJoin{URL: args[0], Token: token})
			if err != nil {
				return err
			}
			return printMade(g, st, st.ID, func() {
				fmt.Fprintf(g.out, "joined cluster %s as a %s in %s (%d hosts)\n", st.ID, st.Role, time.Since(t0).Round(100*time.Millisecond), len(st.Hosts))
			})
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "one-time token printed by 'godwit host token' on the cluster host")
	return cmd
}

func clusterStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: members, leader, health, raft index, store size, each host's heartbeat",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.ClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if g.output != "table" {
				return printValue(g.out, g.output, st)
			}
			return printClusterStatus(g.out, st)
		},
	}
}

func printClusterStatus(w io.Writer, st api.ClusterStatus) error {
	if !st.Enabled {
		fmt.Fprintf(w, "%s: %s\n", st.Self, st.Message)
		return nil
	}
	fmt.Fprintf(w, "cluster %s, seen from %s (%s): %s\n", st.ID, st.Self, st.Role, st.Message)
	fmt.Fprintf(w, "leader %s, %d of %d voters\n\n", orDash(st.Leader), st.Voters, st.MaxVoters)
	var rows [][]string
	for _, h := range st.Hosts {
		leader, raft, db, state := "", "-", "-", "ok"
		if m := h.Member; m != nil {
			if m.Leader {
				leader = "*"
			}
			if m.Reachable {
				raft, db = fmt.Sprint(m.RaftIndex), m.DBSize.Human()
			}
			if !m.Healthy {
				state = "UNHEALTHY"
			}
		}
		if h.Error != "" {
			state = "DOWN: " + h.Error
		}
		beat := "none"
		if h.Alive {
			beat = fmt.Sprintf("%.1fs ago", float64(h.HeartbeatAgeMs)/1000)
		}
		lease := "-"
		if h.Lease != "" {
			lease = fmt.Sprintf("%s (%ds)", h.Lease, h.LeaseTTL)
		}
		rows = append(rows, []string{h.Name, h.Role, leader, raft, db, beat, lease, fmt.Sprint(h.VMs), orDash(h.URL), state})
	}
	if err := table(w, []string{"HOST", "ROLE", "LEADER", "RAFT INDEX", "DB SIZE", "HEARTBEAT", "LEASE", "VMS", "URL", "STATE"}, rows); err != nil {
		return err
	}
	for _, p := range st.Peers {
		fmt.Fprintf(w, "peer %s is not in the cluster (run 'godwit cluster join' there to add it)\n", p)
	}
	return nil
}

func clusterRemoveCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "remove HOST",
		Short: "Take a dead host out of the cluster (its store member and registry record)",
		Long: `Take a dead host out of the cluster: its store member (refused while it
answers: stop its daemon first) and its registry record. Its VMs' records
stay: the HA VMs among them restart on other hosts, the others stay listed
on the removed host until deleted.

A host whose daemon stopped cleanly left its HA VMs running (frozen): the
other hosts do not restart them. If that host is down for good (powered
off), --force says so and they restart elsewhere; on a host that still
runs them they would run twice.`,
		Args: exactArgs(1, "a host name"),
		RunE: deleteRun(g, "host", "removed from the cluster", func(c *client.Client, ctx context.Context, name string) error {
			return c.RemoveClusterHost(ctx, name, force)
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "the host is down: restart the HA VMs its clean stop left running there on other hosts")
	return cmd
}
