// Package member runs this host's embedded etcd member, the replica of the
// cluster store, inside the daemon: it starts a new cluster (Init), joins
// one (Join), restarts after a daemon restart (Start), reports on the
// cluster (Status, Health) and takes out dead members (Remove).
//
// Membership policy. A cluster has at most MaxVoters voting members, 3 or
// 5, chosen at Init and kept in the cluster. A host joins as a learner
// (it receives the log but does not vote, so adding it cannot cost the
// quorum) and is promoted to voter once it has caught up. A learner is a
// step of a join only: when the voters are full, Join refuses with
// ErrVotersFull and the host uses the cluster as a plain client
// (etcd.Dial with the member endpoints), running no member. etcd v3.7
// allows MaxLearners learners (its default, 1); that limit also makes
// joins one at a time, and Join refuses a second with ErrJoinBusy.
//
// Peer and client traffic is mutual TLS with the files in Config.TLS
// (see pki.WriteMemberTLS): a member accepts peers and clients whose
// certificates chain to one of the CAs there.
//
// Start never waits for quorum without end (etcd-io/etcd#13524): after
// Config.ReadyTimeout it returns a member that is still waiting, Health
// says which members it cannot reach, and the store's calls fail with a
// 503 that says so (Explain) until the quorum is back.
//
// This package owns the member's process side and its etcd membership;
// it does not own what is stored (internal/store/etcd) nor who trusts whom
// (internal/peer).
package member

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"

	"github.com/godwit-project/godwit/internal/pki"
	"github.com/godwit-project/godwit/internal/store/etcd"
)

// MaxLearners is how many learners a cluster may hold at once. Every
// member must use the same value: each one checks a membership change
// against its own limit as it applies it (etcd's
// membership.ValidateConfigurationChange), so members that disagree
// would disagree on the membership. It is etcd's default.
const MaxLearners = 1

// Voter counts a cluster may be configured for.
const (
	DefaultMaxVoters = 3
	// Compaction keeps this much history; a watch that falls further
	// behind gets store.ErrCompacted and must read the bucket again.
	compactionRetention = "1h"
)

// Errors of Init, Join and Remove; each comes wrapped with the details.
var (
	ErrVotersFull = errors.New("the cluster has all the voting members it takes")
	ErrJoinBusy   = errors.New("another host is joining the cluster")
	ErrExists     = errors.New("already a member")
	ErrNotMember  = errors.New("no member of this cluster")
	ErrAlive      = errors.New("member is alive")
	ErrLearner    = errors.New("member is still a learner")
)

// Config is one member's setup.
type Config struct {
	// Name is this host's name, unique in the cluster.
	Name string
	// DataDir holds etcd's data (WAL and database), e.g. <state dir>/etcd.
	DataDir string
	// PeerURL is where the other members reach this one
	// (https://IP:PORT); ClientURL where clients do.
	PeerURL, ClientURL string
	// ListenPeerURL and ListenClientURL are what this member listens on,
	// when not the advertised URLs (e.g. https://0.0.0.0:2380).
	ListenPeerURL, ListenClientURL string
	// TLS is this member's identity and the CAs it trusts.
	TLS pki.TLSFiles
	// MaxVoters is 3 (the default) or 5. Init records it in the cluster;
	// Join uses the cluster's.
	MaxVoters int
	// ReadyTimeout is how long Init and Start wait for the member to be
	// ready (in quorum) before they return one that is still waiting
	// (0: 10s).
	ReadyTimeout time.Duration
	// TickMs and ElectionMs are etcd's heartbeat and election timeout
	// (0: etcd's 100ms and 1000ms). Every member should use the same.
	TickMs, ElectionMs uint
	// Log receives etcd's warnings and errors, and the member's own news.
	Log *slog.Logger

	// unsafeNoFsync makes tests fast; never set outside them.
	unsafeNoFsync bool
	// onLearner runs in Join once the learner has started, before its
	// promotion (tests look at the cluster then).
	onLearner func(*Member)
}

func (c *Config) check() error {
	if c.Name == "" || strings.ContainsAny(c.Name, "=,") {
		return fmt.Errorf("member name %q: must be non-empty without '=' or ','", c.Name)
	}
	if c.DataDir == "" {
		return errors.New("member: no data dir")
	}
	for _, u := range []*string{&c.PeerURL, &c.ClientURL, &c.ListenPeerURL, &c.ListenClientURL} {
		if *u == "" {
			continue
		}
		p, err := url.Parse(*u)
		if err != nil || p.Scheme != "https" || p.Port() == "" {
			return fmt.Errorf("member URL %q: want https://HOST:PORT", *u)
		}
	}
	if c.PeerURL == "" || c.ClientURL == "" {
		return errors.New("member: PeerURL and ClientURL are required")
	}
	if c.TLS.CertFile == "" || c.TLS.KeyFile == "" || c.TLS.CAFile == "" {
		return errors.New("member: TLS files are required (pki.WriteMemberTLS)")
	}
	switch c.MaxVoters {
	case 0:
		c.MaxVoters = DefaultMaxVoters
	case 3, 5:
	default:
		return fmt.Errorf("member: MaxVoters %d: a cluster has 3 or 5 voters", c.MaxVoters)
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Exists says whether dataDir holds a member already: the daemon then
// calls Start, not Init or Join.
func Exists(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "member", "wal"))
	return err == nil
}

// Member is this host's running etcd member.
type Member struct {
	cfg Config
	e   *embed.Etcd
	cli *clientv3.Client
	tls *tls.Config
	log *slog.Logger

	started  time.Time
	promoted chan struct{} // closed once this member votes
	stop     chan struct{} // closed by Close
	wg       sync.WaitGroup

	local *clientv3.Client // in-process client of this member alone (v3client)

	mu     sync.Mutex
	failed error // etcd stopped by itself
	closed bool
	probe  probeCache
	// lostAt is when this member, once in a quorum, last saw it go
	// (zero while it has a leader, or before it ever had one).
	lostAt time.Time
	// lost is closed once the member has had no leader for lostGrace,
	// and replaced when it has one again.
	lost       chan struct{}
	lostClosed bool
}

// Init starts the first member of a new cluster in an empty DataDir.
func Init(ctx context.Context, cfg Config) (*Member, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if Exists(cfg.DataDir) {
		return nil, fmt.Errorf("%s: %w of a cluster: start it instead", cfg.DataDir, ErrExists)
	}
	ec := cfg.embedConfig(embed.ClusterStateFlagNew, cfg.Name+"="+cfg.PeerURL)
	ec.InitialClusterToken = "godwit-" + randomHex(8)
	m, err := start(ctx, cfg, ec, []string{cfg.ClientURL}, false)
	if err != nil {
		return nil, err
	}
	select {
	case <-m.e.Server.ReadyNotify():
	case <-ctx.Done():
		m.Close()
		return nil, ctx.Err()
	}
	if err := writePolicy(ctx, m.cli, policy{MaxVoters: cfg.MaxVoters}); err != nil {
		m.Close()
		return nil, err
	}
	cfg.Log.Info("cluster store: new cluster", "member", cfg.Name, "maxVoters", cfg.MaxVoters)
	return m, nil
}

// Start restarts the member kept in DataDir (after a daemon restart). It
// returns after ReadyTimeout at the latest, ready or not: see Health. A
// member that was still a learner goes on to be promoted.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if !Exists(cfg.DataDir) {
		return nil, fmt.Errorf("%s holds no member: %w (Init or Join first)", cfg.DataDir, ErrNotMember)
	}
	// etcd reads the membership from its data; the initial cluster only
	// has to name this member.
	ec := cfg.embedConfig(embed.ClusterStateFlagExisting, cfg.Name+"="+cfg.PeerURL)
	return start(ctx, cfg, ec, nil, false)
}

// embedConfig is the etcd configuration of this member.
func (c Config) embedConfig(state, initialCluster string) *embed.Config {
	ec := embed.NewConfig()
	ec.Name = c.Name
	ec.Dir = c.DataDir
	must := func(s string) url.URL { u, _ := url.Parse(s); return *u }
	ec.AdvertisePeerUrls = []url.URL{must(c.PeerURL)}
	ec.AdvertiseClientUrls = []url.URL{must(c.ClientURL)}
	ec.ListenPeerUrls = []url.URL{must(cmp(c.ListenPeerURL, c.PeerURL))}
	ec.ListenClientUrls = []url.URL{must(cmp(c.ListenClientURL, c.ClientURL))}
	tlsInfo := transport.TLSInfo{CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile,
		TrustedCAFile: c.TLS.CAFile, ClientCertAuth: true}
	ec.PeerTLSInfo, ec.ClientTLSInfo = tlsInfo, tlsInfo
	ec.TlsMinVersion = "TLS1.3"
	ec.ClusterState = state
	ec.InitialCluster = initialCluster
	ec.MaxLearners = MaxLearners
	ec.StrictReconfigCheck = true
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = compactionRetention
	ec.EnableGRPCGateway = false
	if c.TickMs != 0 {
		ec.TickMs = c.TickMs
	}
	if c.ElectionMs != 0 {
		ec.ElectionMs = c.ElectionMs
	}
	ec.UnsafeNoFsync = c.unsafeNoFsync
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(newSlogCore(c.Log.With("component", "etcd"), zap.WarnLevel)))
	return ec
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// start runs etcd and waits up to ReadyTimeout for it to be ready. Its
// client dials eps and, once ready, whatever the membership says. A
// learner is promoted in the background.
func start(ctx context.Context, cfg Config, ec *embed.Config, eps []string, learner bool) (*Member, error) {
	tlsCfg, err := cfg.TLS.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("member TLS: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start cluster store member %s: %w", cfg.Name, err)
	}
	m := &Member{cfg: cfg, e: e, tls: tlsCfg, log: cfg.Log, started: time.Now(),
		promoted: make(chan struct{}), stop: make(chan struct{}), lost: make(chan struct{})}
	// A joining member knows it is a learner before its etcd does (etcd
	// learns it replaying the log); a restarted one, from its data.
	learner = learner || e.Server.IsLearner()
	if !learner {
		close(m.promoted)
	}
	if len(eps) == 0 {
		eps = m.voterClientURLs()
	}
	m.cli, err = clientv3.New(clientv3.Config{
		Endpoints:        eps,
		TLS:              tlsCfg,
		DialTimeout:      5 * time.Second,
		Logger:           zap.NewNop(),
		AutoSyncInterval: 30 * time.Second,
		// Drop a voter cut off from the balancer (see etcd.KeepAliveTime).
		DialKeepAliveTime:    etcd.KeepAliveTime,
		DialKeepAliveTimeout: etcd.KeepAliveTimeout,
	})
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("cluster store client: %w", err)
	}
	m.local = v3client.New(e.Server)
	m.wg.Add(1)
	go m.watchServer()
	if learner {
		m.promoteInBackground()
	}

	t := time.NewTimer(cfg.ReadyTimeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case <-t.C:
		h := m.Health(ctx)
		m.log.Warn("cluster store: member not ready yet; serving as unavailable until it is", "member", cfg.Name, "state", h.Message)
	case <-ctx.Done():
		m.Close()
		return nil, ctx.Err()
	case err := <-e.Err():
		m.Close()
		return nil, fmt.Errorf("cluster store member %s: %w", cfg.Name, err)
	}
	return m, nil
}

// watchServer notes when etcd stops by itself (removed from the cluster,
// a fatal error), and gives the client every voter once ready.
func (m *Member) watchServer() {
	defer m.wg.Done()
	select {
	case <-m.e.Server.ReadyNotify():
		m.setEndpoints(m.voterClientURLs())
	case <-m.stop:
		return
	}
	tick := time.NewTicker(lostCheck)
	defer tick.Stop()
	for {
		select {
		case err := <-m.e.Err():
			m.setFailed(err)
			return
		case <-m.e.Server.StopNotify():
			m.setFailed(errors.New("etcd stopped (was this member removed from the cluster?)"))
			return
		case <-m.stop:
			return
		case <-tick.C:
			m.noteLeader(m.e.Server.Leader() != 0)
		}
	}
}

// lostCheck is how often a ready member looks whether it still has a
// leader, to say since when it has none.
const lostCheck = 100 * time.Millisecond

func (m *Member) noteLeader(has bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case has && !m.lostAt.IsZero():
		m.lostAt = time.Time{}
		if m.lostClosed {
			m.lost, m.lostClosed = make(chan struct{}), false
		}
	case !has && m.lostAt.IsZero():
		m.lostAt = time.Now()
		m.log.Warn("cluster store: this member has no leader", "member", m.cfg.Name)
	case !has && !m.lostClosed && time.Since(m.lostAt) >= m.lostGrace():
		close(m.lost)
		m.lostClosed = true
	}
}

// lostGrace is how long a member is without a leader before the calls
// under way are ended: longer than an election (a leader that stepped
// down is replaced within an election timeout or so, and the calls
// waiting then go through).
func (m *Member) lostGrace() time.Duration {
	e := time.Duration(m.cfg.ElectionMs) * time.Millisecond
	if e == 0 {
		e = time.Second
	}
	return 2 * e
}

// LostNotify is closed once this member, in a quorum now, has had no
// leader for longer than an election takes (already closed while that
// lasts): for
// internal/store/etcd's Options.Lost, so that calls under way fail then
// instead of at their timeout.
func (m *Member) LostNotify() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lost
}

// QuorumLostAt is when this member, once in a quorum, lost it (zero while
// it has a leader or never had one).
func (m *Member) QuorumLostAt() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lostAt
}

// Local is an in-process client of this member alone: a read through it
// with clientv3.WithSerializable is what this member holds, answered
// without a quorum (its last view, maybe behind the cluster's).
func (m *Member) Local() *clientv3.Client { return m.local }

// LastView is for internal/store/etcd's Options.Stale: the local client,
// and since when this member has had no quorum (when it lost it, else
// when it started: what it holds is from before).
func (m *Member) LastView() (*clientv3.Client, time.Time) {
	since := m.QuorumLostAt()
	if since.IsZero() {
		since = m.started
	}
	return m.local, since
}

func (m *Member) setFailed(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed && m.failed == nil {
		m.failed = err
		m.log.Error("cluster store member stopped", "member", m.cfg.Name, "err", err)
	}
}

// voterClientURLs are the client URLs of the voting members as this
// member knows them (no quorum needed); a learner serves no client.
func (m *Member) voterClientURLs() []string {
	var out []string
	for _, mm := range m.e.Server.Cluster().Members() {
		if !mm.IsLearner {
			out = append(out, mm.ClientURLs...)
		}
	}
	slices.Sort(out)
	return out
}

// setEndpoints points the client at eps, unless it is there already.
// Skipping the no-change case matters: a SetEndpoints right after
// clientv3.New races with the gRPC resolver the client is still building
// (the race detector flags it in etcd's client v3.7.3).
func (m *Member) setEndpoints(eps []string) {
	if len(eps) == 0 {
		return
	}
	cur := slices.Sorted(slices.Values(m.cli.Endpoints()))
	eps = slices.Sorted(slices.Values(eps))
	if !slices.Equal(cur, eps) {
		m.cli.SetEndpoints(eps...)
	}
}

// Client is the member's etcd client, for internal/store/etcd.New. It is
// closed with the member.
func (m *Member) Client() *clientv3.Client { return m.cli }

// ClientTLS is the client side of the member's TLS identity.
func (m *Member) ClientTLS() *tls.Config { return m.tls.Clone() }

// Name is the member's name.
func (m *Member) Name() string { return m.cfg.Name }

// Ready is closed once the member has joined its quorum.
func (m *Member) Ready() <-chan struct{} { return m.e.Server.ReadyNotify() }

// Promoted is closed once the member votes (at once for Init).
func (m *Member) Promoted() <-chan struct{} { return m.promoted }

// Close stops the member (the cluster sees it as down, not removed).
func (m *Member) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	close(m.stop)
	m.wg.Wait()
	err := m.cli.Close()
	m.local.Close()
	m.e.Close()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Endpoints are the client URLs of the voting members, as this member
// knows them (no quorum needed): where a joining host's client goes.
func (m *Member) Endpoints() []string { return m.voterClientURLs() }

// HasLeader says, at no cost, whether this member knows a leader: a
// member without one cannot serve (for internal/store/etcd's
// Options.Ready).
func (m *Member) HasLeader() bool {
	select {
	case <-m.e.Server.ReadyNotify():
	default:
		return false
	}
	has := m.e.Server.Leader() != 0
	m.noteLeader(has)
	return has
}

// ClusterID is the cluster's id, hex.
func (m *Member) ClusterID() string { return m.e.Server.Cluster().ID().String() }
