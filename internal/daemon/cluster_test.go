package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
	// Fast raft timings. (50/500 ms was tried against joins timing out at
	// load 20+, but in a fresh root a third member's start then saw a
	// voter that had not applied its MemberAdd yet: "member count is
	// unequal".)
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
	return clusterWith(t, nil, names...)
}

// clusterWith is clusterOf with edit changing each host's config (nil:
// none) after inCluster.
func clusterWith(t *testing.T, edit func(*Config), names ...string) []*host {
	t.Helper()
	dir := tempDir(t)
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var hosts []*host
	for _, n := range names {
		edits := []func(*Config){inCluster(t)}
		if edit != nil {
			edits = append(edits, edit)
		}
		h := newHost(t, dir, n, edits...)
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
	// A peer of a that is no host of the cluster is listed as such.
	d := newHost(t, tempDir(t), "d")
	dtok, err := d.c.CreateJoinToken(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.AddPeer(ctx, api.PeerAdd{Name: "d", URL: d.url, Token: dtok.Token}); err != nil {
		t.Fatal(err)
	}
	if st, err := a.c.ClusterStatus(ctx); err != nil || !slices.Equal(st.Peers, []string{"d"}) || len(st.Hosts) != 3 {
		t.Fatalf("status with a peer outside the cluster: peers %v hosts %d (%v)", st.Peers, len(st.Hosts), err)
	}
	if err := a.c.RemoveClusterHost(ctx, "c", false); api.Status(err) != 409 || !strings.Contains(err.Error(), "stop its daemon first") {
		t.Fatalf("remove live c: %v, want 409", err)
	}
	c.kill()
	// Two of three voters serve on.
	eventually(t, "a to report c down", func() bool {
		st, err := a.c.ClusterStatus(ctx)
		ch, _ := hostIn(st, "c")
		return err == nil && st.Ready && ch.Error != ""
	})
	if err := a.c.RemoveClusterHost(ctx, "c", false); err != nil {
		t.Fatalf("remove dead c: %v", err)
	}
	// c's VM (no HA) keeps c's record, marked removed, until it is
	// forgotten: vm show answers from the record, a stop is refused, a
	// delete forgets it, and c goes with it.
	st, err := b.c.ClusterStatus(ctx)
	if ch, ok := hostIn(st, "c"); err != nil || !st.Ready || st.Voters != 2 || !ok || ch.Removed.IsZero() || ch.VMs != 1 || ch.Role != api.RoleClient {
		t.Fatalf("status after removing c: %+v %v", st, err)
	}
	if v, err := b.c.GetVM(ctx, "vm-c"); err != nil || v.Host != "c" || !strings.Contains(v.Reason, "removed from the cluster") {
		t.Fatalf("vm show of the removed c's VM from b: %+v %v", v, err)
	}
	if _, err := b.c.StopVM(ctx, "vm-c", api.StopRequest{}); api.Status(err) != 409 || !strings.Contains(err.Error(), "vm delete") {
		t.Fatalf("vm stop of the removed c's VM: %v, want 409 saying what works", err)
	}
	if op := b.wait(b.c.DeleteVM(ctx, "vm-c", client.DeleteOptions{})); op.State != api.OpSucceeded {
		t.Fatalf("vm delete of the removed c's VM: %+v", op)
	}
	eventually(t, "c to leave the status with its last VM record", func() bool {
		st, err = b.c.ClusterStatus(ctx)
		_, ok := hostIn(st, "c")
		return err == nil && st.Ready && !ok && len(st.Hosts) == 2
	})
	if _, err := a.c.GetVM(ctx, "vm-c"); api.Status(err) != 404 {
		t.Fatalf("vm-c after it was forgotten: %v, want 404", err)
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

// Hosts that ran VMs before keep them: init and join move each host's
// state into its namespace of the cluster store (the bolt file stays as
// a backup) and a restart finds it there; operation ids name their host.
func TestClusterKeepsState(t *testing.T) {
	hosts := clusterOf(t, "a", "b", "c")
	ctx := context.Background()
	for _, h := range hosts {
		v, err := h.c.GetVM(ctx, "vm-"+h.name)
		if err != nil || !v.Managed || v.State != api.VMRunning {
			t.Fatalf("vm-%s on %s after the cluster formed: %+v %v", h.name, h.name, v, err)
		}
		if _, err := os.Stat(filepath.Join(h.cfg.StateDir, "godwit.db.before-cluster")); err != nil {
			t.Fatalf("%s kept no backup of its single-host store: %v", h.name, err)
		}
		if _, err := os.Stat(filepath.Join(h.cfg.StateDir, "godwit.db")); err == nil {
			t.Fatalf("%s still has a live single-host store", h.name)
		}
		// The record is in the host's namespace of the store.
		if raw, err := h.d.clusterNode().Store().Get(ctx, "vms", "vm-"+h.name); err != nil || len(raw) == 0 {
			t.Fatalf("vm-%s is not in %s's namespace: %v", h.name, h.name, err)
		}
	}
	b := hosts[1]
	b.restart()
	if v, err := b.c.GetVM(ctx, "vm-b"); err != nil || !v.Managed {
		t.Fatalf("vm-b after b's restart: %+v %v", v, err)
	}
	op := b.wait(b.c.StopVM(ctx, "vm-b", api.StopRequest{Force: true}))
	if op.State != api.OpSucceeded || !strings.HasSuffix(op.ID, "@b") {
		t.Fatalf("stop on b: %s %q, id %s (want it to end in @b)", op.State, op.Error, op.ID)
	}
}

// Two hosts never act on one VM at once: while another host holds a
// VM's cluster lock, its owner refuses to act on it, saying who holds
// it; once let go, the action goes through.
func TestClusterLockRefusesAction(t *testing.T) {
	hosts := clusterOf(t, "a", "b", "c")
	a, b := hosts[0], hosts[1]
	ctx := context.Background()
	var lerr error
	eventually(t, "b to hold a lease", func() bool { return b.d.clusterNode().Lease() != nil })
	held, lerr := b.d.clusterNode().Lock(ctx, "vm-a", "operation x (vm.migrate)")
	if lerr != nil {
		t.Fatal(lerr)
	}
	_, err := a.c.StopVM(ctx, "vm-a", api.StopRequest{Force: true})
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "on host b") {
		t.Fatalf("stop of vm-a on a while b holds its lock: %v, want 409 naming host b", err)
	}
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if op := a.wait(a.c.StopVM(ctx, "vm-a", api.StopRequest{Force: true})); op.State != api.OpSucceeded {
		t.Fatalf("stop after the lock was let go: %s %s", op.State, op.Error)
	}
}

// A host that starts without the store's quorum serves all the same: it
// says it waits for the quorum (host show and check), a change that
// needs the store answers 503 naming the hosts it cannot reach, and it
// catches up once a quorum is back.
func TestClusterStartWithoutQuorum(t *testing.T) {
	hosts := clusterOf(t, "a", "b", "c")
	a, b, c := hosts[0], hosts[1], hosts[2]
	ctx := context.Background()
	b.kill()
	c.kill()
	t0 := time.Now()
	a.answerOnly = true
	a.restart()
	t.Logf("a serves %s after its restart without quorum", time.Since(t0).Round(time.Millisecond))
	h, err := a.c.Host(ctx)
	if err != nil || !strings.Contains(strings.Join(h.Warnings, "\n"), "waiting for quorum") {
		t.Fatalf("host show without quorum: %v %v", h.Warnings, err)
	}
	rep, err := a.c.HostChecks(ctx)
	if err != nil || rep.Status != api.CheckCritical || !strings.Contains(fmt.Sprint(rep.Checks), "waiting for quorum") {
		t.Fatalf("host check without quorum: %+v %v", rep, err)
	}
	_, err = a.c.StopVM(ctx, "vm-a", api.StopRequest{Force: true})
	if api.Status(err) != 503 || !strings.Contains(err.Error(), "quorum") || !strings.Contains(err.Error(), "b") {
		t.Fatalf("stop without quorum: %v, want 503 naming the lost quorum", err)
	}
	// Reads answer, from a's last view, and say so.
	var stale string
	sc, err := client.New(client.Options{Socket: a.cfg.Socket, OnStale: func(m string) { stale = m }})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := sc.GetVM(ctx, "vm-a"); err != nil || v.Name != "vm-a" || !strings.Contains(stale, "cluster store has no quorum since") {
		t.Fatalf("vm show without quorum: %+v %v, %s %q", v, err, api.HeaderStale, stale)
	}
	b.start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		op, err := a.c.StopVM(ctx, "vm-a", api.StopRequest{Force: true})
		if err == nil {
			if op = a.wait(op, nil); op.State != api.OpSucceeded {
				t.Fatalf("stop once the quorum is back: %s %s", op.State, op.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stop went through within 15s of b's return: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stale = ""
	if _, err := sc.GetVM(ctx, "vm-a"); err != nil || stale != "" {
		t.Fatalf("vm show with the quorum back: %v, still marked stale: %q", err, stale)
	}
}

// Any host serves the whole API: c lists every host's VMs with their
// host and state, and a request for a VM of a (its stop, the stop's
// operation, its console, its events) is forwarded to a and served there
// for c's caller; when b does not answer, its VMs are listed from its
// records with the reason.
func TestClusterAnyHostServes(t *testing.T) {
	hosts := clusterOf(t, "a", "b", "c")
	a, b, c := hosts[0], hosts[1], hosts[2]
	ctx := context.Background()
	vms, err := c.c.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range vms {
		got[v.Name] = v.Host + " " + string(v.State)
	}
	for _, h := range hosts {
		if got["vm-"+h.name] != h.name+" running" {
			t.Fatalf("vm list on c: %v; want vm-%s running on %s", got, h.name, h.name)
		}
	}
	if only, err := c.c.ListVMsOf(ctx, "a"); err != nil || len(only) != 1 || only[0].Name != "vm-a" {
		t.Fatalf("vm list of host a, asked on c: %+v %v", only, err)
	}
	if v, err := c.c.GetVM(ctx, "vm-a"); err != nil || v.Host != "a" || !v.Managed {
		t.Fatalf("vm-a shown on c: %+v %v", v, err)
	}

	// vm-a's console log on a, read from c.
	va, _ := a.c.GetVM(ctx, "vm-a")
	if err := os.WriteFile(va.ConsoleLog, []byte("tick 1 on a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := c.c.Console(ctx, "vm-a", client.ConsoleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(rc)
	rc.Close()
	if string(text) != "tick 1 on a\n" {
		t.Fatalf("console of vm-a read on c: %q", text)
	}

	// Stopped from c, waited on from c, with its events seen on c.
	var op api.Operation
	evs := collect(t, c.c, client.EventsOptions{VM: "vm-a", Type: api.EventOperation}, 1, func(e api.Event) bool {
		return e.Operation != nil && e.Operation.Kind == "vm.stop" && e.Operation.State.Final()
	}, func() {
		if op, err = c.c.StopVM(ctx, "vm-a", api.StopRequest{Force: true}); err != nil {
			t.Fatal(err)
		}
	})
	if !strings.HasSuffix(op.ID, "@a") || evs[0].Operation.ID != op.ID {
		t.Fatalf("stop of vm-a from c: operation %s, event %+v; want an operation of a", op.ID, evs[0].Operation)
	}
	if final := c.wait(op, nil); final.State != api.OpSucceeded {
		t.Fatalf("the stop waited on from c: %s %s", final.State, final.Error)
	}
	if v, err := a.c.GetVM(ctx, "vm-a"); err != nil || v.State != api.VMStopped {
		t.Fatalf("vm-a on a after the stop from c: %s %v", v.State, err)
	}
	if list, err := c.c.ListOperations(ctx, client.OperationFilter{Target: "vm/vm-a"}); err != nil || len(list) == 0 || list[0].ID != op.ID {
		t.Fatalf("operations of vm-a listed on c: %+v %v", list, err)
	}
	// a served the stop for c's caller, and says so in its audit log.
	entries, err := a.c.Audit(ctx, 100)
	if err != nil || !slices.ContainsFunc(entries, func(e api.AuditEntry) bool {
		return e.Operation == op.ID && strings.HasPrefix(e.Principal, "forwarded:") && strings.HasSuffix(e.Principal, " via c")
	}) {
		t.Fatalf("a's audit log has no forwarded stop %s: %+v %v", op.ID, entries, err)
	}
	// c's metrics are c's.
	if text, err := c.c.Metrics(ctx); err != nil || !strings.Contains(text, `godwit_libvirt_up{host="c"} 1`) {
		t.Fatalf("c's /metrics have no host label: %v", err)
	}

	// b does not answer: its VM is listed from its record, saying so.
	b.kill()
	vms, err = c.c.ListVMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(vms, func(v api.VM) bool { return v.Name == "vm-b" })
	if i < 0 || vms[i].Host != "b" || vms[i].State != api.VMUnknown || !strings.Contains(vms[i].Reason, "does not answer") {
		t.Fatalf("vm-b listed on c with b down: %+v", vms)
	}
	if _, err := c.c.StopVM(ctx, "vm-b", api.StopRequest{}); api.Status(err) != 502 || !strings.Contains(err.Error(), "host b") {
		t.Fatalf("stop of vm-b with b down: %v, want 502 naming host b", err)
	}
}

// A VM migrates between hosts of the cluster (its source holds its
// cluster lock for the move): its record, so its ownership, moves, and
// every host then sends its requests to the new owner.
func TestClusterMigrateMovesOwnership(t *testing.T) {
	hosts := clusterOf(t, "a", "b", "c")
	a, c := hosts[0], hosts[2]
	ctx := context.Background()
	op := a.wait(c.c.MigrateVM(ctx, "vm-a", api.MigrateRequest{To: "b"}))
	if op.State != api.OpSucceeded || !strings.HasSuffix(op.ID, "@a") {
		t.Fatalf("migrate vm-a to b, asked on c: %s %q (%s)", op.State, op.Error, op.ID)
	}
	eventually(t, "c to see vm-a on b", func() bool {
		v, err := c.c.GetVM(ctx, "vm-a")
		return err == nil && v.Host == "b" && v.State == api.VMRunning
	})
	if _, err := a.d.clusterNode().Store().Get(ctx, "vms", "vm-a"); err == nil {
		t.Fatal("a's namespace still holds vm-a")
	}
	if op := a.wait(a.c.StopVM(ctx, "vm-a", api.StopRequest{Force: true})); op.State != api.OpSucceeded || !strings.HasSuffix(op.ID, "@b") {
		t.Fatalf("stop of vm-a asked on a, after the move: %s %q (%s), want b's operation", op.State, op.Error, op.ID)
	}
}
