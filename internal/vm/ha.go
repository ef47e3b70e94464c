package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
)

// HA restarts (internal/cluster decides when, and claims the VM's record
// for this host first): the VM service keeps, in each record, whether the
// VM should run (a start says yes, a stop or kill no), defines a claimed
// VM's domain here and starts it, and drops the domain a host left
// behind when its VM moved while the host was cut off.

// RecordInfo is what a VM record says for HA: the spec, and whether the
// VM should run.
func RecordInfo(raw []byte) (spec api.VMSpec, run bool, err error) {
	var r record
	if err := json.Unmarshal(raw, &r); err != nil {
		return api.VMSpec{}, false, fmt.Errorf("vm record: %w", err)
	}
	return r.Spec, r.Run, nil
}

// setRun records whether the VM should run; a VM whose record is gone
// is left alone.
func (s *Service) setRun(ctx context.Context, name string, run bool) {
	rec, err := s.getRecord(ctx, name)
	if err != nil || rec.Run == run {
		return
	}
	rec.Run = run
	if err := s.putRecord(ctx, rec); err != nil {
		s.log.Warn("record whether the VM should run", "vm", name, "run", run, "err", err)
	}
}

// haStartTries and haStartPause bound the start of a VM restarted here:
// the host that lost it may still hold its disk's lock for a moment.
const (
	haStartTries = 10
	haStartPause = 3 * time.Second
)

// RestartHere defines and starts, in an operation, a VM whose record this
// host has just claimed from a host that was lost: its NICs plug into this
// host's networks, its seed and boot files are made here, its disks (on a
// shared pool) are the same files.
func (s *Service) RestartHere(ctx context.Context, name, from string) (api.Operation, error) {
	unlock, err := s.lock(ctx, name, "vm.ha-restart")
	if err != nil {
		return api.Operation{}, err
	}
	rec, err := s.getRecord(ctx, name)
	if err != nil {
		unlock()
		return api.Operation{}, err
	}
	op := s.ops.Start("vm.ha-restart", target(name), func(ctx context.Context, o *ops.Op) error {
		defer unlock()
		return s.restartHere(ctx, o, rec, from)
	})
	s.relabel(name, "vm.ha-restart", "operation "+op.ID+" (vm.ha-restart)")
	return op, nil
}

func (s *Service) restartHere(ctx context.Context, o *ops.Op, rec record, from string) error {
	r := revert.New()
	defer r.Fail()
	undo := context.Background()
	o.Progress(fmt.Sprintf("restarting vm %s here: host %s was lost", rec.Name, from), 1, 3, "steps")
	if rec.Adopted {
		// Its definition is libvirt's on the lost host, not the spec's.
		return api.Conflict("vm %s is adopted: godwit restarts only the VMs it defined from their spec", rec.Name)
	}
	for _, d := range rec.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			return api.Conflict("disk %s of vm %s: %s is not on this host (is the shared pool mounted here?)", d.Name, rec.Name, d.Path)
		}
	}
	if _, err := s.hv.Lookup(ctx, rec.Name); err == nil {
		if err := s.dropDomain(ctx, rec.Name); err != nil {
			return err
		}
	} else if !errors.Is(err, hypervisor.ErrNotFound) {
		return opError("look up", rec.Name, err)
	}
	m := Moving{Name: rec.Name, UUID: rec.UUID, Spec: rec.Spec, Disks: rec.Disks, ConsoleLogged: rec.ConsoleLog != "",
		CreatedAt: rec.CreatedAt, Boot: rec.Boot, Seed: rec.Seed}
	for _, n := range rec.NICs {
		m.NICs = append(m.NICs, api.MigrationNIC{Network: n.Network, MAC: n.MAC, Model: n.Model})
	}
	a, err := s.PrepareArrival(ctx, m, true)
	if err != nil {
		return err
	}
	defer a.release()
	rec.NICs, rec.Seed, rec.BootFiles, rec.Status = a.nics, a.Seed, a.BootFiles, statusReady
	if rec.ConsoleLog != "" {
		rec.ConsoleLog = s.consolePath(rec.Name)
	}
	virtType, err := s.cfg.VirtType(ctx)
	if err != nil {
		return mapHypervisorError(err)
	}
	xml, err := s.domainXML(rec, virtType)
	if err != nil {
		return err
	}
	o.Progress("defining the domain", 2, 3, "steps")
	if _, err := s.hv.Define(ctx, xml); err != nil {
		return opError("define", rec.Name, err)
	}
	r.Add(func() { _ = s.hv.Undefine(undo, rec.Name) })
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	o.Progress("starting", 3, 3, "steps")
	for try := 1; ; try++ {
		err = s.start(ctx, o, rec)
		if err == nil || try == haStartTries {
			break
		}
		s.log.Warn("HA restart: the VM does not start yet; trying again", "vm", rec.Name, "try", try, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(haStartPause):
		}
	}
	if err != nil {
		return err
	}
	r.Success()
	s.log.Warn("vm restarted here: its host was lost", "vm", rec.Name, "from", from)
	return nil
}

// DropStale removes the domain of a VM that lives on another host now
// (it moved while this host was cut off): destroyed if it runs, undefined,
// its console log and seed removed. Its disks are the other host's now
// and stay. A domain godwit did not define, or a VM this host still has a
// record of, is left alone.
func (s *Service) DropStale(ctx context.Context, name string) error {
	unlock, err := s.lockLocal(name, "vm.drop-stale")
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.getRecord(ctx, name); err == nil {
		return api.Conflict("vm %s has a record on this host; it is not stale", name)
	} else if api.Status(err) != 404 {
		return err
	}
	if err := s.dropDomain(ctx, name); err != nil {
		return err
	}
	s.removeConsoleLogs(name)
	s.removeSeed(name)
	s.log.Warn("dropped the domain of a VM that moved to another host while this host was cut off", "vm", name)
	return nil
}

// dropDomain destroys and undefines a domain of this daemon's.
func (s *Service) dropDomain(ctx context.Context, name string) error {
	xml, err := s.hv.XML(ctx, name, true)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return nil
	}
	if err != nil {
		return opError("read definition of", name, err)
	}
	if domainxml.OwnerOf(xml) != s.cfg.Owner {
		return api.Conflict("a libvirt domain named %s is here that godwit did not define; godwit leaves it alone", name)
	}
	if d, err := s.hv.Lookup(ctx, name); err == nil && d.State.Active() {
		if err := s.hv.Destroy(ctx, name); err != nil && !errors.Is(err, hypervisor.ErrInvalidState) {
			return opError("destroy", name, err)
		}
	}
	if err := s.hv.Undefine(ctx, name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
		return opError("undefine", name, err)
	}
	return nil
}

// Fence destroys a VM at once, without its locks (which need the cluster
// this host has lost): a host cut off from the cluster stops its HA VMs
// before another host may restart them. Its record is left as it is.
func (s *Service) Fence(ctx context.Context, name string) error {
	d, err := s.hv.Lookup(ctx, name)
	if errors.Is(err, hypervisor.ErrNotFound) || (err == nil && !d.State.Active()) {
		return nil
	}
	if err != nil {
		return opError("look up", name, err)
	}
	if err := s.hv.Destroy(ctx, name); err != nil && !errors.Is(err, hypervisor.ErrInvalidState) {
		return opError("destroy", name, err)
	}
	return nil
}

// Domains are the names of the domains this daemon defined here.
func (s *Service) Domains(ctx context.Context) ([]string, error) {
	doms, err := s.hv.List(ctx)
	if err != nil {
		return nil, mapHypervisorError(err)
	}
	var out []string
	for _, d := range doms {
		if xml, err := s.hv.XML(ctx, d.Name, true); err == nil && domainxml.OwnerOf(xml) == s.cfg.Owner {
			out = append(out, d.Name)
		}
	}
	return out, nil
}
