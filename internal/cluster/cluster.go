// Package cluster is this host's part in a cluster of godwit hosts that
// share one store, an embedded etcd: it forms and changes the cluster
// (Init, Join, Start, Remove), keeps this host's registry record and its
// heartbeat under its lease, hands out per-VM locks under that lease, and
// follows every host's VM records with watches, for the daemon's
// cluster-wide view and its forwarding of requests to a VM's owner.
//
// Where things live in the store (internal/store/etcd keys):
//
//	/godwit/hosts/<host>/<bucket>/<key>  a host's own state: its services' buckets
//	                                     (a VM's record sits under its owner)
//	/godwit/cluster/hosts/<host>         the host registry (Host)
//	/godwit/cluster/heartbeats/<host>    the host's heartbeat, under its lease
//	/godwit/cluster/vmlocks/<vm>         per-VM locks (internal/cluster/lock)
//
// Trust: the cluster has one CA, made by Init and handed to each joining
// host over the join (authenticated by a one-time token, as peers join):
// every host signs its own store member certificate with it, covering
// its addresses (etcd checks a peer's certificate against the address it
// connects from, and reads its CA file once at start, so per-host CAs
// cannot work).
//
// This package runs the store member through internal/cluster/member and
// reads and writes through internal/store/etcd. It knows nothing of VMs
// beyond the keys of their records; the daemon wires it to its services.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cluster/member"
	"github.com/godwit-project/godwit/internal/cluster/placement"
	"github.com/godwit-project/godwit/internal/pki"
	"github.com/godwit-project/godwit/internal/revert"
	"github.com/godwit-project/godwit/internal/store/etcd"
)

// Key prefixes of the store (see the package comment).
const (
	hostsPrefix  = etcd.DefaultPrefix + "hosts/"
	sharedPrefix = etcd.DefaultPrefix + "cluster/"
)

// HostPrefix is where a host's own buckets live in the store.
func HostPrefix(host string) string { return hostsPrefix + host + "/" }

// Defaults of Config.
const (
	DefaultPeerPort       = 2380
	DefaultClientPort     = 2379
	DefaultLeaseTTL       = 6 * time.Second
	DefaultHeartbeatEvery = 30 * time.Second
)

// Config is this host's cluster setup.
type Config struct {
	// Name is the host's name: its member's and its namespace's.
	Name string
	// Dir keeps the cluster's local files: cluster.json, the cluster CA
	// (pki/) and the member's certificate (tls/). DataDir is the member's
	// etcd data.
	Dir, DataDir string
	// IP is the address the member's URLs advertise; ListenIP what it
	// listens on ("": IP).
	IP, ListenIP string
	// PeerPort and ClientPort are the member's ports (0: 2380 and 2379).
	PeerPort, ClientPort int
	// URL and CA are this host's daemon API and its CA (PEM), for the
	// registry: the other hosts forward requests and migrate VMs to it.
	URL, CA string
	// Version is the daemon's, for the registry.
	Version string
	// TickMs and ElectionMs are the store's raft timings (0: etcd's).
	TickMs, ElectionMs uint
	// ReadyTimeout bounds the wait for a quorum at start (0: 10s).
	ReadyTimeout time.Duration
	// LeaseTTL is the heartbeat lease's; HeartbeatEvery how often the
	// heartbeat is written again after the first write under each lease,
	// with the registry record refreshed (0: the defaults). Liveness is
	// the heartbeat's presence under the lease, not its rewrites.
	LeaseTTL, HeartbeatEvery time.Duration
	// Capacity reports the host's CPUs and memory for the registry (nil:
	// none).
	Capacity func(ctx context.Context) (cpus int, memory int64, err error)
	// Pool is the pool new VM disks go to here; Labels the host's labels
	// for placement's host selectors (nil: keep those it has);
	// CPUOvercommit and MemoryOvercommit what it offers per CPU and byte
	// (0: placement's defaults).
	Pool                            string
	Labels                          map[string]string
	CPUOvercommit, MemoryOvercommit float64
	// ReadVM reads what a VM record says for placement and HA (nil:
	// records count for nothing).
	ReadVM func(record []byte) (VMInfo, error)
	// The HA timings (0: derived from LeaseTTL; see docs/cluster.md):
	// a host that has not renewed its lease for FenceAfter, or has lost
	// it, stops its HA VMs within FenceStop; the other hosts restart a
	// host's HA VMs RestartDelay after they saw its lease gone, which
	// must be at least FenceAfter + FenceStop + FenceMargin.
	FenceAfter, FenceStop, FenceMargin, RestartDelay time.Duration
	Log                                              *slog.Logger
	// Simulated: the host does only what every host does for the store
	// whatever it runs (its registry record, lease and heartbeat, the
	// resync of its reservation record, claims of its own VMs), keeping
	// no view of the others and taking no part in HA. Only the scale
	// simulation (bench/clusterscale.go) sets it, whose hundreds of
	// hosts are goroutines of one process; a daemon never does.
	Simulated bool
}

// VMInfo is what a VM record says for placement and HA.
type VMInfo struct {
	Need placement.Need
	// HA: the VM is restarted elsewhere when its host is lost; Run: it
	// should run.
	HA, Run bool
}

func (c *Config) complete() error {
	if c.Name == "" || c.Dir == "" || c.DataDir == "" {
		return errors.New("cluster: Name, Dir and DataDir are required")
	}
	if net.ParseIP(c.IP) == nil {
		return api.Conflict("the cluster needs this host's address: start the daemon with --listen IP:PORT (or --advertise https://IP:PORT), an IP the other hosts reach (%q is none)", c.IP)
	}
	if c.URL == "" || c.CA == "" {
		return api.Conflict("the cluster needs the daemon's TCP API: start it with --listen ADDR:PORT")
	}
	if c.ListenIP == "" {
		c.ListenIP = c.IP
	}
	if c.PeerPort == 0 {
		c.PeerPort = DefaultPeerPort
	}
	if c.ClientPort == 0 {
		c.ClientPort = DefaultClientPort
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.HeartbeatEvery <= 0 {
		c.HeartbeatEvery = DefaultHeartbeatEvery
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.ReadVM == nil {
		c.ReadVM = func([]byte) (VMInfo, error) { return VMInfo{}, nil }
	}
	return c.haTimings()
}

func url(ip string, port int) string { return "https://" + net.JoinHostPort(ip, strconv.Itoa(port)) }

// PeerURL and ClientURL are this host's member's URLs.
func (c Config) PeerURL() string   { return url(c.IP, c.PeerPort) }
func (c Config) ClientURL() string { return url(c.IP, c.ClientPort) }

func (c Config) stateFile() string { return filepath.Join(c.Dir, "cluster.json") }
func (c Config) caDir() string     { return filepath.Join(c.Dir, "pki") }

// state is what this host keeps of its cluster (cluster.json).
type state struct {
	ClusterID string `json:"clusterID"`
	// Client: the host runs no member (the voters were full).
	Client bool `json:"client,omitempty"`
	// Endpoints are the voters' client URLs: a client host's store, and
	// where a member that lost its data joins again (kept up to date).
	Endpoints []string  `json:"endpoints,omitempty"`
	JoinedAt  time.Time `json:"joinedAt"`
}

// Exists says whether dir holds this host's cluster files: the daemon
// then Starts the cluster instead of opening its single-host store.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "cluster.json"))
	return err == nil
}

func (c Config) saveState(s state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := c.stateFile() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.stateFile())
}

func (c Config) loadState() (state, error) {
	var s state
	b, err := os.ReadFile(c.stateFile())
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", c.stateFile(), err)
	}
	return s, nil
}

// Node is this host in its cluster.
type Node struct {
	cfg Config
	st  state
	ca  *pki.Identity
	tls pki.TLSFiles
	// m is the host's store member; nil on a client host, whose client
	// is dialed (and closed with the node).
	m      *member.Member
	cli    *clientv3.Client
	dialed *etcd.Store
	// own is this host's namespace, shared the cluster-wide keys, root
	// the whole store (for transactions that span both).
	own, shared, root *etcd.Store
	// hostStores are the other hosts' namespaces, by host.
	hostStores sync.Map

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// opts are the store options of every namespace.
	opts etcd.Options

	mu      sync.Mutex
	sess    *session
	reg     registry
	onHosts []func([]Host)
	ha      haState
	// needs are the VM records' placement entries as last decoded, by
	// host, then VM (see entriesFrom).
	needs needCache
}

// memberConfig is the member of this host.
func (c Config) memberConfig(files pki.TLSFiles, maxVoters int) member.Config {
	return member.Config{
		Name: c.Name, DataDir: c.DataDir, PeerURL: c.PeerURL(), ClientURL: c.ClientURL(),
		ListenPeerURL: url(c.ListenIP, c.PeerPort), ListenClientURL: url(c.ListenIP, c.ClientPort),
		TLS: files, MaxVoters: maxVoters, ReadyTimeout: c.ReadyTimeout,
		TickMs: c.TickMs, ElectionMs: c.ElectionMs, Log: c.Log,
	}
}

// memberTLS writes this host's member certificate, signed by the cluster
// CA, for its name and every address it uses.
func (c Config) memberTLS(ca *pki.Identity) (pki.TLSFiles, error) {
	ips := []net.IP{net.ParseIP(c.IP), net.IPv4(127, 0, 0, 1)}
	if ip := net.ParseIP(c.ListenIP); ip != nil && !ip.IsUnspecified() && !ip.Equal(ips[0]) {
		ips = append(ips, ip)
	}
	return ca.WriteMemberTLS(filepath.Join(c.Dir, "tls"), c.Name, []string{"localhost", c.Name}, ips)
}

// loadCA loads the cluster CA (making one for Init) and this host's
// member certificate.
func (c Config) loadCA() (*pki.Identity, pki.TLSFiles, error) {
	ca, err := pki.LoadOrCreateCA(c.caDir(), "cluster "+c.Name)
	if err != nil {
		return nil, pki.TLSFiles{}, err
	}
	files, err := c.memberTLS(ca)
	return ca, files, err
}

// Init makes this host the first member of a new cluster, with a new
// cluster CA. maxVoters is 3 (0) or 5.
func Init(ctx context.Context, cfg Config, maxVoters int) (*Node, error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	if Exists(cfg.Dir) {
		return nil, api.Conflict("this host is in a cluster already (%s)", cfg.stateFile())
	}
	if maxVoters != 0 && maxVoters != 3 && maxVoters != 5 {
		return nil, api.BadRequest("maxVoters: %d; a cluster has 3 or 5 voters", maxVoters)
	}
	r := revert.New()
	defer r.Fail()
	r.Add(func() { os.RemoveAll(cfg.Dir); os.RemoveAll(cfg.DataDir) })
	ca, files, err := cfg.loadCA()
	if err != nil {
		return nil, err
	}
	m, err := member.Init(ctx, cfg.memberConfig(files, maxVoters))
	if err != nil {
		return nil, api.StatusErrorf(http.StatusServiceUnavailable, "start the cluster store: %w", err)
	}
	r.Add(func() { m.Close() })
	n, err := settle(ctx, cfg, state{ClusterID: m.ClusterID(), JoinedAt: time.Now().UTC()}, ca, files, m, nil)
	if err != nil {
		return nil, err
	}
	r.Success()
	cfg.Log.Info("cluster: initialised", "cluster", n.ID(), "host", cfg.Name, "peerURL", cfg.PeerURL())
	return n, nil
}

// settle records this host's cluster, registers it and starts its node.
func settle(ctx context.Context, cfg Config, st state, ca *pki.Identity, files pki.TLSFiles, m *member.Member, dialed *etcd.Store) (*Node, error) {
	if err := cfg.saveState(st); err != nil {
		return nil, err
	}
	n := newNode(cfg, st, ca, files, m, dialed)
	if err := n.register(ctx); err != nil {
		n.Close()
		return nil, err
	}
	n.run()
	return n, nil
}

// Join makes this host a host of the cluster that admitted it: a voter
// (its member joins as a learner and is promoted once caught up) while
// the cluster has voters to take, else a client of the voters.
func Join(ctx context.Context, cfg Config, adm api.ClusterAdmitted) (*Node, error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	if Exists(cfg.Dir) {
		return nil, api.Conflict("this host is in a cluster already (%s)", cfg.stateFile())
	}
	r := revert.New()
	defer r.Fail()
	r.Add(func() { os.RemoveAll(cfg.Dir); os.RemoveAll(cfg.DataDir) })
	ca, err := pki.WriteCA(cfg.caDir(), adm.ClusterCA, adm.ClusterCAKey)
	if err != nil {
		return nil, fmt.Errorf("the cluster's CA from %s: %w", adm.Name, err)
	}
	files, err := cfg.memberTLS(ca)
	if err != nil {
		return nil, err
	}
	st := state{ClusterID: adm.ClusterID, JoinedAt: time.Now().UTC()}
	m, err := member.Join(ctx, cfg.memberConfig(files, 0), adm.Endpoints)
	var dialed *etcd.Store
	switch {
	case err == nil:
	case errors.Is(err, member.ErrLearner):
		// Still catching up when ctx ended: it goes on and is promoted.
		cfg.Log.Warn("cluster: joined as a learner, not promoted yet", "err", err)
	case errors.Is(err, member.ErrVotersFull):
		cfg.Log.Info("cluster: the voters are full; this host is a client of the store", "endpoints", adm.Endpoints)
		st.Client, st.Endpoints = true, adm.Endpoints
		if dialed, err = dial(cfg, files, adm.Endpoints); err != nil {
			return nil, err
		}
	case errors.Is(err, member.ErrJoinBusy), errors.Is(err, member.ErrExists):
		return nil, api.StatusErrorf(http.StatusConflict, "join the cluster: %w", err)
	default:
		return nil, api.StatusErrorf(http.StatusServiceUnavailable, "join the cluster: %w", err)
	}
	if m != nil {
		r.Add(func() { m.Close() })
	}
	n, err := settle(ctx, cfg, st, ca, files, m, dialed)
	if err != nil {
		return nil, err
	}
	r.Success()
	cfg.Log.Info("cluster: joined", "cluster", st.ClusterID, "host", cfg.Name, "role", n.Role())
	return n, nil
}

// Start brings this host back into its cluster after a daemon restart.
// It never waits for a quorum for longer than ReadyTimeout: without one
// it returns a node whose store calls fail with a 503 that says why
// (Health too), and which catches up once the quorum is back.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	st, err := cfg.loadState()
	if err != nil {
		return nil, err
	}
	ca, files, err := cfg.loadCA()
	if err != nil {
		return nil, err
	}
	var m *member.Member
	var dialed *etcd.Store
	if st.Client {
		if dialed, err = dial(cfg, files, st.Endpoints); err != nil {
			return nil, err
		}
	} else if !member.Exists(cfg.DataDir) {
		if m, err = rejoin(ctx, cfg, files, st); err != nil {
			return nil, err
		}
	} else if m, err = member.Start(ctx, cfg.memberConfig(files, 0)); err != nil {
		return nil, err
	}
	n := newNode(cfg, st, ca, files, m, dialed)
	n.run()
	return n, nil
}

// rejoinTimeout bounds how long a start waits for a member that lost
// its data to be a voter again; past it the learner goes on catching up.
const rejoinTimeout = time.Minute

// rejoin brings back this host's member when its data dir is gone but
// the host is a member of its cluster (cluster.json says so): it joins
// again through the voters it last knew, its data copied from them.
func rejoin(ctx context.Context, cfg Config, files pki.TLSFiles, st state) (*member.Member, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, rejoinTimeout)
	defer cancel()
	m, err := member.Rejoin(ctx, cfg.memberConfig(files, 0), st.Endpoints)
	switch {
	case err == nil:
	case errors.Is(err, member.ErrLearner):
		cfg.Log.Warn("cluster: rejoined as a learner, not promoted yet", "err", err)
	default:
		return nil, fmt.Errorf("the cluster store member's data (%s) is gone and it cannot join again: %w", cfg.DataDir, err)
	}
	cfg.Log.Info("cluster: this host's member lost its data and joined again", "took", time.Since(t0).Round(time.Millisecond))
	return m, nil
}

// keepEndpoints keeps the voters' client URLs in cluster.json, for a
// member that loses its data to join again through.
func (n *Node) keepEndpoints(ctx context.Context) {
	if n.m == nil {
		return
	}
	select {
	case <-n.m.Ready():
	case <-ctx.Done():
		return
	}
	saved := n.st.Endpoints
	for {
		if eps := n.m.Endpoints(); len(eps) > 0 && !slices.Equal(eps, saved) {
			st := n.st
			st.Endpoints = eps
			if err := n.cfg.saveState(st); err != nil {
				n.cfg.Log.Warn("cluster: cannot keep the voters' endpoints", "err", err)
			} else {
				saved = eps
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(endpointsEvery):
		}
	}
}

// endpointsEvery is how often keepEndpoints looks at the membership.
const endpointsEvery = 5 * time.Second

// dial connects a client host to the voters.
func dial(cfg Config, files pki.TLSFiles, endpoints []string) (*etcd.Store, error) {
	tlsCfg, err := files.ClientConfig()
	if err != nil {
		return nil, err
	}
	s, err := etcd.Dial(etcd.DialConfig{Endpoints: endpoints, TLS: tlsCfg}, etcd.Options{})
	if err != nil {
		return nil, api.StatusErrorf(http.StatusServiceUnavailable, "%w", err)
	}
	return s, nil
}

func newNode(cfg Config, st state, ca *pki.Identity, files pki.TLSFiles, m *member.Member, dialed *etcd.Store) *Node {
	n := &Node{cfg: cfg, st: st, ca: ca, tls: files, m: m, dialed: dialed}
	var o etcd.Options
	if m != nil {
		n.cli, o.Explain, o.Ready, o.Stale, o.Lost = m.Client(), m.Explain, m.HasLeader, m.LastView, m.LostNotify
	} else {
		n.cli = dialed.Client()
	}
	own, shared, root := o, o, o
	own.Prefix, shared.Prefix, root.Prefix = HostPrefix(cfg.Name), sharedPrefix, etcd.DefaultPrefix
	n.own, n.shared, n.root = etcd.New(n.cli, own), etcd.New(n.cli, shared), etcd.New(n.cli, root)
	n.opts = o
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.reg = newRegistry()
	n.ha.init(cfg)
	return n
}

// run starts the node's background work: the session (lease, heartbeat)
// and the watches.
func (n *Node) run() {
	if n.cfg.Simulated {
		n.runSimulated()
		return
	}
	n.wg.Add(6)
	go func() { defer n.wg.Done(); n.keepSession(n.ctx) }()
	go func() { defer n.wg.Done(); n.keepEndpoints(n.ctx) }()
	go func() { defer n.wg.Done(); n.followRegistry(n.ctx) }()
	go func() { defer n.wg.Done(); n.keepReservation(n.ctx, reservationResync) }()
	go func() { defer n.wg.Done(); n.keepFence(n.ctx) }()
	go func() { defer n.wg.Done(); n.keepRestarting(n.ctx) }()
}

// runSimulated starts a Simulated host's background work: its session
// and its reservation resync. Its view holds only its own record (claims
// read it).
func (n *Node) runSimulated() {
	cctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	it, err := n.shared.GetItem(cctx, hostsBucket, n.cfg.Name)
	cancel()
	var h Host
	if err == nil && json.Unmarshal(it.Value, &h) == nil {
		n.reg.mu.Lock()
		n.reg.hosts[h.Name] = h
		n.reg.mu.Unlock()
	}
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.keepSession(n.ctx) }()
	go func() { defer n.wg.Done(); n.keepReservation(n.ctx, reservationResync) }()
}

// reservationResync is about how often this host's reservation record
// is brought up to date with its VM records (keepReservation: a tidy-up
// nothing waits for).
const reservationResync = time.Minute

// hostStore is host's namespace.
func (n *Node) hostStore(host string) *etcd.Store {
	if host == n.cfg.Name {
		return n.own
	}
	if s, ok := n.hostStores.Load(host); ok {
		return s.(*etcd.Store)
	}
	o := n.opts
	o.Prefix = HostPrefix(host)
	s, _ := n.hostStores.LoadOrStore(host, etcd.New(n.cli, o))
	return s.(*etcd.Store)
}

// ID is the cluster's id.
func (n *Node) ID() string { return n.st.ClusterID }

// Name is this host's name.
func (n *Node) Name() string { return n.cfg.Name }

// Store is this host's own namespace: the daemon's store in cluster mode.
func (n *Node) Store() *etcd.Store { return n.own }

// Shared is the cluster-wide part of the store.
func (n *Node) Shared() *etcd.Store { return n.shared }

// Role is this host's role now.
func (n *Node) Role() string {
	switch {
	case n.m == nil:
		return api.RoleClient
	case n.m.Health(context.Background()).Learner:
		return api.RoleLearner
	}
	return api.RoleVoter
}

// ClearNamespace deletes every key of this host's namespace: a host that
// joins brings its own state (ClearNamespace, then copy it in), which
// replaces what a former host of its name left.
func (n *Node) ClearNamespace(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := n.cli.Delete(cctx, HostPrefix(n.cfg.Name), clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("clear this host's namespace in the cluster store: %w", err)
	}
	return nil
}

// Close stops the node: its watches, its session (its lease runs out
// after its TTL, as when the host dies) and its store member.
func (n *Node) Close() error {
	n.cancel()
	n.wg.Wait()
	n.reg.closeAll()
	n.own.Close()
	n.shared.Close()
	n.root.Close()
	n.hostStores.Range(func(_, s any) bool { s.(*etcd.Store).Close(); return true })
	var err error
	if n.m != nil {
		err = n.m.Close()
	}
	if n.dialed != nil {
		err = errors.Join(err, n.dialed.Close())
	}
	return err
}
