// Package migrate moves VMs between hosts. The source daemon drives
// libvirt's own five-phase migration protocol split across two daemons:
// it calls Begin3, Perform3 and Confirm3 on its libvirtd, the destination
// daemon calls Prepare3 and Finish3 on its own, and the cookies and XML
// travel between the daemons over their mutual-TLS peer channel. The
// memory and disk streams go QEMU to QEMU. Offline and cold moves stream
// the saved memory state and the disks between the daemons instead.
//
// The rule it keeps: at every failure the VM runs on exactly one host and
// the other side is cleaned up. migrate owns the protocol, the convergence
// policy and the recovery of moves a crash interrupted; VM records belong
// to internal/vm, peers to internal/peer.
package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/client"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/vm"
)

// Buckets of the records that let a restarted daemon finish or undo a move.
const (
	outBucket = "migrations-out"
	inBucket  = "migrations-in"
)

// Hypervisor is what a migration needs of libvirt.
type Hypervisor interface {
	hypervisor.Domains
	hypervisor.Storage
	hypervisor.Host
	hypervisor.Migrator
}

// SharedPools says which pools are declared shared (internal/storage).
type SharedPools interface {
	IsShared(ctx context.Context, pool string) (bool, error)
}

// Peers hands out API clients for peers.
type Peers interface {
	Client(ctx context.Context, name string) (*client.Client, error)
	Names(ctx context.Context) ([]string, error)
}

// Config is what the service knows of its daemon.
type Config struct {
	// Self is this host's name among peers.
	Self string
	// URL is this daemon's peer URL; its host is where QEMU listens for
	// incoming migrations.
	URL string
	// WorkDir holds saved memory states and uploads.
	WorkDir string
	// IdleTimeout: an incoming move the source stops talking about for
	// this long is abandoned (default 90s).
	IdleTimeout time.Duration
	// QEMUTLSDir holds QEMU's migration TLS files (migrate --tls).
	QEMUTLSDir string
	// Shared tells pools declared shared (nil: none are).
	Shared SharedPools
	// Timeouts bound the waits of a move.
	Timeouts Timeouts
}

// Timeouts bound the waits of a move between the daemons; a zero field
// takes its default.
type Timeouts struct {
	// Finish bounds the destination's Finish: 2m for a live move, whose
	// guest is paused meanwhile, 5m for an offline or cold one, which
	// restores or defines the VM there.
	Finish time.Duration `yaml:"finish,omitempty"`
	// Cancel bounds telling the destination to undo its side (30s).
	Cancel time.Duration `yaml:"cancel,omitempty"`
	// Ask bounds one question to the destination whether it runs a VM
	// whose Finish went unanswered (5s); it is asked every AskEvery (2s)
	// for AskFor (1m) at most, or until the move is cancelled.
	Ask      time.Duration `yaml:"ask,omitempty"`
	AskEvery time.Duration `yaml:"askEvery,omitempty"`
	AskFor   time.Duration `yaml:"askFor,omitempty"`
	// Keepalive is how often the source tells the destination it is
	// still at it (5s); keep it well under the destination's idle
	// timeout.
	Keepalive time.Duration `yaml:"keepalive,omitempty"`
}

func (t *Timeouts) complete() {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&t.Cancel, 30 * time.Second}, {&t.Ask, 5 * time.Second}, {&t.AskEvery, 2 * time.Second},
		{&t.AskFor, time.Minute}, {&t.Keepalive, 5 * time.Second},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
}

// finish is the Finish timeout of a live or an offline/cold move.
func (t Timeouts) finish(live bool) time.Duration {
	switch {
	case t.Finish > 0:
		return t.Finish
	case live:
		return 2 * time.Minute
	}
	return 5 * time.Minute
}

// Service migrates VMs to and from this host.
type Service struct {
	hv    Hypervisor
	vms   *vm.Service
	peers Peers
	ops   *ops.Manager
	store store.Store
	cfg   Config
	log   *slog.Logger

	mu       sync.Mutex
	incoming map[string]*incoming
	active   map[string]bool // outgoing moves running in this process
}

// New returns the service.
func New(hv Hypervisor, vms *vm.Service, peers Peers, om *ops.Manager, st store.Store, cfg Config, log *slog.Logger) *Service {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 90 * time.Second
	}
	cfg.Timeouts.complete()
	_ = os.MkdirAll(cfg.WorkDir, 0o711)
	return &Service{hv: hv, vms: vms, peers: peers, ops: om, store: st, cfg: cfg, log: log, incoming: map[string]*incoming{}, active: map[string]bool{}}
}

// listenHost is where QEMU on this host listens for an incoming migration:
// the host of the daemon's peer URL.
func (s *Service) listenHost() string {
	if u, err := url.Parse(s.cfg.URL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return ""
}

func (s *Service) workPath(id, name string) string {
	return filepath.Join(s.cfg.WorkDir, id+"-"+name)
}

// outgoing is the source's record of a move in flight.
type outgoing struct {
	ID   string `json:"id"`
	VM   string `json:"vm"`
	To   string `json:"to"`
	Mode string `json:"mode"`
	// Phase is how far it went: started (nothing moved), performing
	// (from Perform on: it may run there), finish unanswered (Finish did
	// not answer and the destination could not say).
	Phase   string    `json:"phase"`
	Started time.Time `json:"started"`
	// WasPaused: the VM was paused before the move (a resume here leaves
	// it so).
	WasPaused bool `json:"wasPaused,omitempty"`
	// Copied are source disks to delete once the VM runs there.
	Copied []api.VMDisk `json:"copied,omitempty"`
}

// incomingRecord is the destination's record of a move in flight.
type incomingRecord struct {
	Offer   api.MigrationOffer `json:"offer"`
	From    string             `json:"from"`
	Phase   string             `json:"phase"` // prepared, finishing
	Created []api.VMDisk       `json:"created,omitempty"`
	Files   []string           `json:"files,omitempty"`
	XML     string             `json:"xml"`
	Started time.Time          `json:"started"`
}

// putOut writes the source's record of a move. A move whose record
// cannot be written must not go on: a restart could neither finish nor
// undo it.
func (s *Service) putOut(ctx context.Context, o outgoing) error {
	if err := store.PutJSON(ctx, s.store, outBucket, o.ID, o); err != nil {
		return fmt.Errorf("record the migration of vm %s: %w", o.VM, err)
	}
	return nil
}

// putIn writes the destination's record of a move (likewise).
func (s *Service) putIn(ctx context.Context, r incomingRecord) error {
	if err := store.PutJSON(ctx, s.store, inBucket, r.Offer.ID, r); err != nil {
		return fmt.Errorf("record the incoming migration of vm %s: %w", r.Offer.VM, err)
	}
	return nil
}

func (s *Service) dropRecord(bucket, id string) {
	if err := s.store.Delete(context.Background(), bucket, id); err != nil && err != store.ErrNotFound {
		s.log.Error("drop migration record", "bucket", bucket, "id", id, "err", err)
	}
}

func decodeJSON(b []byte, v any) error {
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}
