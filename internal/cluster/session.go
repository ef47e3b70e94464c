package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster/lock"
	"github.com/godwit-project/godwit/internal/store"
)

// Buckets of the cluster-wide keys.
const (
	hostsBucket      = "hosts"
	heartbeatsBucket = "heartbeats"
)

// Host is a host's registry record.
type Host struct {
	Name string `json:"name"`
	// URL and CA are the host's daemon API and CA (PEM).
	URL string `json:"url"`
	CA  string `json:"ca"`
	// Client: the host runs no store member.
	Client    bool   `json:"client,omitempty"`
	PeerURL   string `json:"peerURL,omitempty"`
	ClientURL string `json:"clientURL,omitempty"`
	CPUs      int    `json:"cpus,omitempty"`
	Memory    int64  `json:"memory,omitempty"`
	// Labels and Schedulable are for placement (the host's, kept when it
	// registers again).
	Labels      map[string]string `json:"labels,omitempty"`
	Schedulable bool              `json:"schedulable"`
	// Pools are the pools every VM can use here (the daemon's own);
	// CPUOvercommit and MemoryOvercommit what the host offers per CPU
	// and per byte of memory.
	Pools            []string  `json:"pools,omitempty"`
	CPUOvercommit    float64   `json:"cpuOvercommit,omitempty"`
	MemoryOvercommit float64   `json:"memoryOvercommit,omitempty"`
	Version          string    `json:"version,omitempty"`
	JoinedAt         time.Time `json:"joinedAt"`
	// Removed is when `cluster remove` took the host out while its
	// namespace still held VM records: the record stays (unschedulable,
	// never asked) so those VMs stay listed and HA restarts its HA VMs,
	// and goes once the namespace is empty (see Node.dropRemoved).
	Removed time.Time `json:"removed,omitzero"`
}

// Heartbeat is what a host writes under its lease.
type Heartbeat struct {
	At time.Time `json:"at"`
}

// session is this host's lease in the cluster, with the locks it holds
// under it.
type session struct {
	lease  store.Lease
	locker *lock.Locker
}

// register writes this host's registry record, keeping the labels (unless
// the config gives some) and schedulability it had. The write is guarded
// by the record's revision, so a drain's change in between is not lost.
func (n *Node) register(ctx context.Context) error {
	h := Host{Name: n.cfg.Name, URL: n.cfg.URL, CA: n.cfg.CA, Client: n.m == nil, Schedulable: true,
		Version: n.cfg.Version, JoinedAt: n.st.JoinedAt, CPUOvercommit: n.cfg.CPUOvercommit, MemoryOvercommit: n.cfg.MemoryOvercommit,
		Labels: n.cfg.Labels}
	if n.cfg.Pool != "" {
		h.Pools = []string{n.cfg.Pool}
	}
	if n.m != nil {
		h.PeerURL, h.ClientURL = n.cfg.PeerURL(), n.cfg.ClientURL()
	}
	if n.cfg.Capacity != nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h.CPUs, h.Memory, _ = n.cfg.Capacity(cctx)
		cancel()
	}
	return n.updateHost(ctx, n.cfg.Name, func(old *Host) (Host, error) {
		next := h
		if old != nil {
			// A host removed and back (joined again) is schedulable anew.
			next.Schedulable = old.Schedulable || !old.Removed.IsZero()
			if n.cfg.Labels == nil {
				next.Labels = old.Labels
			}
			if next.CPUs == 0 {
				next.CPUs, next.Memory = old.CPUs, old.Memory
			}
		}
		return next, nil
	})
}

// SetSchedulable marks a host schedulable (placement may put VMs there)
// or not (drained).
func (n *Node) SetSchedulable(ctx context.Context, host string, on bool) error {
	return n.updateHost(ctx, host, func(old *Host) (Host, error) {
		if old == nil {
			return Host{}, api.NotFound("host %s is not in the cluster registry", host)
		}
		next := *old
		next.Schedulable = on
		return next, nil
	})
}

// updateHost rewrites name's registry record with what f makes of it (old
// is nil when there is none), guarded by its revision: read again and
// retried when it changed in between. Nothing is written when the record
// stays the same.
func (n *Node) updateHost(ctx context.Context, name string, f func(old *Host) (Host, error)) error {
	for range 10 {
		var old *Host
		var rev int64
		it, err := n.shared.GetItem(ctx, hostsBucket, name)
		switch {
		case err == nil:
			var h Host
			if json.Unmarshal(it.Value, &h) == nil {
				old = &h
			}
			rev = it.Rev
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("update host %s in the cluster registry: %w", name, err)
		}
		next, err := f(old)
		if err != nil {
			return err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if old != nil && bytes.Equal(b, it.Value) {
			return nil
		}
		_, err = store.PutIf(ctx, n.shared, hostsBucket, name, b, rev)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update host %s in the cluster registry: %w", name, err)
		}
		return nil
	}
	return api.StatusErrorf(http.StatusConflict, "host %s's registry record kept changing while this host updated it", name)
}

// keepSession keeps this host's lease, and its heartbeat under it, until
// ctx ends: when the lease is lost (the store was unreachable for a whole
// TTL) it grants a new one; the locks taken under the old one are lost.
func (n *Node) keepSession(ctx context.Context) {
	registered := false
	pause := 200 * time.Millisecond
	for ctx.Err() == nil {
		if !registered {
			registered = n.register(ctx) == nil
		}
		l, err := n.shared.Grant(ctx, n.cfg.LeaseTTL)
		if err != nil {
			n.cfg.Log.Debug("cluster: no lease yet", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			pause = min(2*pause, 2*time.Second)
			continue
		}
		pause = 200 * time.Millisecond
		n.mu.Lock()
		n.sess = &session{lease: l, locker: lock.New(n.shared, n.cfg.Name, l)}
		n.mu.Unlock()
		n.thaw(ctx)
		n.cfg.Log.Info("cluster: lease granted", "lease", fmt.Sprintf("%x", int64(l.ID())), "ttl", l.TTL())
		n.heartbeats(ctx, l)
		n.mu.Lock()
		n.sess = nil
		n.mu.Unlock()
		if ctx.Err() == nil {
			n.cfg.Log.Warn("cluster: lease lost; locks held under it are gone; granting a new one", "lease", fmt.Sprintf("%x", int64(l.ID())))
			// Before any new lease: the others restart this host's HA
			// VMs once they see it gone (RestartDelay after).
			n.fence(ctx, "this host's lease is gone")
		}
	}
}

// heartbeats writes this host's heartbeat under l as soon as l is
// granted (tried again every heartbeatRetry until it is written), and
// again every HeartbeatEvery with the registry record refreshed, until l
// ends or ctx does.
//
// The heartbeat's presence is what says this host is alive: the store
// deletes it with the lease, and that is what the others watch
// (placement's alive filter, HA's restart delay and its claim's guard).
// Its content (when it was written) says nothing more, so it is not
// rewritten for liveness: every write is a raft write and a watch event
// for every host, 100 a second for 200 hosts at 2 s (bench
// cluster-scale). The rewrite every HeartbeatEvery only puts it back
// should it have been deleted while the lease lives.
func (n *Node) heartbeats(ctx context.Context, l store.Lease) {
	wait := time.Duration(0)
	for written := false; ; {
		select {
		case <-ctx.Done():
			return
		case <-l.Done():
			return
		case <-time.After(wait):
		}
		b, _ := json.Marshal(Heartbeat{At: time.Now().UTC()})
		cctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
		_, err := n.shared.Txn(cctx, store.Txn{Then: []store.Op{{Bucket: heartbeatsBucket, Key: n.cfg.Name, Value: b, Lease: l.ID()}}})
		if err == nil && written {
			err = n.register(cctx)
		}
		cancel()
		if errors.Is(err, store.ErrLeaseGone) {
			return
		}
		if err != nil && ctx.Err() == nil {
			n.cfg.Log.Debug("cluster: heartbeat not written", "err", err)
		}
		written = written || err == nil
		wait = n.cfg.HeartbeatEvery
		if !written {
			wait = min(heartbeatRetry, n.cfg.HeartbeatEvery)
		}
	}
}

// heartbeatRetry is how soon a heartbeat not written at a new lease is
// tried again; heartbeatTimeout bounds each write.
const (
	heartbeatRetry   = time.Second
	heartbeatTimeout = 5 * time.Second
)

// Lock takes vm's cluster-wide lock for what, under this host's lease,
// at once or not at all (a 409 naming the holder; a 503 while this host
// has no lease, e.g. cut off from the quorum).
func (n *Node) Lock(ctx context.Context, vm, what string) (*lock.Held, error) {
	n.mu.Lock()
	s := n.sess
	n.mu.Unlock()
	if s == nil {
		msg := "this host holds no lease in the cluster yet"
		if ok, why := n.Health(ctx); !ok {
			msg += ": " + why
		}
		return nil, api.StatusErrorf(http.StatusServiceUnavailable, "lock vm %s: %s: %w", vm, msg, store.ErrUnavailable)
	}
	return s.locker.Lock(ctx, vm, what)
}

// Lease is this host's lease now (nil while it has none).
func (n *Node) Lease() store.Lease {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sess == nil {
		return nil
	}
	return n.sess.lease
}
