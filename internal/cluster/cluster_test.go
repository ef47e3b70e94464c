package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/cluster/lock"
	"github.com/godwit-project/godwit/internal/cluster/member/membertest"
	"github.com/godwit-project/godwit/internal/pki"
	"github.com/godwit-project/godwit/internal/store"
)

func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// config is host name's cluster config on loopback, with fast raft
// timings and a short lease.
func config(t *testing.T, dir, name string) cluster.Config {
	id, err := pki.LoadOrCreate(filepath.Join(dir, name, "daemon-tls"), name, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.Config{
		Name: name, Dir: filepath.Join(dir, name, "cluster"), DataDir: filepath.Join(dir, name, "etcd"),
		IP: "127.0.0.1", PeerPort: membertest.FreePort(t), ClientPort: membertest.FreePort(t),
		URL: "https://127.0.0.1:1/" + name, CA: id.CAPEM(), TickMs: 10, ElectionMs: 100,
		ReadyTimeout: 5 * time.Second, LeaseTTL: 2 * time.Second, HeartbeatEvery: 200 * time.Millisecond,
		Capacity: func(context.Context) (int, int64, error) { return 2, 1 << 30, nil },
	}
}

func join(t *testing.T, ctx context.Context, via *cluster.Node, cfg cluster.Config) *cluster.Node {
	t.Helper()
	adm, err := via.Admit(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := cluster.Join(ctx, cfg, adm)
	if err != nil {
		t.Fatalf("join %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hostOf(st api.ClusterStatus, name string) (api.ClusterHost, bool) {
	for _, h := range st.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return api.ClusterHost{}, false
}

// Three voters and a client host: the status shows each with its role, a
// leader and live heartbeats; the VM records of every host are seen
// through watches; a VM's lock taken on one host is refused on another;
// a dead member is removed, a live one is not.
func TestClusterOfFour(t *testing.T) {
	ctx := bounded(t, 90*time.Second)
	dir := t.TempDir()
	cfgs := map[string]cluster.Config{}
	for _, n := range []string{"h1", "h2", "h3", "h4"} {
		cfgs[n] = config(t, dir, n)
	}
	t0 := time.Now()
	h1, err := cluster.Init(ctx, cfgs["h1"], 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h1.Close() })
	if !cluster.Exists(cfgs["h1"].Dir) {
		t.Fatal("no cluster files after Init")
	}
	if _, err := cluster.Init(ctx, cfgs["h1"], 3); api.Status(err) != 409 {
		t.Fatalf("second Init: %v, want 409", err)
	}
	h2 := join(t, ctx, h1, cfgs["h2"])
	h3 := join(t, ctx, h2, cfgs["h3"])
	t.Logf("three voters after %s", time.Since(t0).Round(time.Millisecond))
	h4 := join(t, ctx, h1, cfgs["h4"])
	if h4.Role() != api.RoleClient {
		t.Fatalf("fourth host's role %s, want client (the voters are full)", h4.Role())
	}
	if _, err := h1.Admit(ctx, "h2"); api.Status(err) != 409 {
		t.Fatalf("admit a second live h2: %v, want 409", err)
	}

	for _, via := range []*cluster.Node{h1, h4} {
		waitFor(t, 10*time.Second, "every host alive in "+via.Name()+"'s status", func() bool {
			st := via.Status(ctx)
			n := 0
			for _, h := range st.Hosts {
				if h.Alive {
					n++
				}
			}
			return n == 4
		})
		st := via.Status(ctx)
		if !st.Ready || st.Leader == "" || st.Voters != 3 || st.MaxVoters != 3 || len(st.Hosts) != 4 {
			t.Fatalf("status via %s: %+v", via.Name(), st)
		}
		for _, h := range st.Hosts {
			want := api.RoleVoter
			if h.Name == "h4" {
				want = api.RoleClient
			}
			if h.Role != want || h.CPUs != 2 || h.Lease == "" || h.HeartbeatAgeMs > 2000 {
				t.Fatalf("host in %s's status: %+v", via.Name(), h)
			}
			if want == api.RoleVoter && (h.Member == nil || !h.Member.Healthy || h.Member.RaftIndex == 0 || h.Member.DBSize == 0) {
				t.Fatalf("voter in %s's status: %+v %+v", via.Name(), h, h.Member)
			}
		}
	}

	// Placement's view (every host's ranges in one read): each host with its
	// own inventory, in the registry's order.
	for _, inv := range []struct{ host, bucket, key string }{{"h2", "networks", "lab"}, {"h3", "pools", "fast"}, {"h3", "images", "deb"}} {
		via := map[string]*cluster.Node{"h2": h2, "h3": h3}[inv.host]
		if err := via.Store().Put(ctx, inv.bucket, inv.key, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	ph, err := h4.PlacementHosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range ph {
		got = append(got, fmt.Sprintf("%s alive=%t cpus=%d nets=%v pools=%v images=%v", h.Name, h.Alive, h.CPUs, h.Networks, h.Pools, h.Images))
	}
	want := []string{"h1 alive=true cpus=2 nets=[] pools=[] images=[]", "h2 alive=true cpus=2 nets=[lab] pools=[] images=[]",
		"h3 alive=true cpus=2 nets=[] pools=[fast] images=[deb]", "h4 alive=true cpus=2 nets=[] pools=[] images=[]"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("placement's hosts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A record in h2's namespace is h2's VM for everyone, by watch.
	if err := h2.Store().Put(ctx, "vms", "web1", []byte(`{"name":"web1"}`)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*cluster.Node{h1, h3, h4} {
		waitFor(t, 5*time.Second, n.Name()+" to see web1 on h2", func() bool { return n.VMs("h2")["web1"] != nil })
		if o, err := n.Owner(ctx, "web1"); o != "h2" || err != nil {
			t.Fatalf("owner of web1 via %s: %q %v", n.Name(), o, err)
		}
	}
	if o, err := h1.Owner(ctx, "nothing"); o != "" || err != nil {
		t.Fatalf("owner of no VM: %q %v", o, err)
	}
	if err := h2.Store().Delete(ctx, "vms", "web1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "h1 to see web1 gone", func() bool { return h1.VMs("h2")["web1"] == nil })

	// One lock per VM across the hosts.
	var held *lock.Held
	waitFor(t, 5*time.Second, "h1's lease", func() bool { return h1.Lease() != nil })
	if held, err = h1.Lock(ctx, "web1", "vm.stop"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "h4's lease", func() bool { return h4.Lease() != nil })
	if _, err := h4.Lock(ctx, "web1", "vm.start"); !errors.Is(err, lock.ErrHeld) || !strings.Contains(err.Error(), "h1") {
		t.Fatalf("second lock from h4: %v, want held by h1", err)
	}
	if err := held.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if held, err = h4.Lock(ctx, "web1", "vm.start"); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	held.Unlock(ctx)

	// A live member is not removed; a dead one is, and leaves the status.
	if err := h1.Remove(ctx, "h3", false); api.Status(err) != 409 {
		t.Fatalf("remove a live member: %v, want 409", err)
	}
	h3.Close()
	if err := h1.Remove(ctx, "h3", false); err != nil {
		t.Fatalf("remove dead h3: %v", err)
	}
	if _, ok := hostOf(h1.Status(ctx), "h3"); ok {
		t.Fatal("h3 still in the status after its removal")
	}
	if err := h1.Remove(ctx, "h3", false); api.Status(err) != 404 {
		t.Fatalf("remove h3 again: %v, want 404", err)
	}
	// A client host is removed once its lease has run out.
	h4.Close()
	if err := h1.Remove(ctx, "h4", false); api.Status(err) != 409 {
		t.Fatalf("remove h4 while its lease lives: %v, want 409", err)
	}
	waitFor(t, 10*time.Second, "h4's lease to run out", func() bool {
		h, _ := hostOf(h1.Status(ctx), "h4")
		return !h.Alive
	})
	if err := h1.Remove(ctx, "h4", false); err != nil {
		t.Fatalf("remove dead client h4: %v", err)
	}
}

// A restarted node finds its cluster again from its files.
func TestStartAgain(t *testing.T) {
	ctx := bounded(t, 60*time.Second)
	dir := t.TempDir()
	c1 := config(t, dir, "h1")
	h1, err := cluster.Init(ctx, c1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.Store().Put(ctx, "meta", "id", []byte("x")); err != nil {
		t.Fatal(err)
	}
	h1.Close()
	h1, err = cluster.Start(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	if b, err := h1.Store().Get(ctx, "meta", "id"); err != nil || string(b) != "x" {
		t.Fatalf("after a restart: %q %v", b, err)
	}
	waitFor(t, 5*time.Second, "h1 listed alive", func() bool {
		h, ok := hostOf(h1.Status(ctx), "h1")
		return ok && h.Alive && h.Role == api.RoleVoter
	})
}

// The heartbeat is the lease's: written once each lease is granted and
// not again within heartbeatEvery (however often the lease renews), gone
// with the lease, and written again under the next one. The status's
// heartbeat age comes from the lease's renewals, not from the write.
func TestHeartbeatIsWrittenOnceALease(t *testing.T) {
	ctx := bounded(t, 60*time.Second)
	cfg := config(t, t.TempDir(), "h1")
	cfg.HeartbeatEvery = time.Hour
	h1, err := cluster.Init(ctx, cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h1.Close() })
	var first store.Item
	waitFor(t, 10*time.Second, "h1's heartbeat", func() bool {
		first, err = h1.Shared().GetItem(ctx, "heartbeats", "h1")
		return err == nil
	})
	l := h1.Lease()
	if l == nil || first.Lease != l.ID() {
		t.Fatalf("heartbeat under lease %x, the host holds %v", int64(first.Lease), l)
	}
	// Two TTLs: a dozen renewals, no rewrite; the status's age stays
	// within a renewal or two.
	time.Sleep(2 * cfg.LeaseTTL)
	again, err := h1.Shared().GetItem(ctx, "heartbeats", "h1")
	if err != nil || again.Rev != first.Rev {
		t.Fatalf("heartbeat after %s: rev %d (%v), want %d: rewritten", 2*cfg.LeaseTTL, again.Rev, err, first.Rev)
	}
	if h, ok := hostOf(h1.Status(ctx), "h1"); !ok || !h.Alive || h.HeartbeatAgeMs > 1500 {
		t.Fatalf("h1 in the status: %+v, want alive, its heartbeat at most 1.5 s old", h)
	}
	// The lease ends: its heartbeat goes with it, and the next lease
	// writes it again.
	if err := l.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	var next store.Item
	waitFor(t, 10*time.Second, "h1's heartbeat under a new lease", func() bool {
		next, err = h1.Shared().GetItem(ctx, "heartbeats", "h1")
		return err == nil && next.Lease != first.Lease
	})
	if nl := h1.Lease(); nl == nil || next.Lease != nl.ID() {
		t.Fatalf("heartbeat under lease %x, the host holds %v", int64(next.Lease), nl)
	}
}
