package vm

import (
	"context"
	"errors"

	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/store"
)

// Reconcile finishes what a daemon that died mid-way left behind: a VM
// still "creating" is rolled back (its operation was marked failed), a VM
// still "deleting" is deleted. Domains godwit did not create are never
// touched. Run it once libvirt is reachable, before serving changes.
func (s *Service) Reconcile(ctx context.Context) error {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		switch rec.Status {
		case statusCreating:
			s.log.Warn("rolling back a VM whose creation was interrupted", "vm", rec.Name)
			if err := s.rollBackCreate(ctx, rec); err != nil {
				return err
			}
		case statusDeleting:
			s.log.Warn("finishing an interrupted delete", "vm", rec.Name)
			if err := s.delete(ctx, noProgress{}, rec, DeleteOptions{KeepDisks: rec.KeepDisks}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Service) rollBackCreate(ctx context.Context, rec record) error {
	xml, err := s.hv.XML(ctx, rec.Name, true)
	switch {
	case err == nil && domainxml.OwnerOf(xml) == s.cfg.Owner:
		if d, err := s.hv.Lookup(ctx, rec.Name); err == nil && d.State.Active() {
			_ = s.hv.Destroy(ctx, rec.Name)
		}
		if err := s.hv.Undefine(ctx, rec.Name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			return err
		}
	case err != nil && !errors.Is(err, hypervisor.ErrNotFound):
		return err
	}
	for _, d := range rec.Disks {
		if d.External {
			continue
		}
		if err := s.hv.DeleteVolume(ctx, d.Pool, d.Volume); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			return err
		}
	}
	s.removeSeed(rec.Name)
	s.removeConsoleLogs(rec.Name)
	if err := s.store.Delete(ctx, bucket, rec.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}
