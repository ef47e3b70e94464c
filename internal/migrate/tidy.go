package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor"
)

// phaseHandedOver is an outgoing move whose VM runs on the destination
// (its Finish answered) and whose domain here may still be ending.
const phaseHandedOver = "handed over"

// Tidy-up after a hand-over: how often and how long the source's domain is
// ended again when Confirm left it.
var (
	tidyEvery    = 2 * time.Second
	tidyAttempts = 30
)

// handOver ends the VM here as far as godwit's users can see, once Finish
// said it runs there: the move's record says so (a restart ends the
// domain here without asking), godwit's record of the VM goes, and its
// domain, until tidyUp removed it, is shown by neither List nor Get. The
// VM's lock stays held, so no create, adopt or move can take the name.
// false: the record could not be written; the caller confirms as before.
func (s *Service) handOver(mv *move) bool {
	done := s.vms.Leaving(mv.m.Name)
	if err := s.setPhase(context.Background(), mv, phaseHandedOver); err != nil {
		done()
		s.log.Error("record a migration's hand-over; confirming before the operation ends", "vm", mv.m.Name, "err", err)
		return false
	}
	if err := s.vms.ForgetMoved(context.Background(), mv.m.Name); err != nil {
		s.log.Error("forget a VM that moved", "vm", mv.m.Name, "err", err)
	}
	mv.leaving = done
	s.vms.Relabel(mv.m.Name, "migration to "+mv.req.To, "the end of its domain here (it moved to "+mv.req.To+")")
	return true
}

// tidyUp ends the source's side of a handed-over move: confirm (libvirt
// stops the source QEMU and undefines its domain), the domain ended by
// hand when that failed, then the source copies of the copied disks and
// the move's record. It says whether the domain is gone; if it never
// went, the name stays hidden and held, and the record stays for the next
// start of the daemon to settle.
func (s *Service) tidyUp(mv *move, confirm func() error) bool {
	name := mv.m.Name
	start := time.Now()
	if err := confirm(); err != nil {
		s.log.Warn("confirm after a migration failed; ending the domain here by hand", "vm", name, "err", err)
	}
	for i := 0; ; i++ {
		err := s.dropLeft(name)
		if err == nil {
			break
		}
		if i+1 >= tidyAttempts {
			s.log.Error("the domain of a VM that moved is still here; it stays hidden, and the daemon's next start ends it", "vm", name, "to", mv.req.To, "err", err)
			return false
		}
		time.Sleep(tidyEvery)
	}
	s.dropCopies(context.Background(), mv.out)
	s.dropRecord(outBucket, mv.id)
	s.setActive(mv.id, false)
	mv.leaving()
	s.log.Info("source tidied up after a migration", "vm", name, "to", mv.req.To, "confirmMs", time.Since(start).Milliseconds())
	return true
}

// dropLeft ends the domain of a VM that moved, if it is still here, and
// says whether it is gone.
func (s *Service) dropLeft(name string) error {
	ctx := context.Background()
	d, err := s.hv.Lookup(ctx, name)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d.State.Active() {
		if err := s.hv.Destroy(ctx, name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			return fmt.Errorf("destroy: %w", err)
		}
	}
	if err := s.hv.Undefine(ctx, name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		return fmt.Errorf("undefine: %w", err)
	}
	if _, err := s.hv.Lookup(ctx, name); !errors.Is(err, hypervisor.ErrNotFound) {
		return fmt.Errorf("libvirt still has domain %s (%v)", name, err)
	}
	return nil
}

func (s *Service) setActive(id string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.active[id] = true
	} else {
		delete(s.active, id)
	}
}
