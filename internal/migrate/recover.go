package migrate

import (
	"context"
	"errors"
	"fmt"

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
				// Finish leaves the domain transient; the daemon defines
				// it right after, which a kill (or a failed define) can
				// cut. Until it is defined the record stays.
				if !d.Persistent || rec.Phase == "define" {
					if err := s.persist(ctx, name, rec.XML); err != nil {
						s.log.Error("a migrated VM runs here, transient: its persistent definition could not be written; next start tries again", "vm", name, "err", err)
						continue
					}
					s.log.Info("defined a migrated VM that ran here transient", "vm", name)
				}
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
		if err := s.recoverOut(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// recoverOut settles an outgoing move a stopped daemon left. One that
// never performed, or whose VM runs here, left it here. Otherwise (the
// domain here is gone, or paused by a move that was performing) the
// destination is asked: the VM runs there, so the move ends here; it is
// not there, so the VM resumes here. When the destination cannot say,
// the record stays for the next start.
func (s *Service) recoverOut(ctx context.Context, o outgoing) error {
	if o.Phase == phaseHandedOver {
		// Finish said it runs there: whatever is left here goes, unasked.
		done := s.vms.Leaving(o.VM)
		defer done()
		if err := s.dropLeft(o.VM); err != nil {
			return fmt.Errorf("end the domain of vm %s, which moved to %s: %w", o.VM, o.To, err)
		}
		s.log.Warn("a VM had moved when the daemon stopped; its source side is ended now", "vm", o.VM, "now on", o.To)
		s.movedAway(ctx, o)
		s.dropRecord(outBucket, o.ID)
		return nil
	}
	d, err := s.hv.Lookup(ctx, o.VM)
	here := err == nil
	switch {
	case err != nil && !errors.Is(err, hypervisor.ErrNotFound):
		return err
	case here && (o.Phase == "started" || d.State != hypervisor.StatePaused):
		s.log.Info("an outgoing migration was cut off; the VM stayed here", "vm", o.VM, "to", o.To, "phase", o.Phase)
		s.dropRecord(outBucket, o.ID)
		return nil
	}
	peer, err := s.peers.Client(ctx, o.To)
	if err != nil {
		s.log.Warn("cannot tell yet where a VM whose migration was cut off runs", "vm", o.VM, "to", o.To, "err", err)
		return nil
	}
	defer peer.Close()
	switch where := s.whereIs(ctx, peer, o.ID, o.VM); {
	case where == runsThere:
		s.log.Warn("a VM moved while the daemon was down; ending it here", "vm", o.VM, "now on", o.To)
		s.dropSourceDomain(o.VM)
		s.movedAway(ctx, o)
	case where == notThere && here:
		s.log.Warn("a VM whose migration was cut off is not on the destination; it runs on here", "vm", o.VM, "to", o.To)
		if !o.WasPaused {
			if err := s.hv.Resume(ctx, o.VM); err != nil {
				return err
			}
		}
	default:
		s.log.Warn("cannot tell yet where a VM whose migration was cut off runs", "vm", o.VM, "to", o.To, "phase", o.Phase)
		return nil
	}
	s.dropRecord(outBucket, o.ID)
	return nil
}

// movedAway ends a VM here that now runs on its destination: godwit's
// record of it, and the source copies of the disks that were copied (its
// domain is the caller's business).
func (s *Service) movedAway(ctx context.Context, o outgoing) {
	if err := s.vms.ForgetMoved(ctx, o.VM); err != nil {
		s.log.Error("forget a VM that moved", "vm", o.VM, "err", err)
	}
	s.dropCopies(ctx, o)
}

// dropCopies deletes the source copies of a moved VM's copied disks.
func (s *Service) dropCopies(ctx context.Context, o outgoing) {
	for _, d := range o.Copied {
		if err := s.hv.DeleteVolume(ctx, d.Pool, d.Volume); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			s.log.Error("delete the source copy of a moved disk", "volume", d.Pool+"/"+d.Volume, "err", err)
		}
	}
}

// isActive says whether an outgoing move runs in this process.
func (s *Service) isActive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[id]
}
