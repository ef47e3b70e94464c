// Package backup owns VM backups: it reads a VM's disks through libvirt's
// pull-mode backup API (an NBD export per disk, with a checkpoint, so the
// next backup reads only the blocks QEMU's dirty bitmaps say changed),
// stores them in the repository (internal/backup/repo), restores a backup
// as a new VM, verifies and prunes the repository, and runs schedules.
//
// It does not create domains or volumes itself (internal/vm does, for
// restore), speak HTTP (internal/daemon) or XML beyond libvirt's backup
// and checkpoint documents.
package backup

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/backup/repo"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/nbd"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/store"
	"github.com/godwit-project/godwit/internal/vm"
)

// Hypervisor is what backups need of libvirt.
type Hypervisor interface {
	hypervisor.Domains
	hypervisor.Backups
}

// Config is what the service needs to know of its daemon.
type Config struct {
	// Repo is the repository directory.
	Repo string
	// WorkDir holds NBD sockets and scratch files of running backups.
	WorkDir string
	// Host names this host in manifests.
	Host string
	// ScheduleTick is how often schedules are looked at (default 5s).
	ScheduleTick time.Duration
	// Migrate, when set, moves a VM to a peer host (restore --to uses it).
	Migrate func(ctx context.Context, vm string, req api.MigrateRequest) (api.Operation, error)
	// OpenDisk connects to one disk a backup job exports; nil dials QEMU's
	// NBD server on the job's socket (nbd.Dial). Tests read the fake
	// hypervisor's exports instead.
	OpenDisk func(ctx context.Context, socket, export string, contexts ...string) (DiskReader, error)
}

// DiskReader reads one disk a backup job exports: an *nbd.Conn.
type DiskReader interface {
	Size() uint64
	Extents(context string, off, length uint64) ([]nbd.Extent, error)
	ReadAt(dst []byte, off uint64) error
	Close() error
}

// dialNBD is OpenDisk's default: QEMU's NBD server.
func dialNBD(ctx context.Context, socket, export string, contexts ...string) (DiskReader, error) {
	c, err := nbd.Dial(ctx, socket, export, contexts...)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Service runs backups.
type Service struct {
	hv    Hypervisor
	vms   *vm.Service
	ops   *ops.Manager
	store store.Store
	cfg   Config
	log   *slog.Logger

	repoOnce sync.Once
	repo     *repo.Repo
	repoErr  error
	clock    func() time.Time
}

// New returns a Service. The repository is opened on first use.
func New(hv Hypervisor, vms *vm.Service, om *ops.Manager, st store.Store, cfg Config, log *slog.Logger) *Service {
	if cfg.ScheduleTick <= 0 {
		cfg.ScheduleTick = 5 * time.Second
	}
	if cfg.OpenDisk == nil {
		cfg.OpenDisk = dialNBD
	}
	return &Service{hv: hv, vms: vms, ops: om, store: st, cfg: cfg, log: log, clock: time.Now}
}

// Repo opens (or makes) the repository.
func (s *Service) Repo() (*repo.Repo, error) {
	s.repoOnce.Do(func() { s.repo, s.repoErr = repo.Open(s.cfg.Repo) })
	if s.repoErr != nil {
		return nil, api.StatusErrorf(500, "%v", s.repoErr)
	}
	return s.repo, nil
}

// List returns the backups, oldest first; vm filters by VM name.
func (s *Service) List(ctx context.Context, vmName string) ([]api.Backup, error) {
	r, err := s.Repo()
	if err != nil {
		return nil, err
	}
	ms, err := r.List()
	if err != nil {
		return nil, err
	}
	out := []api.Backup{}
	for _, m := range ms {
		if vmName != "" && m.VM != vmName {
			continue
		}
		out = append(out, view(m, false))
	}
	return out, nil
}

// Get returns one backup, with its spec. id may also be a VM name: its
// newest backup.
func (s *Service) Get(ctx context.Context, id string) (api.Backup, error) {
	m, err := s.manifest(id)
	if err != nil {
		return api.Backup{}, err
	}
	return view(m, true), nil
}

// manifest finds a backup by id, or the newest backup of a VM of that name.
func (s *Service) manifest(id string) (repo.Manifest, error) {
	r, err := s.Repo()
	if err != nil {
		return repo.Manifest{}, err
	}
	m, err := r.Manifest(id)
	if err == nil {
		return m, nil
	}
	if !errors.Is(err, repo.ErrNotFound) {
		return m, err
	}
	if !strings.Contains(id, "@") {
		ms, lerr := r.List()
		if lerr != nil {
			return m, lerr
		}
		for i := len(ms) - 1; i >= 0; i-- {
			if ms[i].VM == id {
				return ms[i], nil
			}
		}
	}
	return m, api.NotFound("backup %s not found (godwit backup list shows them)", id)
}

func view(m repo.Manifest, withSpec bool) api.Backup {
	b := api.Backup{
		ID: m.ID, VM: m.VM, CreatedAt: m.CreatedAt, Mode: m.Mode, Parent: m.Parent, Note: m.Note, Host: m.Host,
		Stats: api.BackupStats{
			BytesRead: api.Size(m.Stats.BytesRead), BytesStored: api.Size(m.Stats.BytesStored),
			ChunksNew: m.Stats.ChunksNew, ChunksReused: m.Stats.ChunksReused, Seconds: m.Stats.Seconds,
			CommitSeconds: m.Stats.CommitSeconds,
		},
	}
	for _, d := range m.Disks {
		b.Size += api.Size(d.Size)
		b.DataBytes += api.Size(d.DataBytes)
		b.Disks = append(b.Disks, api.BackupDisk{Name: d.Name, Target: d.Target, Size: api.Size(d.Size), DataBytes: api.Size(d.DataBytes), Chunks: d.Chunks})
	}
	if withSpec {
		var spec api.VMSpec
		if json.Unmarshal(m.Spec, &spec) == nil {
			b.Spec = &spec
		}
	}
	return b
}

func target(vmName string) string { return "vm/" + vmName }
