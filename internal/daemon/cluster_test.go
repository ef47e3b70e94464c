package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/cluster/member/membertest"
)

// A cluster test runs three daemons in this process (the two-host
// harness, hosts_test.go), each with its store member on loopback ports
// of its own and fast raft timings, formed as a user would: cluster init
// on a, then host token on a and cluster join on b and c.

// inCluster is a host's cluster config for tests.
func inCluster(t *testing.T) func(*Config) {
	return func(c *Config) {
		c.Cluster = ClusterConfig{PeerPort: membertest.FreePort(t), ClientPort: membertest.FreePort(t),
			TickMs: 10, ElectionMs: 100, LeaseTTL: 2 * time.Second, HeartbeatEvery: 200 * time.Millisecond,
			ReadyTimeout: 3 * time.Second}
	}
}

// clusterOf starts hosts named names, each with a VM of its own name
// (vm-NAME, running), and forms a cluster of them.
func clusterOf(t *testing.T, names ...string) []*host {
	t.Helper()
	dir := tempDir(t)
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var hosts []*host
	for _, n := range names {
		h := newHost(t, dir, n, inCluster(t))
		h.wait(h.c.CreateVM(ctx, api.VMSpec{Name: "vm-" + n, CPUs: 1, Memory: 64 * api.MiB, Boot: &api.Boot{Kernel: kernel},
			Disks: []api.Disk{{Name: "root", Size: api.GiB}}}, client.CreateOptions{Start: true}))
		hosts = append(hosts, h)
	}
	first := hosts[0]
	if _, err := first.c.InitCluster(ctx, api.ClusterInit{}); err != nil {
		t.Fatalf("cluster init on %s: %v", first.name, err)
	}
	for _, h := range hosts[1:] {
		tok, err := first.c.CreateJoinToken(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		st, err := h.c.JoinCluster(ctx, api.ClusterJoin{URL: first.url, Token: tok.Token})
		if err != nil {
			t.Fatalf("cluster join of %s: %v", h.name, err)
		}
		t.Logf("%s joined as a %s in %s", h.name, st.Role, time.Since(t0).Round(time.Millisecond))
	}
	return hosts
}

// hostIn finds a host in a status.
func hostIn(st api.ClusterStatus, name string) (api.ClusterHost, bool) {
	for _, h := range st.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return api.ClusterHost{}, false
}

// aliveHosts counts the hosts whose heartbeat lease lives.
func aliveHosts(st api.ClusterStatus) int {
	n := 0
	for _, h := range st.Hosts {
		if h.Alive {
			n++
		}
	}
	return n
}

// Three hosts form a cluster through the API: every one sees three
// voters, a leader and live heartbeats; the others are its peers by the
// registry (no token each); a second init or join is refused; a dead
// member is removed while a live one is not.
func TestClusterFormStatusRemove(t *testing.T) {
	hosts := clusterOf(t, "a", "b", "c")
	a, b, c := hosts[0], hosts[1], hosts[2]
	ctx := context.Background()
	for _, h := range hosts {
		var st api.ClusterStatus
		eventually(t, h.name+" to see three live hosts", func() bool {
			var err error
			st, err = h.c.ClusterStatus(ctx)
			return err == nil && aliveHosts(st) == 3
		})
		if !st.Enabled || !st.Ready || st.Voters != 3 || st.Leader == "" || st.Self != h.name || st.Role != api.RoleVoter {
			t.Fatalf("status on %s: %+v", h.name, st)
		}
		for _, ch := range st.Hosts {
			if ch.Role != api.RoleVoter || ch.Member == nil || !ch.Member.Healthy || ch.URL == "" {
				t.Fatalf("%s in %s's status: %+v", ch.Name, h.name, ch)
			}
		}
		// The registry made every other host a peer.
		peers, err := h.c.ListPeers(ctx)
		if err != nil || len(peers.Peers) != 2 {
			t.Fatalf("peers of %s: %+v %v", h.name, peers.Peers, err)
		}
		for _, p := range peers.Peers {
			if !p.Reachable {
				t.Fatalf("peer %s of %s unreachable: %s", p.Name, h.name, p.Error)
			}
		}
	}
	if _, err := a.c.InitCluster(ctx, api.ClusterInit{}); api.Status(err) != 409 {
		t.Fatalf("a second init: %v, want 409", err)
	}
	tok, _ := a.c.CreateJoinToken(ctx, 0)
	if _, err := b.c.JoinCluster(ctx, api.ClusterJoin{URL: a.url, Token: tok.Token}); api.Status(err) != 409 {
		t.Fatalf("a second join: %v, want 409", err)
	}
	if err := a.c.RemoveClusterHost(ctx, "c"); api.Status(err) != 409 || !strings.Contains(err.Error(), "stop its daemon first") {
		t.Fatalf("remove live c: %v, want 409", err)
	}
	c.kill()
	// Two of three voters serve on.
	eventually(t, "a to report c down", func() bool {
		st, err := a.c.ClusterStatus(ctx)
		ch, _ := hostIn(st, "c")
		return err == nil && st.Ready && ch.Error != ""
	})
	if err := a.c.RemoveClusterHost(ctx, "c"); err != nil {
		t.Fatalf("remove dead c: %v", err)
	}
	st, err := b.c.ClusterStatus(ctx)
	if err != nil || !st.Ready || st.Voters != 2 || len(st.Hosts) != 2 {
		t.Fatalf("status after removing c: %+v %v", st, err)
	}
	if _, ok := hostIn(st, "c"); ok {
		t.Fatal("c still listed after its removal")
	}
}

// A host in no cluster says so; init needs a TCP listener.
func TestClusterNeedsListen(t *testing.T) {
	td := newDaemon(t)
	ctx := context.Background()
	st, err := td.c.ClusterStatus(ctx)
	if err != nil || st.Enabled {
		t.Fatalf("status outside a cluster: %+v %v", st, err)
	}
	if _, err := td.c.InitCluster(ctx, api.ClusterInit{}); api.Status(err) != 409 || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("init without --listen: %v, want 409 naming --listen", err)
	}
}
