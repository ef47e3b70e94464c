package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster/placement"
	"github.com/godwit-project/godwit/internal/store"
)

// HA. A VM with ha: restart is restarted on another host when its host's
// lease is gone. A lease alone gives no mutual exclusion (etcd-io/etcd
// #11490), and a leader may revoke a lease early (etcd-io/etcd#15247), so
// two rules keep a VM from running on two hosts (docs/cluster.md has the
// arithmetic):
//
//   - Self-fencing. A host stops (destroys) its HA VMs when it has not
//     renewed its lease for FenceAfter, timed from the send of its last
//     renewal that went through (the store renewed the lease after that,
//     so the lease cannot have ended before it), or at once when it
//     learns its lease is gone, and the stop takes at most FenceStop.
//   - Restart delay. The others restart its HA VMs only RestartDelay after
//     they saw its lease gone, with RestartDelay >= FenceAfter + FenceStop
//     + FenceMargin: the lease ended after the host's last renewal was
//     sent, so by then the host has stopped them, however early the lease
//     ended.
//
// The restart claims the VM: one transaction, guarded by the lost host's
// heartbeat being gone (its lease), by the VM record's revision (the
// fencing token: the host that comes back rewrites its record, which
// refuses every claim made from the old revision) and by the claimer's
// reservation record, moves the record into the claimer's namespace with
// its reservation, and writes a claim marker under the claimer's lease
// (refused once that is gone). The VM is started only after the claim
// commits. A host that comes back finds its VM's record gone and drops
// its domain; one whose record is still there takes it back the same
// guarded way and starts it again.

const (
	// haClaimsBucket holds, per VM, who last claimed it (under its lease).
	haClaimsBucket = "haclaims"
	// haStagger delays each host that placement ranks lower, so the host
	// it picks claims first and the others only when it does not.
	haStagger = 5 * time.Second
	haTick    = 100 * time.Millisecond
)

// haTimings fills in and checks the HA timings.
func (c *Config) haTimings() error {
	third := max(c.LeaseTTL/3, time.Second)
	if c.FenceAfter <= 0 {
		c.FenceAfter = 2 * c.LeaseTTL / 3
	}
	if c.FenceStop <= 0 {
		c.FenceStop = third
	}
	if c.FenceMargin <= 0 {
		c.FenceMargin = third
	}
	least := c.FenceAfter + c.FenceStop + c.FenceMargin
	if c.RestartDelay <= 0 {
		c.RestartDelay = least
	}
	if c.FenceAfter >= c.LeaseTTL {
		return fmt.Errorf("cluster: fenceAfter %s must be less than leaseTTL %s (a host must stop its HA VMs before its lease can run out)", c.FenceAfter, c.LeaseTTL)
	}
	if c.RestartDelay < least {
		return fmt.Errorf("cluster: restartDelay %s is less than fenceAfter %s + fenceStop %s + fenceMargin %s: a host cut off could still run a VM another host restarts", c.RestartDelay, c.FenceAfter, c.FenceStop, c.FenceMargin)
	}
	return nil
}

// HATimings are the lease and HA timings a node runs with.
type HATimings struct {
	LeaseTTL, FenceAfter, FenceStop, FenceMargin, RestartDelay time.Duration
}

// HATimings are the timings this node runs with (the defaults filled in).
func (n *Node) HATimings() HATimings {
	c := n.cfg
	return HATimings{LeaseTTL: c.LeaseTTL, FenceAfter: c.FenceAfter, FenceStop: c.FenceStop, FenceMargin: c.FenceMargin, RestartDelay: c.RestartDelay}
}

// HAHooks are what the daemon does for HA.
type HAHooks struct {
	// Fence stops the HA VMs named, at once (ctx ends at FenceStop):
	// this host lost its lease, or has not renewed it for FenceAfter.
	Fence func(ctx context.Context, vms []string, why string)
	// Restart starts vm here: this host has just claimed it from host
	// from, which was lost.
	Restart func(ctx context.Context, vm, from string)
	// Rejoined runs once this host holds a lease again after a fence,
	// and at its first lease after a start: it takes back its fenced
	// VMs (Reown) and drops the domains of VMs that moved meanwhile.
	Rejoined func(ctx context.Context)
	// Renewed runs (from the fence loop, which sees each renewal within
	// haTick) after each renewal of this host's lease the store
	// accepted: left is what remains of FenceAfter from that renewal's
	// send, vms this host's HA VMs (those Fence would stop). The daemon
	// feeds its fence guard with them, which fences by itself when the
	// feeds stop (internal/fenceguard).
	Renewed func(left time.Duration, vms []string)
}

// haState is this node's part in HA.
type haState struct {
	mu    sync.Mutex
	hooks *HAHooks
	// renewed: the send of the last renewal of this host's lease that
	// went through (the node's start, before any).
	renewed time.Time
	// fenced: this host has stopped its HA VMs and holds no lease since;
	// rejoin: Rejoined is to run at the next lease.
	fenced, rejoin bool
	fencedAt       time.Time
	fenceWhy       string
	// own are this host's HA VMs as last seen (kept in ha-vms.json, for
	// a start without the store).
	own []string
	// gone: when this node first saw each host's lease gone.
	gone     map[string]time.Time
	claiming map[string]bool
	told     map[string]string // VM -> the last reason told why it is not restarted here
}

func (c Config) haFile() string { return filepath.Join(c.Dir, "ha-vms.json") }

func (h *haState) init(c Config) {
	h.renewed, h.rejoin = time.Now(), true
	h.gone, h.claiming, h.told = map[string]time.Time{}, map[string]bool{}, map[string]string{}
	if b, err := os.ReadFile(c.haFile()); err == nil {
		_ = json.Unmarshal(b, &h.own)
	}
}

// SetHA gives the node the daemon's HA hooks.
func (n *Node) SetHA(h HAHooks) {
	n.ha.mu.Lock()
	n.ha.hooks = &h
	n.ha.mu.Unlock()
}

// Fenced says whether this host has stopped its HA VMs and not rejoined
// since, when and why.
func (n *Node) Fenced() (bool, time.Time, string) {
	n.ha.mu.Lock()
	defer n.ha.mu.Unlock()
	return n.ha.fenced, n.ha.fencedAt, n.ha.fenceWhy
}

// ownHA are this host's HA VMs: in its namespace as the watch last saw
// it, and those kept from before.
func (n *Node) ownHA() []string {
	var out []string
	for name, raw := range n.VMs(n.cfg.Name) {
		if info, err := n.cfg.ReadVM(raw); err == nil && info.HA {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// keepFence fences this host when it has not renewed its lease for
// FenceAfter, keeps the list of its HA VMs on disk, and runs Rejoined
// once it holds a lease again, until ctx ends.
func (n *Node) keepFence(ctx context.Context) { every(ctx, haTick, func() { n.checkFence(ctx) }) }

// checkFence is one round of keepFence.
func (n *Node) checkFence(ctx context.Context) {
	l := n.Lease()
	lost := false
	if l != nil {
		select {
		case <-l.Done():
			lost = true
		default:
		}
	}
	n.ha.mu.Lock()
	fresh := l != nil && !lost && l.Renewed().After(n.ha.renewed)
	if fresh {
		n.ha.renewed = l.Renewed()
	}
	left := n.cfg.FenceAfter - time.Since(n.ha.renewed)
	late := left < 0
	rejoin := !late && !lost && l != nil && n.ha.rejoin && n.ha.hooks != nil
	if rejoin {
		n.ha.rejoin, n.ha.fenced = false, false
	}
	hooks := n.ha.hooks
	n.ha.mu.Unlock()
	switch {
	case lost:
		n.fence(ctx, "this host's lease is gone")
	case late:
		n.fence(ctx, fmt.Sprintf("this host has not renewed its lease for %s (fenceAfter)", n.cfg.FenceAfter))
	case rejoin:
		n.cfg.Log.Info("cluster: this host holds a lease again; taking back its HA VMs")
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			hooks.Rejoined(ctx)
		}()
	}
	if fresh && !late && hooks != nil && hooks.Renewed != nil {
		hooks.Renewed(left, n.fenceList())
	}
	n.keepOwnHA()
}

// every runs f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// keepOwnHA writes this host's HA VMs to disk when they changed.
func (n *Node) keepOwnHA() {
	if _, ok := n.Host(n.cfg.Name); !ok {
		return // the view is not read yet
	}
	own := n.ownHA()
	n.ha.mu.Lock()
	same := slices.Equal(own, n.ha.own)
	if !same {
		n.ha.own = own
	}
	n.ha.mu.Unlock()
	if same {
		return
	}
	b, _ := json.Marshal(own)
	tmp := n.cfg.haFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		err = os.Rename(tmp, n.cfg.haFile())
	}
}

// fenceList are the HA VMs a fence stops: this host's as the view shows
// them, and those it kept from before (the view may not be read yet).
func (n *Node) fenceList() []string {
	n.ha.mu.Lock()
	names := slices.Clone(n.ha.own)
	n.ha.mu.Unlock()
	for _, name := range n.ownHA() {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// fence stops this host's HA VMs (once until it rejoins), within
// FenceStop.
func (n *Node) fence(ctx context.Context, why string) {
	n.ha.mu.Lock()
	if n.ha.fenced {
		n.ha.mu.Unlock()
		return
	}
	n.ha.fenced, n.ha.rejoin, n.ha.fencedAt, n.ha.fenceWhy = true, true, time.Now(), why
	hooks := n.ha.hooks
	n.ha.mu.Unlock()
	names := n.fenceList()
	n.cfg.Log.Error("cluster: fencing: stopping this host's HA VMs, which other hosts may restart", "why", why, "vms", names)
	if hooks == nil || len(names) == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, n.cfg.FenceStop)
	defer cancel()
	hooks.Fence(fctx, names, why)
}

// keepRestarting restarts here, until ctx ends, the HA VMs of hosts whose
// lease has been gone for RestartDelay, when placement picks this host
// for them (a host it ranks k-th waits k times haStagger more).
func (n *Node) keepRestarting(ctx context.Context) {
	every(ctx, 5*haTick, func() { n.checkRestarts(ctx) })
}

// checkRestarts is one round of keepRestarting.
func (n *Node) checkRestarts(ctx context.Context) {
	n.ha.mu.Lock()
	fenced, hooks := n.ha.fenced || n.ha.rejoin, n.ha.hooks
	n.ha.mu.Unlock()
	if n.Lease() == nil || fenced || hooks == nil {
		return
	}
	n.reg.mu.Lock()
	alive := map[string]bool{}
	for h := range n.reg.beats {
		alive[h] = true
	}
	n.reg.mu.Unlock()
	var due []string
	n.ha.mu.Lock()
	for _, h := range n.Hosts() {
		switch {
		case h.Name == n.cfg.Name:
		case alive[h.Name]:
			delete(n.ha.gone, h.Name)
		case n.ha.gone[h.Name].IsZero():
			n.ha.gone[h.Name] = time.Now()
			n.cfg.Log.Warn("cluster: a host's lease is gone; its HA VMs restart elsewhere unless it comes back", "host", h.Name, "restartDelay", n.cfg.RestartDelay)
		default:
			due = append(due, h.Name)
		}
	}
	n.ha.mu.Unlock()
	for _, h := range due {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n.restartFrom(cctx, ctx, h, hooks)
		if rec, ok := n.Host(h); ok && !rec.Removed.IsZero() {
			n.dropRemoved(cctx, h)
		}
		cancel()
	}
}

// restartFrom claims and restarts here the HA VMs of the lost host that
// placement picks this host for, once their delay has passed.
func (n *Node) restartFrom(ctx, bg context.Context, host string, hooks *HAHooks) {
	n.ha.mu.Lock()
	since := time.Since(n.ha.gone[host])
	n.ha.mu.Unlock()
	if since < n.cfg.RestartDelay {
		return
	}
	if _, err := n.shared.GetItem(ctx, frozenBucket, host); err == nil {
		n.tell("host "+host, host, -1, placement.Decision{})
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		return
	}
	items, _, err := n.hostStore(host).ListItems(ctx, vmsBucket)
	if err != nil {
		return
	}
	var hosts []placement.Host
	for _, it := range items {
		info, err := n.cfg.ReadVM(it.Value)
		if err != nil || !info.HA || !info.Run {
			continue
		}
		n.ha.mu.Lock()
		busy := n.ha.claiming[it.Key]
		n.ha.mu.Unlock()
		if busy {
			continue
		}
		if hosts == nil {
			if hosts, err = n.PlacementHosts(ctx); err != nil {
				return
			}
		}
		need := info.Need
		need.Exclude = []string{host}
		dec := placement.Choose(hosts, need, placement.Spread)
		rank := slices.Index(dec.Candidates(), n.cfg.Name)
		if rank < 0 || since < n.cfg.RestartDelay+time.Duration(rank)*haStagger {
			n.tell(it.Key, host, rank, dec)
			continue
		}
		n.ha.mu.Lock()
		n.ha.claiming[it.Key] = true
		n.ha.mu.Unlock()
		err = n.claimFrom(ctx, host, it)
		n.ha.mu.Lock()
		delete(n.ha.claiming, it.Key)
		n.ha.mu.Unlock()
		var ce *store.ConflictError
		switch {
		case err == nil:
			n.cfg.Log.Warn("cluster: claimed the HA VM of a lost host; restarting it here", "vm", it.Key, "from", host, "leaseGoneFor", since.Round(time.Millisecond))
			n.wg.Add(1)
			go func(vm string) {
				defer n.wg.Done()
				hooks.Restart(bg, vm, host)
			}(it.Key)
		case errors.As(err, &ce), api.Status(err) == 409:
			n.cfg.Log.Info("cluster: the claim of an HA VM did not go through (another host took it, or its host came back)", "vm", it.Key, "from", host, "err", err)
		default:
			n.cfg.Log.Warn("cluster: claim of an HA VM failed", "vm", it.Key, "from", host, "err", err)
		}
	}
}

// tell logs, once per reason, why this host does not restart a VM now.
func (n *Node) tell(vm, from string, rank int, dec placement.Decision) {
	why := "placement: " + dec.Explain()
	switch {
	case len(dec.Verdicts) == 0:
		why = "its daemon was stopped cleanly, leaving its HA VMs running (frozen)"
	case rank > 0:
		why = fmt.Sprintf("placement ranks this host %d-th: it waits %s more", rank+1, time.Duration(rank)*haStagger)
	}
	n.ha.mu.Lock()
	defer n.ha.mu.Unlock()
	if n.ha.told[vm] != why {
		n.ha.told[vm] = why
		n.cfg.Log.Info("cluster: not restarting the HA VM of a lost host here", "vm", vm, "from", from, "why", why)
	}
}

// frozenBucket marks the hosts whose daemon stopped cleanly: their HA VMs
// run on (a daemon's restart must not move them), so the others do not
// restart them when the host's lease runs out. A daemon killed leaves no
// mark: see docs/cluster.md.
const frozenBucket = "frozen"

// Freeze marks this host's daemon as stopped cleanly, its HA VMs left
// running: the other hosts do not restart them until it is back (its
// next lease clears the mark). It says whether the mark was written:
// without it the others restart them once the lease runs out, so they
// must be fenced (by the fence guard).
func (n *Node) Freeze(ctx context.Context) (bool, error) {
	if n.Lease() == nil {
		return false, nil // cut off: the others restart its VMs, and it fenced them
	}
	b, _ := json.Marshal(struct {
		At time.Time `json:"at"`
	}{time.Now().UTC()})
	if err := n.shared.Put(ctx, frozenBucket, n.cfg.Name, b); err != nil {
		return false, err
	}
	return true, nil
}

// thaw clears this host's frozen mark (it holds a lease: it is back).
func (n *Node) thaw(ctx context.Context) {
	if err := n.shared.Delete(ctx, frozenBucket, n.cfg.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
		n.cfg.Log.Warn("cluster: cannot clear this host's frozen mark", "err", err)
	}
}

// haClaim is what the claim marker of a VM says.
type haClaim struct {
	Host string    `json:"host"`
	From string    `json:"from,omitempty"`
	At   time.Time `json:"at"`
}

// claimFrom moves the record it of the lost host into this host's
// namespace, with its reservation here, in one transaction guarded by the
// lost host's heartbeat being gone, the record's revision, this host's
// reservation record, and this host's lease (the claim marker).
func (n *Node) claimFrom(ctx context.Context, from string, it store.Item) error {
	l := n.Lease()
	if l == nil {
		return errors.New("this host holds no lease")
	}
	info, err := n.cfg.ReadVM(it.Value)
	if err != nil {
		return err
	}
	marker, _ := json.Marshal(haClaim{Host: n.cfg.Name, From: from, At: time.Now().UTC()})
	hb, hk := sharedKey(heartbeatsBucket, from)
	ob, ok := hostKey(from, vmsBucket, it.Key)
	nb, nk := hostKey(n.cfg.Name, vmsBucket, it.Key)
	mb, mk := sharedKey(haClaimsBucket, it.Key)
	return n.reserve(ctx, n.cfg.Name, change{add: it.Key, need: info.Need,
		guards: []store.Guard{{Bucket: hb, Key: hk}, {Bucket: ob, Key: ok, Rev: it.Rev}, {Bucket: nb, Key: nk}},
		ops: []store.Op{{Bucket: ob, Key: ok, Delete: true}, {Bucket: nb, Key: nk, Value: it.Value},
			{Bucket: mb, Key: mk, Value: marker, Lease: l.ID()}},
	})
}

// Reown takes back a VM whose record this host still holds after it was
// fenced: it rewrites the record, guarded by the revision it reads and
// under this host's lease (the claim marker), so that no other host's
// claim made from the old revision can go through after. It says false
// when the record is gone: another host claimed the VM.
func (n *Node) Reown(ctx context.Context, vm string) (bool, error) {
	l := n.Lease()
	if l == nil {
		return false, errors.New("this host holds no lease")
	}
	for range 3 {
		it, err := n.own.GetItem(ctx, vmsBucket, vm)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		marker, _ := json.Marshal(haClaim{Host: n.cfg.Name, At: time.Now().UTC()})
		b, k := hostKey(n.cfg.Name, vmsBucket, vm)
		mb, mk := sharedKey(haClaimsBucket, vm)
		_, err = n.root.Txn(ctx, store.Txn{If: []store.Guard{{Bucket: b, Key: k, Rev: it.Rev}},
			Then: []store.Op{{Bucket: b, Key: k, Value: it.Value}, {Bucket: mb, Key: mk, Value: marker, Lease: l.ID()}}})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err == nil, err
	}
	return false, fmt.Errorf("reown vm %s: its record kept changing", vm)
}
