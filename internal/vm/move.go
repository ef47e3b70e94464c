package vm

import (
	"context"
	"errors"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/store"
)

// Moving is what travels with a VM between hosts, besides its domain.
type Moving struct {
	Name          string
	UUID          string
	Spec          api.VMSpec
	Disks         []api.VMDisk
	ConsoleLogged bool
	CreatedAt     time.Time
}

// HoldForMove locks a managed VM for a migration and returns it with its
// domain. The caller releases the lock with the returned func.
func (s *Service) HoldForMove(ctx context.Context, name, holder string) (Moving, hypervisor.Domain, func(), error) {
	unlock, err := s.lock(name, holder)
	if err != nil {
		return Moving{}, hypervisor.Domain{}, nil, err
	}
	rec, err := s.managed(ctx, name)
	if err != nil {
		unlock()
		return Moving{}, hypervisor.Domain{}, nil, err
	}
	d, err := s.hv.Lookup(ctx, name)
	if err != nil {
		unlock()
		if errors.Is(err, hypervisor.ErrNotFound) {
			return Moving{}, d, nil, api.Conflict("vm %s has no libvirt domain here; nothing to move", name)
		}
		return Moving{}, d, nil, mapHypervisorError(err)
	}
	m := Moving{Name: rec.Name, UUID: rec.UUID, Spec: rec.Spec, Disks: rec.Disks, ConsoleLogged: rec.ConsoleLog != "", CreatedAt: rec.CreatedAt}
	return m, d, unlock, nil
}

// ReserveIncoming locks a name for a VM arriving from another host: no VM
// and no domain of that name may exist here.
func (s *Service) ReserveIncoming(ctx context.Context, name, holder string) (func(), error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	unlock, err := s.lock(name, holder)
	if err != nil {
		return nil, err
	}
	if err := s.nameFree(ctx, name); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// nameFree checks that neither godwit nor libvirt has a VM of this name.
func (s *Service) nameFree(ctx context.Context, name string) error {
	if _, err := s.getRecord(ctx, name); err == nil {
		return api.Conflict("a VM named %s exists on this host", name)
	} else if api.Status(err) != 404 {
		return err
	}
	if _, err := s.hv.Lookup(ctx, name); err == nil {
		return api.Conflict("a libvirt domain named %s exists on this host", name)
	} else if !errors.Is(err, hypervisor.ErrNotFound) {
		return mapHypervisorError(err)
	}
	return nil
}

// NameFree is nameFree for callers outside the package (preflight).
func (s *Service) NameFree(ctx context.Context, name string) error { return s.nameFree(ctx, name) }

// AdoptMoved records a VM whose domain now runs (or is defined) here.
func (s *Service) AdoptMoved(ctx context.Context, m Moving) error {
	rec := record{Name: m.Name, UUID: m.UUID, Spec: m.Spec, Status: statusReady, Disks: m.Disks, CreatedAt: m.CreatedAt}
	if m.ConsoleLogged {
		rec.ConsoleLog = s.consolePath(m.Name)
	}
	return s.putRecord(ctx, rec)
}

// ForgetMoved drops a VM that now lives on another host: its record and
// console logs (its domain and disks are the caller's business).
func (s *Service) ForgetMoved(ctx context.Context, name string) error {
	s.removeConsoleLogs(name)
	if err := s.store.Delete(ctx, bucket, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// Has says whether godwit has a record of this VM here.
func (s *Service) Has(ctx context.Context, name string) (bool, error) {
	_, err := s.getRecord(ctx, name)
	if api.Status(err) == 404 {
		return false, nil
	}
	return err == nil, err
}

// ConsolePath is where a VM's console log lives on this host.
func (s *Service) ConsolePath(name string) string { return s.consolePath(name) }

// Pool is the storage pool new disks go to.
func (s *Service) Pool() string { return s.cfg.Pool }

// Owner is this daemon's id, as written into domain metadata.
func (s *Service) Owner() string { return s.cfg.Owner }

// VolumeName is the volume a VM's disk gets.
func VolumeName(vm, disk string) string { return volumeName(vm, disk) }
