package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster/lock"
	"github.com/godwit-project/godwit/internal/cluster/placement"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/etcd"
)

// Reservations. Each host has a reservation record in the shared part of
// the store (/godwit/cluster/reservations/<host>): every VM placed on it
// with the CPUs and memory it takes and its anti-affinity group. The
// entries follow the host's VM records (a record in its namespace is an
// entry), plus pending entries other hosts made for VMs on their way to
// it (a drain's destination), which last pendingTTL unless a record
// comes.
//
// Every write of the record is guarded by its revision (read, decide,
// write if unchanged, else read again), and the write that claims a VM
// for a host (its first record, or its record moved by an HA restart) is
// in the same transaction: two creates never both take a host's last
// room.
const (
	reservationsBucket = "reservations"
	pendingTTL         = 5 * time.Minute
	// reserveTries bounds the read-decide-write rounds of one change:
	// each lost round means another change went through.
	reserveTries = 100
)

// Keys of the whole store (root): "hosts"/"H/<bucket>/<key>" is a key of
// host H's namespace, "cluster"/"<bucket>/<key>" a shared one, so one
// transaction can span them.
const (
	rootHosts  = "hosts"
	rootShared = "cluster"
)

func hostKey(host, bucket, key string) (string, string) {
	return rootHosts, host + "/" + bucket + "/" + key
}

func sharedKey(bucket, key string) (string, string) { return rootShared, bucket + "/" + key }

func hostGuard(host, bucket, key string, rev int64) store.Guard {
	b, k := hostKey(host, bucket, key)
	return store.Guard{Bucket: b, Key: k, Rev: rev}
}

func sharedGuard(bucket, key string, rev int64) store.Guard {
	b, k := sharedKey(bucket, key)
	return store.Guard{Bucket: b, Key: k, Rev: rev}
}

// rootGuard turns a guard of the shared store (a lock's) into one of the
// root store.
func rootGuard(g store.Guard) store.Guard { return sharedGuard(g.Bucket, g.Key, g.Rev) }

// noRoom: the host cannot take the VM (a 409 with reason no-room).
func noRoom(format string, args ...any) error {
	err := api.StatusErrorf(http.StatusConflict, format, args...)
	err.Reason = api.ReasonNoRoom
	return err
}

// Reservation is a host's reservation record as it is now, with its
// revision (0: none yet).
func (n *Node) Reservation(ctx context.Context, host string) (placement.Reservation, int64, error) {
	var r placement.Reservation
	it, err := n.shared.GetItem(ctx, reservationsBucket, host)
	if errors.Is(err, store.ErrNotFound) {
		return placement.Reservation{VMs: map[string]placement.Entry{}}, 0, nil
	}
	if err != nil {
		return r, 0, err
	}
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return r, 0, fmt.Errorf("reservation record of %s: %w", host, err)
	}
	if r.VMs == nil {
		r.VMs = map[string]placement.Entry{}
	}
	return r, it.Rev, nil
}

// change is one reservation change made with its claim: the VM that
// takes room (none: a resync only), more guards and writes of the same
// transaction.
type change struct {
	add    string
	need   placement.Need
	guards []store.Guard
	ops    []store.Op
	// pending marks the entry as one of a VM still on its way.
	pending bool
}

// reserve brings host's reservation record up to date with its VM records
// and, for c.add, checks that the host has room for it and adds its entry,
// all in one transaction with c's guards and writes; it reads and decides
// again when another change went through first. A guard of c that fails
// is returned as the ConflictError it is.
func (n *Node) reserve(ctx context.Context, host string, c change) error {
	for range reserveTries {
		res, rev, err := n.Reservation(ctx, host)
		if err != nil {
			return err
		}
		next, err := n.entriesOf(ctx, host, res)
		if err != nil {
			return err
		}
		if c.add != "" {
			h, _ := n.Host(host)
			ph := placementHost(h, true, placement.Reservation{VMs: next})
			need := c.need
			need.Networks, need.Pools, need.Images, need.Exclude = nil, nil, nil, nil // the host checks its own
			if why := placement.Check(ph, need); why != "" {
				return noRoom("host %s cannot take vm %s: %s", host, c.add, why)
			}
			e := need.Entry()
			if c.pending {
				e.Pending, e.Since = true, time.Now().UTC().Truncate(time.Second)
			}
			next[c.add] = e
		}
		if c.add == "" && len(c.ops) == 0 && reflect.DeepEqual(next, res.VMs) {
			return nil
		}
		b, err := json.Marshal(placement.Reservation{VMs: next})
		if err != nil {
			return err
		}
		bk, k := sharedKey(reservationsBucket, host)
		resGuard := store.Guard{Bucket: bk, Key: k, Rev: rev}
		_, err = n.root.Txn(ctx, store.Txn{
			If:   append([]store.Guard{resGuard}, c.guards...),
			Then: append([]store.Op{{Bucket: bk, Key: k, Value: b}}, c.ops...),
		})
		var ce *store.ConflictError
		if errors.As(err, &ce) && ce.Guard == resGuard {
			continue // another change of the record went first: again
		}
		return err
	}
	return api.StatusErrorf(http.StatusServiceUnavailable, "the reservation record of host %s changed %d times while this host tried to change it", host, reserveTries)
}

// entriesOf are the entries host's record should have: one for each VM
// record in its namespace (read after res, so a record claimed with its
// entry is seen), and res's pending entries still young.
func (n *Node) entriesOf(ctx context.Context, host string, res placement.Reservation) (map[string]placement.Entry, error) {
	items, _, err := n.hostStore(host).ListItems(ctx, vmsBucket)
	if err != nil {
		return nil, err
	}
	return n.entriesFrom(host, items, res), nil
}

// entriesFrom are the entries host's record should have, its VM records
// being items.
func (n *Node) entriesFrom(host string, items []store.Item, res placement.Reservation) map[string]placement.Entry {
	next := map[string]placement.Entry{}
	known := n.needs.of(host)
	seen := make(map[string]decodedNeed, len(items))
	for _, it := range items {
		name := it.Key
		if d, ok := known[name]; ok && d.rev == it.Rev && it.Rev != 0 {
			next[name], seen[name] = d.e, d
			continue
		}
		info, err := n.cfg.ReadVM(it.Value)
		if err != nil {
			n.cfg.Log.Warn("cluster: a VM record placement cannot read", "host", host, "vm", name, "err", err)
			continue
		}
		next[name] = info.Need.Entry()
		seen[name] = decodedNeed{rev: it.Rev, e: next[name]}
	}
	n.needs.set(host, seen)
	for name, e := range res.VMs {
		if _, ok := next[name]; !ok && e.Pending && time.Since(e.Since) < pendingTTL {
			next[name] = e
		}
	}
	return next
}

// Claim writes the first record of a VM this host creates and its
// reservation entry here, in one transaction guarded by the VM's cluster
// lock (the create's fencing token), by the VM having no record here yet,
// and by the revision of this host's reservation record: a 409 with
// reason no-room when this host has no room for it (its CPUs and memory
// with its overcommit, less what its VMs hold; anti-affinity; a drained
// host takes none).
func (n *Node) Claim(ctx context.Context, held *lock.Held, vm string, record []byte, need placement.Need) error {
	b, k := hostKey(n.cfg.Name, vmsBucket, vm)
	err := n.reserve(ctx, n.cfg.Name, change{add: vm, need: need,
		guards: []store.Guard{rootGuard(held.Guard()), {Bucket: b, Key: k}},
		ops:    []store.Op{{Bucket: b, Key: k, Value: record}},
	})
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce) && ce.Guard.Key == k:
		return api.Conflict("vm %s already exists on this host", vm)
	case errors.As(err, &ce):
		return fmt.Errorf("claim vm %s: its cluster lock was lost: %w", vm, lock.ErrLost)
	}
	return err
}

// Reserve holds room for a VM on host, which it is on its way to (a
// drain's destination): a pending entry, kept until the VM's record
// arrives there or pendingTTL passes.
func (n *Node) Reserve(ctx context.Context, host, vm string, need placement.Need) error {
	return n.reserve(ctx, host, change{add: vm, need: need, pending: true})
}

// Resync brings host's reservation record up to date with its VM
// records (a VM deleted, or arrived by migration).
func (n *Node) Resync(ctx context.Context, host string) error {
	return n.reserve(ctx, host, change{})
}

// keepReservation resyncs this host's reservation record about every
// period (jittered, so that hosts started together do not resync
// together) until ctx ends.
//
// Nothing relies on the record's entries being current: each claim and
// each placement reads the host's VM records and takes the entries from
// them, keeping of the record only its pending entries and its revision
// (the claims' guard), and a create undone or a delete resyncs at once
// (vm.Cluster.Released). The resync only tidies the record: each is a
// read of every VM record of the host, so one every 5 s per host was
// 40 reads a second, every record decoded, at 200 hosts (bench
// cluster-scale).
func (n *Node) keepReservation(ctx context.Context, period time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(period)):
		}
		if n.Lease() == nil {
			continue // no quorum, or not yet
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := n.Resync(cctx, n.cfg.Name); err != nil && ctx.Err() == nil {
			n.cfg.Log.Debug("cluster: reservation record not resynced", "err", err)
		}
		cancel()
	}
}

// jitter is d give or take a quarter, at random.
func jitter(d time.Duration) time.Duration {
	return d - d/4 + rand.N(d/2+1)
}

// placementHost is h as placement sees it, with its reservation.
func placementHost(h Host, alive bool, res placement.Reservation) placement.Host {
	pools := append([]string{}, h.Pools...)
	return placement.Host{Name: h.Name, Alive: alive, Schedulable: h.Schedulable, Labels: h.Labels,
		CPUs: h.CPUs, Memory: h.Memory, CPUOvercommit: h.CPUOvercommit, MemoryOvercommit: h.MemoryOvercommit,
		Pools: pools, Reserved: res}
}

// PlacementHosts are the registry's hosts as placement sees them now:
// alive or not, their labels, capacity and overcommit, reservations, and
// the networks, pools and images their namespaces hold.
//
// Every host's reservation record is one range read; each host's VM
// records and inventory four more, all sent in read transactions of 100
// ranges at once (etcd.ListRanges): 9 round trips at 200 hosts where one
// read each, 16 hosts at once, took 170-270 ms (bench cluster-scale).
func (n *Node) PlacementHosts(ctx context.Context) ([]placement.Host, error) {
	hosts := slices.DeleteFunc(n.Hosts(), func(h Host) bool { return !h.Removed.IsZero() })
	n.reg.mu.Lock()
	beats := maps.Clone(n.reg.beats)
	n.reg.mu.Unlock()
	inventory := []struct {
		bucket string
		into   func(*placement.Host) *[]string
	}{
		{"networks", func(h *placement.Host) *[]string { return &h.Networks }},
		{"pools", func(h *placement.Host) *[]string { return &h.Pools }},
		{"images", func(h *placement.Host) *[]string { return &h.Images }},
	}
	per := 1 + len(inventory)
	ranges := []etcd.Range{{Prefix: rootShared + "/" + reservationsBucket + "/"}}
	for _, h := range hosts {
		ns := rootHosts + "/" + h.Name + "/"
		ranges = append(ranges, etcd.Range{Prefix: ns + vmsBucket + "/"})
		for _, inv := range inventory {
			ranges = append(ranges, etcd.Range{Prefix: ns + inv.bucket + "/", KeysOnly: true})
		}
	}
	got, err := n.root.ListRanges(ctx, ranges)
	if err != nil {
		return nil, err
	}
	reservations := map[string][]byte{}
	for _, it := range got[0] {
		reservations[it.Key] = it.Value
	}
	out := make([]placement.Host, len(hosts))
	for i, h := range hosts {
		res := placement.Reservation{}
		if raw, ok := reservations[h.Name]; ok {
			if err := json.Unmarshal(raw, &res); err != nil {
				return nil, fmt.Errorf("reservation record of %s: %w", h.Name, err)
			}
		}
		// What the host's records say, besides the record of its
		// reservations (which a resync brings up to date later).
		at := 1 + i*per
		res.VMs = n.entriesFrom(h.Name, got[at], res)
		_, alive := beats[h.Name]
		out[i] = placementHost(h, alive, res)
		for j, inv := range inventory {
			into := inv.into(&out[i])
			for _, it := range got[at+1+j] {
				*into = append(*into, it.Key)
			}
		}
	}
	return out, nil
}

// needCache keeps each VM record's placement entry with the record's
// revision: a placement reads every host's VM records, and decoding
// each whole record (its spec) again at every choice was most of a
// placement's time at 200 hosts and 10,000 VMs (bench cluster-scale). A
// record rewritten has a new revision and is decoded again; a host's
// entries are replaced by each read of its records, so VMs gone leave.
type needCache struct {
	mu     sync.Mutex
	byHost map[string]map[string]decodedNeed
}

type decodedNeed struct {
	rev int64
	e   placement.Entry
}

// ForgetDecodedVMs empties the cache of decoded VM records, so that the
// next placement decodes every record again: bench cluster-scale's
// baseline for the cache, in the same run.
func (n *Node) ForgetDecodedVMs() {
	n.needs.mu.Lock()
	n.needs.byHost = nil
	n.needs.mu.Unlock()
}

func (c *needCache) of(host string) map[string]decodedNeed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byHost[host]
}

func (c *needCache) set(host string, m map[string]decodedNeed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byHost == nil {
		c.byHost = map[string]map[string]decodedNeed{}
	}
	c.byHost[host] = m
}
