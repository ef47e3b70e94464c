// Package daemon is godwit's server: it wires the store, the libvirt
// connection, the operations manager and the VM service together, serves
// the REST API (routes.go) on a root-only unix socket, and brings the host
// up (pool, accelerator, reconcile) whenever libvirt becomes reachable.
//
// Handlers translate HTTP to service calls and errors to statuses (in one
// place, errors.go); the logic they call lives in internal/vm and friends.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/godwit-project/godwit/internal/backup"
	"github.com/godwit-project/godwit/internal/cluster"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/hypervisor/libvirt"
	"github.com/godwit-project/godwit/internal/image"
	"github.com/godwit-project/godwit/internal/migrate"
	"github.com/godwit-project/godwit/internal/network"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/peer"
	"github.com/godwit-project/godwit/internal/pki"
	"github.com/godwit-project/godwit/internal/snapshot"
	"github.com/godwit-project/godwit/internal/storage"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/store/bolt"
	"github.com/godwit-project/godwit/internal/ui"
	"github.com/godwit-project/godwit/internal/vm"
)

// Daemon is one running godwit daemon.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	store store.Store
	hv    hypervisor.Hypervisor
	ops   *ops.Manager
	vms   *vm.Service
	nets  *network.Service
	host  *hostState
	mon   *monitor // credentials, audit log, metrics, events, health
	peers *peer.Service
	// migrations moves VMs to and from peers.
	migrations *migrate.Service
	// storage and images: pools, volumes and the image catalog.
	storage   *storage.Service
	images    *image.Catalog
	id        string
	backups   *backup.Service
	snapshots *snapshot.Service
	// tlsID is the daemon's CA and certificates; nil without --listen.
	tlsID *pki.Identity
	// sw is the store (d.store): the bolt file, or this host's
	// namespace in the cluster store once it is in a cluster; bolt is
	// the file while the daemon uses it.
	sw   *store.Switch
	bolt *bolt.Store
	// node is this host in its cluster (nil: in none), set by the store
	// step or by cluster init and join, which clusterChange makes one
	// at a time; clusterMu guards node and bolt.
	guard         guardState
	clusterMu     sync.Mutex
	node          *cluster.Node
	clusterChange sync.Mutex
	// proxies forward requests to the other hosts of the cluster.
	proxies proxies
	// sessions are the web page's logins (internal/ui).
	sessions *ui.Sessions
	// bg carries what the daemon retries in the background (orLater);
	// Close ends it.
	bg     context.Context
	stopBG context.CancelFunc
	bgWG   sync.WaitGroup
	// closeHV closes the libvirt connection New made; nil for a
	// hypervisor given with WithHypervisor.
	closeHV func() error

	// missingPrograms lists the features whose programs this host lacks.
	missingPrograms func() []string
	// hooks are set by this package's tests only: handler sees every
	// request before the API does (to lose a peer's message), store wraps
	// the state store (to fail a write), serving gets the HTTP server (to
	// drop its connections as a killed process would).
	hooks struct {
		handler func(http.Handler) http.Handler
		store   func(store.Store) store.Store
		serving func(*http.Server)
	}

	listeners []net.Listener
	server    *http.Server
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// step is one named stage of bringing the daemon up.
type step struct {
	name string
	fn   func(ctx context.Context) error
}

// Option changes how New builds a daemon.
type Option func(*Daemon)

// WithHypervisor makes the daemon use h instead of connecting to libvirt
// at cfg.Libvirt; unit tests pass hypervisor/fake. The daemon does not
// close h.
func WithHypervisor(h hypervisor.Hypervisor) Option {
	return func(d *Daemon) { d.hv = h }
}

// New prepares a daemon; Serve runs it.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Daemon, error) {
	if err := cfg.Complete(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, missingPrograms: missingPrograms}
	for _, o := range opts {
		o(d)
	}
	d.bg, d.stopBG = context.WithCancel(context.Background())
	steps := []step{
		{"state dir", d.prepareStateDir},
		{"tls", d.loadTLS},
		{"libvirt", d.connectLibvirt},
		{"store", d.openStore},
		{"identity", d.loadDaemonID},
		{"operations", d.startOperations},
		{"qemu access", d.checkQEMUAccess},
		{"services", d.startServices},
		{"cluster", d.startCluster},
		{"monitoring", d.startMonitoring},
		{"listeners", d.listen},
	}
	ctx := context.Background()
	for _, s := range steps {
		if err := s.fn(ctx); err != nil {
			d.Close()
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return d, nil
}

func (d *Daemon) prepareStateDir(context.Context) error {
	// 0711: QEMU (another user) must reach disks and logs below it, but
	// cannot list what is there.
	for _, dir := range []string{d.cfg.StateDir, d.consoleDir(), d.probeDir()} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			return err
		}
	}
	return nil
}

func (d *Daemon) consoleDir() string { return filepath.Join(d.cfg.StateDir, "console") }
func (d *Daemon) probeDir() string   { return filepath.Join(d.cfg.StateDir, "probe") }

// boltPath is the single-host store's file.
func (d *Daemon) boltPath() string { return filepath.Join(d.cfg.StateDir, "godwit.db") }

// openStore opens the daemon's store: the bolt file of a single host, or
// this host's namespace of the cluster store (cluster.go).
func (d *Daemon) openStore(ctx context.Context) error {
	if cluster.Exists(d.clusterDir()) {
		return d.openClusterStore(ctx)
	}
	return d.openBolt()
}

func (d *Daemon) openBolt() error {
	s, err := bolt.Open(d.boltPath())
	if err != nil {
		return err
	}
	d.bolt = s
	var inner store.Store = s
	if d.hooks.store != nil {
		inner = d.hooks.store(s)
	}
	d.sw = store.NewSwitch(inner)
	d.store = d.sw
	return nil
}

// loadDaemonID reads this daemon's id, making one on first start. It marks
// the domains this daemon defines.
func (d *Daemon) loadDaemonID(ctx context.Context) error {
	if !d.storeAnswers(ctx) {
		// The cluster store has no quorum: the copy this host keeps.
		b, err := d.savedDaemonID()
		d.id = string(b)
		return err
	}
	b, err := d.store.Get(ctx, "meta", "id")
	if errors.Is(err, store.ErrNotFound) {
		var r [8]byte
		_, _ = rand.Read(r[:])
		b = []byte(hex.EncodeToString(r[:]))
		err = d.store.Put(ctx, "meta", "id", b)
	}
	if err != nil {
		return err
	}
	d.id = string(b)
	return nil
}

func (d *Daemon) startOperations(ctx context.Context) error {
	d.ops = ops.NewManager(d.store, d.log)
	return d.atStart(ctx, "mark the operations the last stop cut off", func(ctx context.Context) error {
		n, err := d.ops.Recover(ctx)
		if n > 0 {
			d.log.Warn("operations cut off by the last stop are marked failed", "count", n)
		}
		return err
	})
}

func (d *Daemon) connectLibvirt(context.Context) error {
	if d.hv != nil {
		return nil
	}
	c, err := libvirt.New(d.cfg.Libvirt, d.log, libvirt.Options{CallTimeout: d.cfg.LibvirtTimeout})
	if err != nil {
		return err
	}
	d.hv, d.closeHV = c, c.Close
	return nil
}

func (d *Daemon) startServices(ctx context.Context) error {
	var err error
	d.peers = peer.New(d.store, peer.Self{Name: d.cfg.Name, URL: d.cfg.Advertise, Identity: d.tlsID}, d.log)
	if err := d.atStart(ctx, "load the peers", d.peers.Load); err != nil {
		return err
	}
	if d.tlsID != nil {
		// QEMU's migration TLS trusts this daemon's CA and its peers'.
		d.writeQEMUTLS()
		d.peers.OnChange(d.writeQEMUTLS)
	}
	d.host = newHostState(d)
	d.nets = d.newNetworks()
	boot, err := image.NewBootFiles(d.bootDir())
	if err != nil {
		return err
	}
	d.vms = vm.New(d.hv, d.store, d.ops, image.QemuImg{}, vm.Config{
		Pool: d.cfg.Pool.Name, ConsoleDir: d.consoleDir(), Owner: d.id, Host: d.cfg.Name,
		VirtType: d.host.virtType, Networks: d.nets, SeedDir: filepath.Join(d.cfg.StateDir, "seeds"),
		BootFiles: boot,
	}, d.log)
	if err := d.startStorage(); err != nil {
		return err
	}
	d.migrations = migrate.New(d.hv, d.vms, d.peers, d.ops, d.store, migrate.Config{
		Self: d.cfg.Name, URL: d.cfg.Advertise, WorkDir: filepath.Join(d.cfg.StateDir, "migrations"),
		IdleTimeout: d.cfg.MigrationIdleTimeout, QEMUTLSDir: d.cfg.QEMUTLSDir, Shared: d.storage,
		Timeouts: d.cfg.MigrationTimeouts,
	}, d.log)
	d.startBackups()
	d.startSnapshots()
	return nil
}

// startStorage makes the pool and volume service and the image catalog,
// and tells them and the VM service about each other.
func (d *Daemon) startStorage() error {
	d.storage = storage.New(d.hv, d.store, d.cfg.Pool.Name, d.log)
	d.storage.SetUsers(d.vms)
	d.storage.SetDefaultShared(d.cfg.Pool.Shared)
	d.vms.SetSharedPools(d.storage)
	// Volume data through libvirt's RPC streams moves ~300 MiB/s here;
	// GODWIT_VOLUME_IO=libvirt keeps them for every volume (tests).
	d.storage.SetDirectIO(os.Getenv("GODWIT_VOLUME_IO") != "libvirt")
	cat, err := image.NewCatalog(filepath.Join(d.cfg.StateDir, "images"), d.store, d.ops, d.log)
	if err != nil {
		return err
	}
	cat.SetUsers(d.vms.ImageUsers)
	d.images = cat
	d.vms.SetImages(cat)
	return nil
}

func (d *Daemon) writeQEMUTLS() {
	if err := d.tlsID.WriteQEMUTLS(d.cfg.QEMUTLSDir, d.peers.TrustedCAs()); err != nil {
		d.log.Warn("QEMU TLS for migrations is not set up (migrate --tls will refuse)", "dir", d.cfg.QEMUTLSDir, "err", err)
	}
}

// Serve runs the daemon until ctx ends, then shuts it down.
func (d *Daemon) Serve(ctx context.Context) error {
	ctx, d.cancel = context.WithCancel(ctx)
	h := d.handler()
	if d.hooks.handler != nil {
		h = d.hooks.handler(h)
	}
	d.server = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	if d.hooks.serving != nil {
		d.hooks.serving(d.server)
	}
	errc := make(chan error, len(d.listeners))
	for _, l := range d.listeners {
		go func(l net.Listener) {
			if err := d.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(l)
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.host.keepUp(ctx) }()
	d.runBackupSchedules(ctx)
	d.log.Info("godwit daemon serving", "socket", d.cfg.Socket, "listen", d.cfg.Listen, "stateDir", d.cfg.StateDir, "libvirt", d.cfg.Libvirt)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	d.shutdown()
	return err
}

func (d *Daemon) shutdown() {
	d.log.Info("godwit daemon stopping")
	if d.cancel != nil {
		d.cancel() // ends console streams and long polls
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.server != nil {
		_ = d.server.Shutdown(sctx)
	}
	d.ops.Shutdown(sctx)
	d.wg.Wait()
	if n := d.clusterNode(); n != nil {
		// A clean stop leaves the HA VMs running: the others must not
		// restart them when this host's lease runs out.
		frozen, err := n.Freeze(sctx)
		if err != nil {
			d.log.Warn("cluster: cannot mark this host frozen; its HA VMs may be restarted elsewhere", "err", err)
		}
		d.standDownGuard(frozen)
	}
	d.Close()
}

// Close releases what New acquired.
func (d *Daemon) Close() {
	if d.stopBG != nil {
		d.stopBG()
		d.bgWG.Wait()
	}
	d.closeMonitoring()
	for _, l := range d.listeners {
		_ = l.Close()
	}
	d.listeners = nil
	if d.closeHV != nil {
		_ = d.closeHV()
		d.closeHV = nil
	}
	if d.store != nil {
		_ = d.store.Close()
		d.store = nil
	}
	if n := d.clusterNode(); n != nil {
		_ = n.Close()
	}
}
