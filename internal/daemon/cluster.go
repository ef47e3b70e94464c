package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/buildinfo"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/cluster/lock"
	"github.com/godwit-project/godwit/internal/cluster/placement"
	"github.com/godwit-project/godwit/internal/health"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/vm"
)

// joinTimeout bounds a cluster join: the learner's catch-up and its
// promotion (etcd takes a member only once the voters have been
// connected for 5s, so joins right after each other wait that long).
const joinTimeout = 3 * time.Minute

// clusterRoutes: form and change the cluster, and see it.
func (d *Daemon) clusterRoutes() []route {
	return []route{
		{Read, op("cluster-status", http.MethodGet, "/v1/cluster", "The cluster as this host sees it: the store's members, leader and health, every host's heartbeat", "cluster"), handle(d.clusterStatus)},
		{Admin, op("cluster-init", http.MethodPost, "/v1/cluster/init", "Make this host the first member of a new cluster (its VMs stay)", "cluster"), handle(d.clusterInit)},
		{Admin, op("cluster-join", http.MethodPost, "/v1/cluster/join", "Join the cluster of another host, with a token from it (this host's VMs stay)", "cluster"), handle(d.clusterJoin)},
		{Admin, op("cluster-remove-host", http.MethodDelete, "/v1/cluster/hosts/{name}", "Take a dead host out of the cluster", "cluster"), handle(d.clusterRemove)},
		{Public, op("cluster-admit", http.MethodPost, "/v1/cluster/admit", "A host joins the cluster with a token (daemon to daemon)", "peer"), handle(d.clusterAdmit)},
	}
}

// clusterNode is this host's cluster node; nil on a host in no cluster.
func (d *Daemon) clusterNode() *cluster.Node {
	d.clusterMu.Lock()
	defer d.clusterMu.Unlock()
	return d.node
}

// clusterConfig is this host's cluster setup, from the daemon's.
func (d *Daemon) clusterConfig() (cluster.Config, error) {
	if d.tlsID == nil || d.cfg.Advertise == "" {
		return cluster.Config{}, api.Conflict("this daemon does not listen on TCP, so no other host can reach it: start it with --listen ADDR:PORT (and --advertise URL if ADDR is not the address the others use)")
	}
	u, err := url.Parse(d.cfg.Advertise)
	if err != nil {
		return cluster.Config{}, err
	}
	ip := u.Hostname()
	if net.ParseIP(ip) == nil {
		// A name: the store member needs the address itself (etcd checks
		// certificates against the addresses members connect from).
		ips, err := net.LookupIP(ip)
		if err != nil || len(ips) == 0 {
			return cluster.Config{}, api.Conflict("advertise: cannot resolve %s to the address the cluster store uses: %v", ip, err)
		}
		ip = ips[0].String()
	}
	listenIP := ""
	if host, _, err := net.SplitHostPort(d.cfg.Listen); err == nil && net.ParseIP(host) != nil {
		listenIP = host
	}
	c := d.cfg.Cluster
	return cluster.Config{
		Name: d.cfg.Name, Dir: filepath.Join(d.cfg.StateDir, "cluster"), DataDir: filepath.Join(d.cfg.StateDir, "etcd"),
		IP: ip, ListenIP: listenIP, PeerPort: c.PeerPort, ClientPort: c.ClientPort,
		URL: d.cfg.Advertise, CA: d.tlsID.CAPEM(), Version: buildinfo.String(),
		TickMs: c.TickMs, ElectionMs: c.ElectionMs, ReadyTimeout: c.ReadyTimeout,
		LeaseTTL: c.LeaseTTL, HeartbeatEvery: c.HeartbeatEvery,
		Capacity: func(ctx context.Context) (int, int64, error) {
			info, err := d.hv.HostInfo(ctx)
			return info.CPUs, int64(info.MemoryBytes), err
		},
		Pool: d.cfg.Pool.Name, Labels: c.Labels, CPUOvercommit: c.CPUOvercommit, MemoryOvercommit: c.MemoryOvercommit,
		ReadVM: func(raw []byte) (cluster.VMInfo, error) {
			spec, run, err := vm.RecordInfo(raw)
			return cluster.VMInfo{Need: placement.NeedOf(spec), HA: vm.HARestart(spec), Run: run}, err
		},
		FenceAfter: c.FenceAfter, FenceStop: c.FenceStop, FenceMargin: c.FenceMargin, RestartDelay: c.RestartDelay,
		Log: d.log.With("component", "cluster"),
	}, nil
}

func (d *Daemon) clusterDir() string { return filepath.Join(d.cfg.StateDir, "cluster") }

// openClusterStore brings a host that is in a cluster back into it (it
// never waits for a quorum for long: see cluster.Start) and makes its
// namespace the daemon's store. A bolt file still there is a move into
// the cluster store that did not finish: the daemon serves from the file
// until the move has.
func (d *Daemon) openClusterStore(ctx context.Context) error {
	cfg, err := d.clusterConfig()
	if err != nil {
		return err
	}
	d.awaitOldGuard()
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	d.clusterMu.Lock()
	d.node = n
	d.clusterMu.Unlock()
	if _, err := os.Stat(d.boltPath()); err == nil {
		if err := d.openBolt(); err != nil {
			return err
		}
		d.moveInto(ctx, n)
		return nil
	}
	d.sw = store.NewSwitch(n.Store())
	d.store = d.sw
	return nil
}

// startCluster wires a host that came back into its cluster (the store
// step found it) to its services.
func (d *Daemon) startCluster(context.Context) error {
	if n := d.clusterNode(); n != nil {
		d.wireCluster(n)
	}
	return nil
}

// adoptCluster makes n, which this host just joined or made, the
// daemon's cluster: the host's state moves into n's store, and its
// services start acting as a host of it.
func (d *Daemon) adoptCluster(ctx context.Context, n *cluster.Node) {
	d.moveInto(ctx, n)
	d.clusterMu.Lock()
	d.node = n
	d.clusterMu.Unlock()
	d.wireCluster(n)
}

// wireCluster makes the services act as a host of n's cluster: the VM
// service takes the cluster's VM locks too and refuses names other hosts
// have, operation ids name this host, and the registry's hosts become
// peers (trusted through it, without a token each).
func (d *Daemon) wireCluster(n *cluster.Node) {
	d.ops.SetHost(d.cfg.Name)
	d.vms.SetCluster(clusterVMs{n})
	d.wireHA(n)
	n.OnHosts(d.trustClusterHosts)
	if d.id != "" {
		if err := os.WriteFile(d.daemonIDFile(), []byte(d.id), 0o600); err != nil {
			d.log.Warn("cluster: cannot keep a copy of the daemon id", "err", err)
		}
	}
}

// clusterVMs is the cluster as the VM service sees it.
type clusterVMs struct{ n *cluster.Node }

func (c clusterVMs) Lock(ctx context.Context, name, what string) (vm.ClusterLock, error) {
	held, err := c.n.Lock(ctx, name, what)
	if err != nil {
		return nil, err
	}
	return held, nil
}

func (c clusterVMs) Owner(ctx context.Context, name string) (string, error) {
	return c.n.Owner(ctx, name)
}

func (c clusterVMs) Claim(ctx context.Context, l vm.ClusterLock, name string, record []byte, spec api.VMSpec) error {
	held, ok := l.(*lock.Held)
	if !ok {
		return fmt.Errorf("claim vm %s: its create holds no cluster lock", name)
	}
	return c.n.Claim(ctx, held, name, record, placement.NeedOf(spec))
}

// Released resyncs this host's reservations now (the resync every
// minute would do it too; claims and placement read the VM records
// meanwhile).
func (c clusterVMs) Released(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.n.Resync(ctx, c.n.Name())
}

// daemonIDFile keeps the daemon's id outside the cluster store, for a
// start without the store's quorum.
func (d *Daemon) daemonIDFile() string { return filepath.Join(d.clusterDir(), "daemon-id") }

func (d *Daemon) savedDaemonID() ([]byte, error) {
	b, err := os.ReadFile(d.daemonIDFile())
	if err != nil {
		return nil, fmt.Errorf("the cluster store does not answer, and this host keeps no copy of its daemon id: %w", err)
	}
	return b, nil
}

// moveInto moves this host's state from its bolt file into its namespace
// of n's store (what a former host of its name left there is cleared
// first), and the daemon's store with it: services go on unaware. The
// file stays, renamed godwit.db.before-cluster, as a backup. When the
// store does not take the copy now, the daemon serves from the file and
// tries again in the background.
func (d *Daemon) moveInto(ctx context.Context, n *cluster.Node) {
	if err := d.tryMove(ctx, n); err != nil {
		d.log.Warn("cluster: this host's state is not in the cluster store yet; serving from its own file until it is", "err", err)
		d.retry("move this host's state into the cluster store", func(ctx context.Context) error { return d.tryMove(ctx, n) })
	}
}

func (d *Daemon) tryMove(ctx context.Context, n *cluster.Node) error {
	d.clusterMu.Lock()
	defer d.clusterMu.Unlock()
	if d.bolt == nil {
		return nil
	}
	t0 := time.Now()
	var copied int
	err := d.sw.Replace(func(store.Store) (store.Store, error) {
		if err := n.ClearNamespace(ctx); err != nil {
			return nil, err
		}
		var err error
		if copied, err = store.Copy(ctx, d.bolt, n.Store()); err != nil {
			return nil, fmt.Errorf("copy this host's state into the cluster store: %w", err)
		}
		return n.Store(), nil
	})
	if err != nil {
		return err
	}
	if err := d.bolt.Close(); err != nil {
		d.log.Warn("cluster: close the single-host store", "err", err)
	}
	d.bolt = nil
	backup := d.boltPath() + ".before-cluster"
	if err := os.Rename(d.boltPath(), backup); err != nil {
		d.log.Error("cluster: the single-host store was copied but cannot be renamed; remove it, or the next start copies it again", "path", d.boltPath(), "err", err)
	}
	d.log.Info("cluster: this host's state moved into the cluster store", "keys", copied, "took", time.Since(t0).Round(time.Millisecond), "backup", backup)
	return nil
}

// atStart runs f, which reads the store at start. When the store is the
// cluster's and has no quorum, the daemon starts all the same and runs f
// in the background until it succeeds.
func (d *Daemon) atStart(ctx context.Context, what string, f func(ctx context.Context) error) error {
	var err error
	if d.storeAnswers(ctx) {
		if err = f(ctx); err == nil || d.clusterNode() == nil || !errors.Is(err, store.ErrUnavailable) {
			return err
		}
	}
	d.log.Warn("cluster store unavailable at start; trying again in the background", "what", what, "err", err)
	d.retry(what, f)
	return nil
}

// storeAnswers is false while the daemon's store is the cluster's and
// that has no quorum (a read would wait for its timeout to fail).
func (d *Daemon) storeAnswers(ctx context.Context) bool {
	n := d.clusterNode()
	if n == nil || d.sw.Current() != store.Store(n.Store()) {
		return true
	}
	ready, _ := n.Health(ctx)
	return ready
}

// retry runs f every second until it succeeds or the daemon closes.
func (d *Daemon) retry(what string, f func(ctx context.Context) error) {
	d.bgWG.Add(1)
	go func() {
		defer d.bgWG.Done()
		for {
			select {
			case <-d.bg.Done():
				return
			case <-time.After(time.Second):
			}
			ctx, cancel := context.WithTimeout(d.bg, 30*time.Second)
			err := f(ctx)
			cancel()
			if err == nil {
				d.log.Info("done after all", "what", what)
				return
			}
		}
	}()
}

// trustClusterHosts makes every other host of the registry a peer.
func (d *Daemon) trustClusterHosts(hosts []cluster.Host) {
	for _, h := range hosts {
		if h.Name == d.cfg.Name || h.URL == "" || h.CA == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.peers.Trust(ctx, h.Name, h.URL, h.CA); err != nil {
			d.log.Warn("cluster: cannot trust a host of the registry as a peer", "host", h.Name, "err", err)
		}
		cancel()
	}
}

// clusterHealth is the cluster store's health for the checks (nil in no
// cluster).
func (d *Daemon) clusterHealth(ctx context.Context) *health.ClusterHealth {
	n := d.clusterNode()
	if n == nil {
		return nil
	}
	ready, msg := n.Health(ctx)
	return &health.ClusterHealth{Ready: ready, Message: msg}
}

func (d *Daemon) clusterStatus(ctx context.Context, _ *struct{}) (*struct{ Body api.ClusterStatus }, error) {
	n := d.clusterNode()
	if n == nil {
		return &struct{ Body api.ClusterStatus }{api.ClusterStatus{Self: d.cfg.Name, Message: "this host is in no cluster (godwit cluster init, or godwit cluster join)", Hosts: []api.ClusterHost{}}}, nil
	}
	st := n.Status(ctx)
	st.Peers = d.peersOutside(ctx, st)
	return &struct{ Body api.ClusterStatus }{st}, nil
}

// peersOutside are this host's peers that are no hosts of the cluster.
func (d *Daemon) peersOutside(ctx context.Context, st api.ClusterStatus) []string {
	names, err := d.peers.Names(ctx)
	if err != nil {
		return nil
	}
	in := map[string]bool{}
	for _, h := range st.Hosts {
		in[h.Name] = true
	}
	var out []string
	for _, p := range names {
		if !in[p] {
			out = append(out, p)
		}
	}
	return out
}

// changeCluster runs make, which puts this host in a cluster, one at a
// time and only while the host is in none, and adopts what it made.
func (d *Daemon) changeCluster(ctx context.Context, make func(ctx context.Context, cfg cluster.Config) (*cluster.Node, error)) (*struct{ Body api.ClusterStatus }, error) {
	d.clusterChange.Lock()
	defer d.clusterChange.Unlock()
	if d.clusterNode() != nil {
		return nil, api.Conflict("this host is in a cluster already (godwit cluster status)")
	}
	cfg, err := d.clusterConfig()
	if err != nil {
		return nil, err
	}
	// Not the request's: a join cut half way leaves a learner behind.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), joinTimeout)
	defer cancel()
	n, err := make(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.adoptCluster(ctx, n)
	return &struct{ Body api.ClusterStatus }{n.Status(ctx)}, nil
}

func (d *Daemon) clusterInit(ctx context.Context, in *struct{ Body *api.ClusterInit }) (*struct{ Body api.ClusterStatus }, error) {
	req := api.ClusterInit{}
	if in.Body != nil {
		req = *in.Body
	}
	return d.changeCluster(ctx, func(ctx context.Context, cfg cluster.Config) (*cluster.Node, error) {
		return cluster.Init(ctx, cfg, req.MaxVoters)
	})
}

func (d *Daemon) clusterJoin(ctx context.Context, in *struct{ Body api.ClusterJoin }) (*struct{ Body api.ClusterStatus }, error) {
	return d.changeCluster(ctx, func(ctx context.Context, cfg cluster.Config) (*cluster.Node, error) {
		t0 := time.Now()
		req := api.ClusterAdmit{
			PeerJoin: api.PeerJoin{Token: in.Body.Token, Name: d.cfg.Name, URL: d.cfg.Advertise, CA: d.tlsID.CAPEM()},
			PeerURL:  cfg.PeerURL(), ClientURL: cfg.ClientURL(),
		}
		var adm api.ClusterAdmitted
		if _, err := d.peers.Call(ctx, in.Body.URL, in.Body.Token, "/v1/cluster/admit", req, &adm); err != nil {
			return nil, err
		}
		// The host that admitted this one is a peer (it recorded this one).
		if err := d.peers.Trust(ctx, adm.Name, in.Body.URL, adm.CA); err != nil {
			return nil, err
		}
		n, err := cluster.Join(ctx, cfg, adm)
		if err != nil {
			return nil, err
		}
		d.log.Info("joined the cluster", "via", adm.Name, "role", n.Role(), "took", time.Since(t0).Round(time.Millisecond))
		return n, nil
	})
}

func (d *Daemon) clusterAdmit(ctx context.Context, in *struct{ Body api.ClusterAdmit }) (*struct{ Body api.ClusterAdmitted }, error) {
	n := d.clusterNode()
	if n == nil {
		return nil, api.Conflict("host %s is in no cluster: run 'godwit cluster init' there first", d.cfg.Name)
	}
	// The token is checked and spent, and the joiner recorded as a peer.
	joined, err := d.peers.Join(ctx, in.Body.PeerJoin)
	if err != nil {
		return nil, err
	}
	adm, err := n.Admit(ctx, in.Body.Name)
	if err != nil {
		return nil, err
	}
	adm.PeerJoined = joined
	d.log.Info("cluster: admitting a host", "host", in.Body.Name, "peerURL", in.Body.PeerURL)
	return &struct{ Body api.ClusterAdmitted }{adm}, nil
}

type clusterRemoveInput struct {
	Name  string `path:"name" doc:"Host name"`
	Force bool   `query:"force" doc:"The host is down: remove it even though its daemon stopped cleanly leaving HA VMs running there, which then restart on other hosts."`
}

func (d *Daemon) clusterRemove(ctx context.Context, in *clusterRemoveInput) (*struct{}, error) {
	n := d.clusterNode()
	if n == nil {
		return nil, api.Conflict("this host is in no cluster")
	}
	return &struct{}{}, n.Remove(ctx, in.Name, in.Force)
}
