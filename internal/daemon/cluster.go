package daemon

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/buildinfo"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/health"
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
		Log: d.log.With("component", "cluster"),
	}, nil
}

// startCluster brings a host that is in a cluster back into it (it never
// waits for a quorum for long: see cluster.Start).
func (d *Daemon) startCluster(ctx context.Context) error {
	dir := filepath.Join(d.cfg.StateDir, "cluster")
	if !cluster.Exists(dir) {
		return nil
	}
	cfg, err := d.clusterConfig()
	if err != nil {
		return err
	}
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	d.adoptCluster(n)
	return nil
}

// adoptCluster makes n this daemon's cluster: the hosts of the cluster
// become its peers (trusted through the registry, without a token each).
func (d *Daemon) adoptCluster(n *cluster.Node) {
	d.clusterMu.Lock()
	d.node = n
	d.clusterMu.Unlock()
	n.OnHosts(d.trustClusterHosts)
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
	d.adoptCluster(n)
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

func (d *Daemon) clusterRemove(ctx context.Context, in *nameInput) (*struct{}, error) {
	n := d.clusterNode()
	if n == nil {
		return nil, api.Conflict("this host is in no cluster")
	}
	return &struct{}{}, n.Remove(ctx, in.Name)
}
