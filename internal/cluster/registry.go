package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/etcd"
)

// vmsBucket is the VM service's bucket, in each host's namespace: a VM's
// record there makes that host its owner.
const vmsBucket = "vms"

// registry is this node's view of the cluster, kept current by watches:
// the hosts, their heartbeats and every host's VM records.
type registry struct {
	mu       sync.Mutex
	hosts    map[string]Host
	beats    map[string]store.Item
	vms      map[string]map[string][]byte // host -> VM -> record
	watchers map[string]*hostWatch
	// synced is closed once the hosts were read the first time.
	synced chan struct{}
	once   sync.Once
}

// hostWatch follows one host's VM records.
type hostWatch struct {
	st     *etcd.Store
	cancel context.CancelFunc
	done   chan struct{}
}

func newRegistry() registry {
	return registry{hosts: map[string]Host{}, beats: map[string]store.Item{}, vms: map[string]map[string][]byte{},
		watchers: map[string]*hostWatch{}, synced: make(chan struct{})}
}

func (r *registry) closeAll() {
	r.mu.Lock()
	ws := slices.Collect(maps.Values(r.watchers))
	r.watchers = map[string]*hostWatch{}
	r.mu.Unlock()
	for _, w := range ws {
		w.cancel()
		<-w.done
		w.st.Close()
	}
}

// follow keeps a view of bucket current until ctx ends: it reads the
// whole bucket (reset), then applies every change after that read
// (apply), and reads it again when the watch cannot go on (it fell
// behind the store's compaction, or the store went away).
func follow(ctx context.Context, c store.Coord, bucket string, reset func([]store.Item), apply func(store.Event)) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		items, rev, err := c.ListItems(ctx, bucket)
		if err == nil {
			pause = 100 * time.Millisecond
			reset(items)
			for ev, werr := range c.Watch(ctx, bucket, rev+1) {
				if werr != nil {
					break
				}
				apply(ev)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// followRegistry follows the hosts and their heartbeats, and each host's
// VM records, until ctx ends.
func (n *Node) followRegistry(ctx context.Context) {
	r := &n.reg
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		follow(ctx, n.shared, heartbeatsBucket, func(items []store.Item) {
			r.mu.Lock()
			r.beats = map[string]store.Item{}
			for _, it := range items {
				r.beats[it.Key] = it
			}
			r.mu.Unlock()
		}, func(ev store.Event) {
			r.mu.Lock()
			if ev.Kind == store.EventDelete {
				delete(r.beats, ev.Key)
			} else {
				// The event carries no lease: keep the one read before,
				// a new lease shows on the next read.
				it := r.beats[ev.Key]
				it.Key, it.Value, it.Rev = ev.Key, ev.Value, ev.Rev
				r.beats[ev.Key] = it
			}
			r.mu.Unlock()
		})
	}()
	follow(ctx, n.shared, hostsBucket, func(items []store.Item) {
		hosts := map[string]Host{}
		for _, it := range items {
			var h Host
			if json.Unmarshal(it.Value, &h) == nil {
				hosts[it.Key] = h
			}
		}
		r.mu.Lock()
		r.hosts = hosts
		r.mu.Unlock()
		n.hostsChanged(ctx)
		r.once.Do(func() { close(r.synced) })
	}, func(ev store.Event) {
		r.mu.Lock()
		if ev.Kind == store.EventDelete {
			delete(r.hosts, ev.Key)
		} else {
			var h Host
			if json.Unmarshal(ev.Value, &h) == nil {
				r.hosts[ev.Key] = h
			}
		}
		r.mu.Unlock()
		n.hostsChanged(ctx)
	})
}

// hostsChanged starts following the VM records of new hosts, stops for
// hosts gone, and tells the OnHosts listeners.
func (n *Node) hostsChanged(ctx context.Context) {
	r := &n.reg
	r.mu.Lock()
	var stopped []*hostWatch
	for name, w := range r.watchers {
		if _, ok := r.hosts[name]; !ok {
			stopped = append(stopped, w)
			delete(r.watchers, name)
			delete(r.vms, name)
		}
	}
	for name := range r.hosts {
		if r.watchers[name] != nil {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &hostWatch{st: etcd.New(n.cli, etcd.Options{Prefix: HostPrefix(name)}), cancel: cancel, done: make(chan struct{})}
		r.watchers[name] = w
		go func() {
			defer close(w.done)
			follow(wctx, w.st, vmsBucket, func(items []store.Item) {
				m := map[string][]byte{}
				for _, it := range items {
					m[it.Key] = it.Value
				}
				r.mu.Lock()
				if r.watchers[name] == w {
					r.vms[name] = m
				}
				r.mu.Unlock()
			}, func(ev store.Event) {
				r.mu.Lock()
				if m := r.vms[name]; m != nil && r.watchers[name] == w {
					if ev.Kind == store.EventDelete {
						delete(m, ev.Key)
					} else {
						m[ev.Key] = ev.Value
					}
				}
				r.mu.Unlock()
			})
		}()
	}
	hosts := n.hostsLocked()
	listeners := slices.Clone(n.onHosts)
	r.mu.Unlock()
	for _, w := range stopped {
		w.cancel()
		<-w.done
		w.st.Close()
	}
	for _, f := range listeners {
		f(hosts)
	}
}

// OnHosts registers f to hear the registry's hosts whenever they change
// (and at once, with what is known now). f must not block for long.
func (n *Node) OnHosts(f func([]Host)) {
	n.reg.mu.Lock()
	n.onHosts = append(n.onHosts, f)
	hosts := n.hostsLocked()
	n.reg.mu.Unlock()
	if len(hosts) > 0 {
		f(hosts)
	}
}

func (n *Node) hostsLocked() []Host {
	hosts := slices.Collect(maps.Values(n.reg.hosts))
	slices.SortFunc(hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	return hosts
}

// Hosts are the registry's hosts, by name.
func (n *Node) Hosts() []Host {
	n.reg.mu.Lock()
	defer n.reg.mu.Unlock()
	return n.hostsLocked()
}

// Host is one registry record.
func (n *Node) Host(name string) (Host, bool) {
	n.reg.mu.Lock()
	defer n.reg.mu.Unlock()
	h, ok := n.reg.hosts[name]
	return h, ok
}

// Synced is closed once the node has read the registry.
func (n *Node) Synced() <-chan struct{} { return n.reg.synced }

// VMs are the VM records another host holds, by VM name, as the watch
// last saw them.
func (n *Node) VMs(host string) map[string][]byte {
	n.reg.mu.Lock()
	defer n.reg.mu.Unlock()
	return maps.Clone(n.reg.vms[host])
}

// Owner names the host whose namespace holds vm's record ("" when no
// host's does). The watched view answers at once; a VM it does not know
// (a watch a few milliseconds behind) is looked up in every host's
// namespace, so a VM made a moment ago on another host is found.
func (n *Node) Owner(ctx context.Context, vm string) (string, error) {
	r := &n.reg
	r.mu.Lock()
	var owners []string
	for h, m := range r.vms {
		if _, ok := m[vm]; ok {
			owners = append(owners, h)
		}
	}
	ws := maps.Clone(r.watchers)
	r.mu.Unlock()
	if len(owners) > 0 {
		// Two owners for a moment: a migration between adopt and
		// forget. This host, if it is one, else either.
		if slices.Contains(owners, n.cfg.Name) {
			return n.cfg.Name, nil
		}
		slices.Sort(owners)
		return owners[0], nil
	}
	names := slices.Sorted(maps.Keys(ws))
	for _, h := range names {
		_, err := ws[h].st.GetItem(ctx, vmsBucket, vm)
		if err == nil {
			return h, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	return "", nil
}
