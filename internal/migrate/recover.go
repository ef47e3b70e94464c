package migrate

import (
	"context"
	"errors"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/store"
)

// Recover finishes or undoes moves that a stopped daemon left behind. An
// incoming move that reached Finish and whose domain runs here is adopted;
// any other is undone (libvirt destroys an incoming domain whose
// connection closed; its volumes are godwit's to delete). An outgoing move
// whose VM still runs here was aborted: forget it; one whose VM runs on the
// destination moved: forget the VM here and free its disks.
func (s *Service) Recover(ctx context.Context) error {
	ins, err := store.ListJSON[incomingRecord](ctx, s.store, inBucket)
	if err != nil {
		return err
	}
	for _, rec := range ins {
		s.mu.Lock()
		_, live := s.incoming[rec.Offer.ID]
		s.mu.Unlock()
		if live {
			continue
		}
		name := rec.Offer.VM
		d, err := s.hv.Lookup(ctx, name)
		if err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			return err
		}
		adopted := false
		// Finish3 resumes the guest: a running domain means the move
		// finished (an unfinished incoming domain is paused, or gone:
		// libvirt destroys it when the connection that prepared it closes).
		if err == nil && d.State == hypervisor.StateRunning {
			if xml, xerr := s.hv.XML(ctx, name, false); xerr == nil && ownedBy(xml, s.vms.Owner()) {
				has, herr := s.vms.Has(ctx, name)
				if herr != nil {
					return herr
				}
				if !has {
					a, aerr := s.vms.PrepareArrival(ctx, moving(rec.Offer, nil), true)
					if aerr == nil {
						aerr = s.adopt(ctx, rec, a)
					}
					if aerr != nil {
						return aerr
					}
				}
				adopted = true
				s.log.Warn("adopted a VM whose incoming migration finished while the daemon was down", "vm", name, "from", rec.From)
			}
		}
		if !adopted {
			s.log.Warn("undoing an incoming migration that did not finish", "vm", name, "from", rec.From, "phase", rec.Phase)
			if err := s.undoIncoming(ctx, rec); err != nil {
				return err
			}
		}
		s.dropRecord(inBucket, rec.Offer.ID)
	}

	outs, err := store.ListJSON[outgoing](ctx, s.store, outBucket)
	if err != nil {
		return err
	}
	for _, o := range outs {
		if s.isActive(o.ID) {
			continue
		}
		if _, err := s.hv.Lookup(ctx, o.VM); err == nil {
			s.log.Info("an outgoing migration was cut off; the VM stayed here", "vm", o.VM, "to", o.To)
			s.dropRecord(outBucket, o.ID)
			continue
		} else if !errors.Is(err, hypervisor.ErrNotFound) {
			return err
		}
		peer, err := s.peers.Client(ctx, o.To)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := peer.GetVM(cctx, o.VM)
		cancel()
		peer.Close()
		if err != nil || !v.Managed {
			s.log.Warn("cannot tell yet where a VM whose migration was cut off runs", "vm", o.VM, "to", o.To, "err", err)
			continue
		}
		s.log.Warn("a VM moved while the daemon was down; forgetting it here", "vm", o.VM, "now on", o.To)
		_ = s.vms.ForgetMoved(ctx, o.VM)
		for _, d := range o.Copied {
			_ = s.hv.DeleteVolume(ctx, d.Pool, d.Volume)
		}
		s.dropRecord(outBucket, o.ID)
	}
	return nil
}

// isActive says whether an outgoing move runs in this process.
func (s *Service) isActive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[id]
}
