// Package storage owns storage pools and volumes beyond a VM's own disks:
// it creates and deletes pools (dir, fs, logical, netfs) through libvirt,
// keeps godwit's metadata of them (the shared marker) in the store, and
// creates, lists, resizes, clones, uploads, downloads and deletes volumes.
//
// It does not create or delete VM disks (internal/vm does) and never
// deletes a volume a VM uses: it asks its Users (the VM service) first.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/store"
)

const bucket = "pools"

// Users is what storage needs to know of VMs: who uses a volume, and how
// to grow a volume that is a VM's disk (online when the VM runs).
type Users interface {
	VolumeUsers(ctx context.Context, pool, volume string) ([]string, error)
	ResizeDisk(ctx context.Context, vm, pool, volume string, size uint64) error
}

// Service manages pools and volumes.
type Service struct {
	hv          hypervisor.Hypervisor
	store       store.Store
	defaultPool string
	// defaultShared: the daemon's pool is on a shared filesystem
	// (--pool-shared).
	defaultShared bool
	users         Users
	log           *slog.Logger
	// direct: volumes that are files on this host are read and written
	// by the daemon itself, ~10x faster than libvirt's RPC streams (which
	// remain for block devices).
	direct bool
}

// New returns a Service; defaultPool is the daemon's own disk pool.
func New(hv hypervisor.Hypervisor, st store.Store, defaultPool string, log *slog.Logger) *Service {
	return &Service{hv: hv, store: st, defaultPool: defaultPool, log: log}
}

// SetDefaultShared marks the daemon's own pool shared: its path is the
// same shared filesystem on every host.
func (s *Service) SetDefaultShared(on bool) { s.defaultShared = on }

// SetDirectIO lets uploads and downloads of file volumes bypass libvirt's
// streams.
func (s *Service) SetDirectIO(on bool) { s.direct = on }

// SetUsers tells the service who uses volumes (the VM service, which is
// made after it).
func (s *Service) SetUsers(u Users) { s.users = u }

// meta is godwit's record of a pool: what libvirt does not keep.
type meta struct {
	Shared bool `json:"shared,omitempty"`
	// Created: godwit defined the pool (so delete may remove its directory).
	Created bool `json:"created,omitempty"`
}

// IsShared reports whether a pool is marked shared: its path is the same
// shared filesystem on every host, so migration moves no disk data.
func (s *Service) IsShared(ctx context.Context, pool string) (bool, error) {
	if pool == s.defaultPool && s.defaultShared {
		return true, nil
	}
	m, err := store.GetJSON[meta](ctx, s.store, bucket, pool)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return m.Shared, err
}

// CreatePool validates the request, checks the host (paths, devices), and
// defines, builds and starts the pool. A failure leaves no pool defined.
func (s *Service) CreatePool(ctx context.Context, req api.PoolCreate) (api.Pool, error) {
	if req.Type == "" {
		req.Type = api.PoolDir
	}
	if err := ValidateName("name", req.Name, MaxPoolName); err != nil {
		return api.Pool{}, err
	}
	if err := checkPoolRequest(req); err != nil {
		return api.Pool{}, err
	}
	if _, err := s.hv.PoolInfo(ctx, req.Name); err == nil {
		return api.Pool{}, api.Conflict("pool %s already exists", req.Name)
	} else if !errors.Is(err, hypervisor.ErrNotFound) {
		return api.Pool{}, mapErr(err)
	}
	def, err := poolXML(req)
	if err != nil {
		return api.Pool{}, err
	}
	if err := store.PutJSON(ctx, s.store, bucket, req.Name, meta{Shared: req.Shared, Created: true}); err != nil {
		return api.Pool{}, err
	}
	info, err := s.hv.DefinePool(ctx, def.XML, def.Build, def.BuildFlags)
	if err != nil {
		_ = s.store.Delete(context.Background(), bucket, req.Name)
		return api.Pool{}, fmt.Errorf("create pool %s: %w", req.Name, mapErr(err))
	}
	s.log.Info("pool created", "pool", req.Name, "type", req.Type, "path", info.Path, "shared", req.Shared)
	return s.view(ctx, info, meta{Shared: req.Shared, Created: true}, -1), nil
}

// checkPoolRequest checks the fields each type needs, and the host: a
// pool on a missing path or device is refused before libvirt is asked.
func checkPoolRequest(req api.PoolCreate) error {
	needAbs := func(field, p string) error {
		if p == "" {
			return api.BadRequest("%s: missing (a %s pool needs one)", field, req.Type)
		}
		if !filepath.IsAbs(p) {
			return api.BadRequest("%s: %q must be an absolute path", field, p)
		}
		if filepath.Clean(p) == "/" {
			return api.BadRequest("%s: / cannot be a pool", field)
		}
		return nil
	}
	parentExists := func(field, p string) error {
		parent := filepath.Dir(filepath.Clean(p))
		if st, err := os.Stat(parent); err != nil || !st.IsDir() {
			return api.BadRequest("%s: %s does not exist on this host (its parent %s is missing; create it first)", field, p, parent)
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return api.BadRequest("%s: %s exists and is not a directory", field, p)
		}
		return nil
	}
	blockDevice := func(field, p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return api.BadRequest("%s: %s does not exist on this host", field, p)
		}
		if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
			return api.BadRequest("%s: %s is not a block device", field, p)
		}
		return nil
	}
	switch req.Type {
	case api.PoolDir:
		if err := needAbs("path", req.Path); err != nil {
			return err
		}
		return parentExists("path", req.Path)
	case api.PoolFS:
		if err := needAbs("device", req.Device); err != nil {
			return err
		}
		if err := blockDevice("device", req.Device); err != nil {
			return err
		}
		if err := needAbs("path", req.Path); err != nil {
			return err
		}
		return parentExists("path", req.Path)
	case api.PoolLogical:
		if req.VG != "" {
			if err := ValidateName("vg", req.VG, MaxPoolName); err != nil {
				return err
			}
		}
		if req.Build && req.Device == "" {
			return api.BadRequest("device: building a logical pool needs the device to make the volume group on")
		}
		if req.Device != "" {
			if err := needAbs("device", req.Device); err != nil {
				return err
			}
			if err := blockDevice("device", req.Device); err != nil {
				return err
			}
		}
		if req.Path != "" {
			return needAbs("path", req.Path)
		}
		return nil
	case api.PoolNetFS:
		if req.Host == "" {
			return api.BadRequest("host: missing (the NFS server)")
		}
		if strings.ContainsAny(req.Host, "/ \t") {
			return api.BadRequest("host: %q is not a host name or address", req.Host)
		}
		if err := needAbs("export", req.Export); err != nil {
			return err
		}
		if err := needAbs("path", req.Path); err != nil {
			return err
		}
		return parentExists("path", req.Path)
	}
	return api.BadRequest("type: %q is not dir, fs, logical or netfs", req.Type)
}

// ListPools returns every libvirt pool, godwit's metadata added.
func (s *Service) ListPools(ctx context.Context) ([]api.Pool, error) {
	infos, err := s.hv.ListPools(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	metas, err := s.metas(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Pool, 0, len(infos))
	for _, info := range infos {
		n := -1
		if info.Active {
			if vols, err := s.hv.ListVolumes(ctx, info.Name); err == nil {
				n = len(vols)
			}
		}
		out = append(out, s.view(ctx, info, metas[info.Name], n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// GetPool returns one pool.
func (s *Service) GetPool(ctx context.Context, name string) (api.Pool, error) {
	info, err := s.poolInfo(ctx, name)
	if err != nil {
		return api.Pool{}, err
	}
	m, _ := store.GetJSON[meta](ctx, s.store, bucket, name)
	n := -1
	if info.Active {
		if vols, err := s.hv.ListVolumes(ctx, name); err == nil {
			n = len(vols)
		}
	}
	return s.view(ctx, info, m, n), nil
}

func (s *Service) poolInfo(ctx context.Context, name string) (hypervisor.PoolInfo, error) {
	info, err := s.hv.PoolInfo(ctx, name)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return info, api.NotFound("pool %s not found", name)
	}
	return info, mapErr(err)
}

// DeletePool removes an empty pool. The daemon's own pool and pools that
// still hold volumes are refused.
func (s *Service) DeletePool(ctx context.Context, name string) error {
	if name == s.defaultPool {
		return api.Conflict("pool %s is this daemon's own disk pool; it cannot be deleted", name)
	}
	info, err := s.poolInfo(ctx, name)
	if err != nil {
		return err
	}
	if info.Active {
		vols, err := s.hv.ListVolumes(ctx, name)
		if err != nil {
			return mapErr(err)
		}
		if len(vols) > 0 {
			names := make([]string, 0, len(vols))
			for _, v := range vols {
				names = append(names, v.Name)
			}
			return api.Conflict("pool %s still holds %d volume(s) (%s); delete them first", name, len(vols), strings.Join(names, ", "))
		}
	}
	m, _ := store.GetJSON[meta](ctx, s.store, bucket, name)
	// Only a dir pool godwit made loses its (empty) directory; an fs or
	// netfs mount point, or a pool a user defined, keeps it.
	removeDir := m.Created && info.Type == api.PoolDir
	if err := s.hv.DeletePool(ctx, name, removeDir); err != nil {
		return fmt.Errorf("delete pool %s: %w", name, mapErr(err))
	}
	if err := s.store.Delete(ctx, bucket, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.log.Info("pool deleted", "pool", name)
	return nil
}

func (s *Service) metas(ctx context.Context) (map[string]meta, error) {
	kvs, err := s.store.List(ctx, bucket)
	if err != nil {
		return nil, err
	}
	out := map[string]meta{}
	for _, kv := range kvs {
		m, err := store.GetJSON[meta](ctx, s.store, bucket, kv.Key)
		if err == nil {
			out[kv.Key] = m
		}
	}
	return out, nil
}

func (s *Service) view(_ context.Context, info hypervisor.PoolInfo, m meta, volumes int) api.Pool {
	p := api.Pool{
		Name: info.Name, Type: info.Type, Path: info.Path, Source: info.Source, Active: info.Active,
		Autostart: info.Autostart, Shared: m.Shared || (info.Name == s.defaultPool && s.defaultShared), Default: info.Name == s.defaultPool,
		Capacity: api.Size(info.Capacity), Allocation: api.Size(info.Allocation), Available: api.Size(info.Available),
	}
	if volumes >= 0 {
		p.Volumes = volumes
	}
	return p
}

// mapErr turns hypervisor sentinels into API statuses.
func mapErr(err error) error { return hypervisor.APIError(err) }
