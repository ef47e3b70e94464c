package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/cluster/placement"
	"github.com/godwit-project/godwit/internal/store/etcd"
)

// haRecord is the VM record of these tests: what ReadVM reads.
type haRecord struct {
	Name string `json:"name"`
	HA   bool   `json:"ha"`
	Run  bool   `json:"run"`
}

func readHA(raw []byte) (cluster.VMInfo, error) {
	var r haRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return cluster.VMInfo{}, err
	}
	return cluster.VMInfo{Need: placement.Need{VM: r.Name, CPUs: 1, Memory: 64 << 20}, HA: r.HA, Run: r.Run}, nil
}

// haLog records what a node's HA hooks were asked, and when.
type haLog struct {
	host      string
	mu        sync.Mutex
	fenced    []string
	fencedAt  time.Time
	why       string
	restarted []string
	rejoined  chan struct{}
	once      sync.Once
}

func (l *haLog) hooks(n *cluster.Node) cluster.HAHooks {
	l.rejoined = make(chan struct{})
	return cluster.HAHooks{
		Fence: func(_ context.Context, vms []string, why string) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.fenced, l.fencedAt, l.why = append(l.fenced, vms...), time.Now(), why
		},
		Restart: func(_ context.Context, vm, from string) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.restarted = append(l.restarted, vm+" from "+from)
		},
		Rejoined: func(context.Context) { l.once.Do(func() { close(l.rejoined) }) },
	}
}

func (l *haLog) restarts() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.restarted)
}

func haConfig(t *testing.T, dir, name string) cluster.Config {
	c := config(t, dir, name)
	c.ReadVM = readHA
	return c
}

// haCluster is three voters with HA hooks that record; h1 holds an HA
// VM that should run (ha1), an HA VM that should not (ha-stopped) and a
// VM without HA (plain).
func haCluster(t *testing.T, ctx context.Context, dir string) ([]*cluster.Node, []*haLog, []cluster.Config) {
	t.Helper()
	cfgs := []cluster.Config{haConfig(t, dir, "h1"), haConfig(t, dir, "h2"), haConfig(t, dir, "h3")}
	h1, err := cluster.Init(ctx, cfgs[0], 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h1.Close() })
	nodes := []*cluster.Node{h1, join(t, ctx, h1, cfgs[1]), join(t, ctx, h1, cfgs[2])}
	var logs []*haLog
	for _, n := range nodes {
		l := &haLog{host: n.Name()}
		n.SetHA(l.hooks(n))
		logs = append(logs, l)
	}
	for _, r := range []haRecord{{"ha1", true, true}, {"ha-stopped", true, false}, {"plain", false, true}} {
		b, _ := json.Marshal(r)
		if err := h1.Store().Put(ctx, "vms", r.Name, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, n.Name()+" to see h1's VMs and every lease", func() bool {
			alive := 0
			for _, h := range n.Status(ctx).Hosts {
				if h.Alive {
					alive++
				}
			}
			return len(n.VMs("h1")) == 3 && n.Lease() != nil && alive == 3
		})
	}
	return nodes, logs, cfgs
}

// A host dies (its node closed, its lease left to run out): exactly one
// other host claims its HA VM that should run, no sooner than
// RestartDelay after the lease could end, and restarts it; the record
// moves to the claimer; the HA VM that was stopped and the VM without HA
// stay where they were. When the host starts again it finds ha1 gone
// (Reown says so) and takes back its stopped HA VM.
func TestHARestartsALostHostsVMOnceElsewhere(t *testing.T) {
	ctx := bounded(t, 2*time.Minute)
	dir := t.TempDir()
	nodes, logs, cfgs := haCluster(t, ctx, dir)
	h1, h2, h3 := nodes[0], nodes[1], nodes[2]
	tm := h2.HATimings()
	renewed := h1.Lease().Renewed()
	t0 := time.Now()
	h1.Close()

	var claimer *cluster.Node
	waitFor(t, 30*time.Second, "a restart of ha1", func() bool {
		for i, l := range logs[1:] {
			if len(l.restarts()) > 0 {
				claimer = nodes[i+1]
				return true
			}
		}
		return false
	})
	took := time.Since(t0)
	// The restart delay counts from when a host saw the lease gone, which
	// is no sooner than the lease's end: a TTL after the last renewal.
	if since := time.Since(renewed); since < tm.LeaseTTL+tm.RestartDelay {
		t.Fatalf("ha1 restarted %s after h1 died, %s after its last renewal: sooner than leaseTTL %s + restartDelay %s",
			took, since, tm.LeaseTTL, tm.RestartDelay)
	}
	t.Logf("ha1 restarted on %s %s after h1 died (leaseTTL %s, restartDelay %s)", claimer.Name(), took.Round(time.Millisecond), tm.LeaseTTL, tm.RestartDelay)
	// The other host's turn comes a stagger later: its claim must fail.
	time.Sleep(6 * time.Second)
	var all []string
	for _, l := range logs[1:] {
		for _, r := range l.restarts() {
			all = append(all, l.host+": "+r)
		}
	}
	if len(all) != 1 || all[0] != claimer.Name()+": ha1 from h1" {
		t.Fatalf("restarts: %v, want ha1 once", all)
	}
	if b, err := claimer.Store().Get(ctx, "vms", "ha1"); err != nil || !strings.Contains(string(b), `"ha1"`) {
		t.Fatalf("ha1's record on %s: %s %v", claimer.Name(), b, err)
	}
	for _, n := range []*cluster.Node{h2, h3} {
		waitFor(t, 5*time.Second, n.Name()+" to see ha1 moved", func() bool {
			return n.VMs("h1")["ha1"] == nil && n.VMs(claimer.Name())["ha1"] != nil &&
				n.VMs("h1")["ha-stopped"] != nil && n.VMs("h1")["plain"] != nil
		})
	}
	res, _, err := h2.Reservation(ctx, claimer.Name())
	if _, ok := res.VMs["ha1"]; err != nil || !ok {
		t.Fatalf("%s's reservation record: %+v %v, want ha1 in it", claimer.Name(), res.VMs, err)
	}

	// h1 comes back: ha1 is not its own any more; ha-stopped still is.
	h1, err = cluster.Start(ctx, cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h1.Close() })
	l1 := &haLog{host: "h1"}
	h1.SetHA(l1.hooks(h1))
	select {
	case <-l1.rejoined:
	case <-ctx.Done():
		t.Fatal("h1 never rejoined")
	}
	if ok, err := h1.Reown(ctx, "ha1"); ok || err != nil {
		t.Fatalf("h1 takes back ha1 that %s restarted: %t %v", claimer.Name(), ok, err)
	}
	if ok, err := h1.Reown(ctx, "ha-stopped"); !ok || err != nil {
		t.Fatalf("h1 takes back its ha-stopped: %t %v", ok, err)
	}
	if o, err := h1.Owner(ctx, "ha1"); o != claimer.Name() || err != nil {
		t.Fatalf("owner of ha1 seen from h1: %q %v", o, err)
	}
}

// A host cut off from the quorum (the two other voters gone) stops its
// HA VMs FenceAfter after its last renewal went through, before its
// lease can have ended, leaving FenceStop for the stop; its VM without
// HA is left alone.
func TestHAFencesBeforeTheLeaseCanEnd(t *testing.T) {
	ctx := bounded(t, 2*time.Minute)
	dir := t.TempDir()
	nodes, logs, _ := haCluster(t, ctx, dir)
	h1 := nodes[0]
	cfg := h1.HATimings()
	// The last renewal that went through, as h1 sees it until it fences.
	var mu sync.Mutex
	var renewed time.Time
	stop := make(chan struct{})
	go func() {
		for {
			if l := h1.Lease(); l != nil {
				mu.Lock()
				renewed = l.Renewed()
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	nodes[1].Close()
	nodes[2].Close()
	waitFor(t, 20*time.Second, "h1 to fence", func() bool {
		logs[0].mu.Lock()
		defer logs[0].mu.Unlock()
		return !logs[0].fencedAt.IsZero()
	})
	close(stop)
	mu.Lock()
	last := renewed
	mu.Unlock()
	l := logs[0]
	l.mu.Lock()
	fenced, at, why := slices.Clone(l.fenced), l.fencedAt, l.why
	l.mu.Unlock()
	slices.Sort(fenced)
	if !slices.Equal(fenced, []string{"ha-stopped", "ha1"}) {
		t.Fatalf("h1 fenced %v, want its HA VMs ha-stopped and ha1 (not plain)", fenced)
	}
	after := at.Sub(last)
	t.Logf("h1 fenced %s after the other voters went, %s after its last renewal (fenceAfter %s, fenceStop %s, leaseTTL %s): %s",
		at.Sub(t0).Round(time.Millisecond), after.Round(time.Millisecond), cfg.FenceAfter, cfg.FenceStop, cfg.LeaseTTL, why)
	if after < cfg.FenceAfter-50*time.Millisecond || after > cfg.FenceAfter+500*time.Millisecond {
		t.Fatalf("h1 fenced %s after its last renewal, want about fenceAfter %s", after, cfg.FenceAfter)
	}
	// Even a lease revoked right after that renewal (etcd-io/etcd#15247)
	// lets the others restart only restartDelay later.
	if after+cfg.FenceStop > cfg.RestartDelay {
		t.Fatalf("fence at %s + stop %s ends after the others may restart (restartDelay %s after the lease's end)", after, cfg.FenceStop, cfg.RestartDelay)
	}
	if f, _, w := h1.Fenced(); !f || !strings.Contains(w, "lease") {
		t.Fatalf("h1.Fenced: %t %q", f, w)
	}
	// Fenced once: no second stop while it stays cut off.
	time.Sleep(cfg.LeaseTTL)
	l.mu.Lock()
	n := len(l.fenced)
	l.mu.Unlock()
	if n != 2 {
		t.Fatalf("h1 fenced %d VMs in all after staying cut off, want 2 (once)", n)
	}
}

// The HA timings refuse a restart delay that would let a host cut off
// still run a VM the others restart, and a fence that comes after the
// lease can have ended.
func TestHATimingsAreChecked(t *testing.T) {
	dir := t.TempDir()
	for i, c := range []struct {
		edit func(*cluster.Config)
		want string
	}{
		{func(c *cluster.Config) { c.RestartDelay = time.Second }, "restartDelay 1s is less than"},
		{func(c *cluster.Config) { c.FenceAfter = c.LeaseTTL }, "must be less than leaseTTL"},
	} {
		cfg := haConfig(t, dir, fmt.Sprintf("t%d", i))
		cfg.Dir, cfg.DataDir = filepath.Join(dir, cfg.Name, "c"), filepath.Join(dir, cfg.Name, "e")
		c.edit(&cfg)
		if _, err := cluster.Init(bounded(t, 20*time.Second), cfg, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: %v, want %q", i, err, c.want)
		}
	}
}

// After each renewal the store accepts, the Renewed hook gets what is
// left of FenceAfter from that renewal's send (what the fence guard
// waits), and this host's HA VMs, those a fence stops.
func TestHARenewedTellsTheTimeLeft(t *testing.T) {
	ctx := bounded(t, time.Minute)
	nodes, logs, _ := haCluster(t, ctx, t.TempDir())
	h1 := nodes[0]
	fenceAfter := h1.HATimings().FenceAfter
	type feed struct {
		left, most time.Duration
		vms        []string
	}
	var mu sync.Mutex
	var feeds []feed
	hooks := logs[0].hooks(h1)
	hooks.Renewed = func(left time.Duration, vms []string) {
		most := fenceAfter - time.Since(h1.Lease().Renewed())
		mu.Lock()
		defer mu.Unlock()
		feeds = append(feeds, feed{left, most, vms})
	}
	h1.SetHA(hooks)
	time.Sleep(3 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	// Renewals come every TTL/6, at least 200 ms apart.
	if len(feeds) < 2 {
		t.Fatalf("%d feeds in 3 s", len(feeds))
	}
	for _, f := range feeds {
		if f.left <= 0 || f.left > f.most+time.Millisecond || f.left < fenceAfter-time.Second {
			t.Fatalf("left %s: want in (%s - 1 s, %s] (FenceAfter less the time since the renewal's send)", f.left, fenceAfter, f.most)
		}
		if !slices.Equal(f.vms, []string{"ha-stopped", "ha1"}) {
			t.Fatalf("vms %v, want this host's HA VMs [ha-stopped ha1]", f.vms)
		}
	}
	t.Logf("%d feeds, the first: %s left of %s", len(feeds), feeds[0].left, fenceAfter)
}

// A host whose daemon stopped cleanly (Freeze) and then died keeps its HA
// VMs from being restarted: the others wait for it. `cluster remove`
// refuses it without force, naming the HA VM; with force the HA VM
// restarts on one other host, and the host's record stays, marked
// removed, while its namespace holds the other two VMs' records; once
// they are deleted the record goes.
func TestHARemoveFrozenHost(t *testing.T) {
	ctx := bounded(t, 2*time.Minute)
	nodes, logs, _ := haCluster(t, ctx, t.TempDir())
	h1, h2 := nodes[0], nodes[1]
	tm := h2.HATimings()
	if ok, err := h1.Freeze(ctx); !ok || err != nil {
		t.Fatalf("freeze h1: %t %v", ok, err)
	}
	h1.Close()
	waitFor(t, 30*time.Second, "h1's lease to run out", func() bool {
		h, _ := hostOf(h2.Status(ctx), "h1")
		return !h.Alive
	})
	time.Sleep(tm.RestartDelay + 2*time.Second)
	restarts := func() (all []string) {
		for _, l := range logs[1:] {
			for _, r := range l.restarts() {
				all = append(all, l.host+": "+r)
			}
		}
		return all
	}
	if r := restarts(); len(r) != 0 {
		t.Fatalf("the frozen host's HA VM was restarted: %v", r)
	}

	err := h2.Remove(ctx, "h1", false)
	if api.Status(err) != 409 || !strings.Contains(err.Error(), "(ha1)") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("remove frozen h1 without force: %v, want a 409 naming ha1 and --force", err)
	}
	if r := restarts(); len(r) != 0 {
		t.Fatalf("a refused remove restarted the HA VM: %v", r)
	}
	if err := h2.Remove(ctx, "h1", true); err != nil {
		t.Fatalf("remove frozen h1 with force: %v", err)
	}
	waitFor(t, 20*time.Second, "a restart of ha1 after the remove", func() bool { return len(restarts()) > 0 })
	time.Sleep(6 * time.Second) // the next host's turn comes a stagger (5 s) later
	if r := restarts(); len(r) != 1 || !strings.HasSuffix(r[0], ": ha1 from h1") {
		t.Fatalf("restarts after the remove: %v, want ha1 once", r)
	}
	h, ok := hostOf(h2.Status(ctx), "h1")
	if !ok || h.Removed.IsZero() || h.VMs != 2 || !strings.Contains(h.Error, "removed") {
		t.Fatalf("h1 in the status after its removal, holding 2 VM records: %+v %t", h, ok)
	}
	if p, err := h2.PlacementHosts(ctx); err != nil || slices.ContainsFunc(p, func(ph placement.Host) bool { return ph.Name == "h1" }) {
		t.Fatalf("placement after the removal: %v, h1 must not be a candidate", err)
	}

	ns := etcd.New(h2.Store().Client(), etcd.Options{Prefix: cluster.HostPrefix("h1")})
	for _, vm := range []string{"ha-stopped", "plain"} {
		if err := ns.Delete(ctx, "vms", vm); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "h1's record to go with its last VM record", func() bool {
		_, ok := hostOf(h2.Status(ctx), "h1")
		return !ok
	})
}
