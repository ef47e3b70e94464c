package vm

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
	"github.com/godwit-project/godwit/internal/store"
)

// CreateOptions tune Create.
type CreateOptions struct {
	Start bool
}

// Create validates the spec now (a bad spec is a 400, a taken name a 409,
// before any operation starts) and then creates the VM in an operation.
func (s *Service) Create(ctx context.Context, spec api.VMSpec, opts CreateOptions) (api.Operation, error) {
	Normalize(&spec)
	if err := ValidateStatic(spec); err != nil {
		return api.Operation{}, err
	}
	unlock, err := s.lock(ctx, spec.Name, "vm.create")
	if err != nil {
		return api.Operation{}, err
	}
	plan, err := s.planCreate(ctx, spec)
	if err != nil {
		unlock()
		return api.Operation{}, err
	}
	rec := s.newRecord(plan)
	if err := s.claimCluster(ctx, rec); err != nil {
		plan.release()
		unlock()
		return api.Operation{}, err
	}
	op := s.ops.Start("vm.create", target(spec.Name), func(ctx context.Context, o *ops.Op) error {
		defer unlock()
		defer plan.release()
		return s.create(ctx, o, plan, rec, opts)
	})
	s.relabel(spec.Name, "vm.create", "operation "+op.ID+" (vm.create)")
	return op, nil
}

// createPlan is a validated create: the spec and everything resolved for it.
type createPlan struct {
	spec     api.VMSpec
	disks    []resolvedDisk
	nics     []nicRecord
	boot     plannedBoot
	virtType string
	release  func() // lets go of the NICs' networks
}

// planCreate runs the checks that need the host and libvirt.
func (s *Service) planCreate(ctx context.Context, spec api.VMSpec) (createPlan, error) {
	if _, err := s.getRecord(ctx, spec.Name); err == nil {
		return createPlan{}, api.Conflict("name: vm %s already exists; pick another name", spec.Name)
	} else if api.Status(err) != 404 {
		return createPlan{}, err
	}
	if err := s.ownedElsewhere(ctx, spec.Name); err != nil {
		return createPlan{}, err
	}
	if _, err := s.hv.Lookup(ctx, spec.Name); err == nil {
		return createPlan{}, api.Conflict("name: a libvirt domain named %s already exists (not created by godwit); pick another name", spec.Name)
	} else if !errors.Is(err, hypervisor.ErrNotFound) {
		return createPlan{}, mapHypervisorError(err)
	}
	host, err := s.hv.HostInfo(ctx)
	if err != nil {
		return createPlan{}, mapHypervisorError(err)
	}
	if err := hostLimits(spec, host); err != nil {
		return createPlan{}, err
	}
	if err := s.hostTuning(spec, host, true); err != nil {
		return createPlan{}, err
	}
	boot, err := s.planBoot(ctx, spec.Boot, host.QEMU)
	if err != nil {
		return createPlan{}, err
	}
	disks, err := s.resolveDisks(ctx, spec.Name, spec.Disks)
	if err != nil {
		return createPlan{}, err
	}
	if err := reachDisks(disks, host.QEMU); err != nil {
		return createPlan{}, err
	}
	if err := s.haDisks(ctx, spec, s.diskPools(disks)); err != nil {
		return createPlan{}, err
	}
	for _, d := range disks {
		if d.Volume != "" {
			continue
		}
		vol := volumeName(spec.Name, d.Name)
		if _, err := s.hv.VolumeInfo(ctx, s.cfg.Pool, vol); err == nil {
			return createPlan{}, api.Conflict("volume %s/%s already exists (kept from a deleted VM?); delete it or pick another VM name", s.cfg.Pool, vol)
		} else if !errors.Is(err, hypervisor.ErrNotFound) {
			return createPlan{}, mapHypervisorError(err)
		}
	}
	virtType, err := s.cfg.VirtType(ctx)
	if err != nil {
		return createPlan{}, mapHypervisorError(err)
	}
	nics, release, err := s.planNICs(ctx, spec.Name, spec.NICs, nil, func(i int) string { return fmt.Sprintf("nics[%d]", i) })
	if err != nil {
		return createPlan{}, err
	}
	return createPlan{spec: spec, disks: disks, boot: boot, nics: nics, virtType: virtType, release: release}, nil
}

// diskPools names the pool of each disk, by disk name: its volume's, or
// the pool new disks go to.
func (s *Service) diskPools(disks []resolvedDisk) map[string]string {
	out := map[string]string{}
	for _, d := range disks {
		out[d.Name] = s.cfg.Pool
		if d.Volume != "" {
			out[d.Name] = d.Pool
		}
	}
	return out
}

func volumeName(vm, disk string) string { return vm + "-" + disk + ".qcow2" }

// newRecord is the first record of the VM a plan creates, marked
// creating.
func (s *Service) newRecord(p createPlan) record {
	spec := p.spec
	rec := record{Name: spec.Name, UUID: newUUID(), Spec: spec, NICs: p.nics, Status: statusCreating, CreatedAt: s.clock().UTC(),
		Boot: p.boot.boot, BootFiles: p.boot.files}
	if ConsoleLogged(spec) {
		rec.ConsoleLog = s.consolePath(spec.Name)
	}
	for i, d := range p.disks {
		rec.Disks = append(rec.Disks, s.plannedDisk(spec.Name, diskTarget(i), d))
	}
	if spec.CloudInit != nil {
		rec.Seed = s.seedPath(spec.Name)
	}
	return rec
}

// claimCluster writes, on a host of a cluster, the VM's first record
// with its reservation on this host, in one transaction guarded by the
// VM's cluster lock (held by the create) and the host's reservation
// record: a 409 when this host has no room for it. Elsewhere it does
// nothing (create writes the record).
func (s *Service) claimCluster(ctx context.Context, rec record) error {
	s.mu.Lock()
	c, held := s.cl, s.held[rec.Name]
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return c.Claim(ctx, held, rec.Name, b, rec.Spec)
}

// released tells the cluster a VM's record is gone from this host (its
// reservation goes).
func (s *Service) released(ctx context.Context) {
	s.mu.Lock()
	c := s.cl
	s.mu.Unlock()
	if c != nil {
		c.Released(ctx)
	}
}

// create makes the VM. Every side effect registers its undo first, so a
// failure at any step leaves no record, no domain, no volume, no log.
func (s *Service) create(ctx context.Context, o *ops.Op, p createPlan, rec record, opts CreateOptions) error {
	spec := p.spec
	r := revert.New()
	defer r.Fail()
	// Undo must run even when ctx was cancelled: use a fresh context.
	undo := context.Background()

	// The record goes first, marked creating (in a cluster, claimCluster
	// wrote it): a crash from here on leaves something Reconcile can
	// find and undo.
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	r.Add(func() {
		if err := s.store.Delete(undo, bucket, spec.Name); err != nil {
			s.log.Error("revert create: delete record", "vm", spec.Name, "err", err)
		}
		s.released(undo)
	})

	total := int64(len(p.disks) + 2)
	step := int64(0)
	for i, d := range p.disks {
		step++
		o.Progress(fmt.Sprintf("creating disk %s", d.Name), step, total, "steps")
		if err := s.makeDisk(ctx, r, &rec.Disks[i], d); err != nil {
			return opError("create disk "+d.Name+" of", spec.Name, err)
		}
	}
	if rec.Seed != "" {
		if err := s.writeSeed(rec); err != nil {
			return err
		}
		r.Add(func() { s.removeSeed(spec.Name) })
	}

	step++
	o.Progress("defining domain", step, total, "steps")
	if rec.ConsoleLog != "" {
		s.removeConsoleLogs(spec.Name) // a log left by an earlier VM of this name
		r.Add(func() { s.removeConsoleLogs(spec.Name) })
	}
	xml, err := s.domainXML(rec, p.virtType)
	if err != nil {
		return err
	}
	if _, err := s.hv.Define(ctx, xml); err != nil {
		return opError("define", spec.Name, err)
	}
	r.Add(func() {
		if d, err := s.hv.Lookup(undo, spec.Name); err == nil && d.State.Active() {
			_ = s.hv.Destroy(undo, spec.Name)
		}
		if err := s.hv.Undefine(undo, spec.Name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			s.log.Error("revert create: undefine", "vm", spec.Name, "err", err)
		}
	})
	if spec.Autostart {
		if err := s.hv.SetAutostart(ctx, spec.Name, true); err != nil {
			return opError("set autostart of", spec.Name, err)
		}
	}

	rec.Status, rec.Run = statusReady, opts.Start
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	if opts.Start {
		step++
		o.Progress("starting", step, total, "steps")
		if err := s.start(ctx, o, rec); err != nil {
			return err
		}
	}
	r.Success()
	o.Progress("created", total, total, "steps")
	s.log.Info("vm created", "vm", spec.Name, "disks", len(rec.Disks), "started", opts.Start)
	return nil
}

func (s *Service) domainXML(rec record, virtType string) (string, error) {
	in := domainxml.Input{
		Spec: rec.Spec, UUID: rec.UUID, VirtType: virtType, ConsoleLog: rec.ConsoleLog, Owner: s.cfg.Owner, Seed: rec.Seed,
		NICs: nicsInput(rec.NICs),
	}
	if rec.BootFiles != nil {
		in.Spec.Boot = rec.BootFiles
	} else if rec.Boot != nil {
		in.Spec.Boot = rec.Boot
	}
	for _, d := range rec.Disks {
		in.Disks = append(in.Disks, tunedDisk(domainDisk(d), rec.Spec))
	}
	for i := range in.NICs {
		if i < len(rec.Spec.NICs) {
			in.NICs[i].Queues = rec.Spec.NICs[i].Queues
		}
	}
	return domainxml.Marshal(in)
}

func domainDisk(d api.VMDisk) domainxml.Disk {
	format := d.Format
	if format == "" {
		format = "qcow2"
	}
	return domainxml.Disk{Name: d.Name, Path: d.Path, Format: format, Target: d.Target}
}

// DeleteOptions tune Delete.
type DeleteOptions struct {
	KeepDisks bool
	Force     bool // delete a running VM (destroying it first)
}

// Delete removes a VM: its domain, its disks (unless KeepDisks), its console
// log and its record, in an operation.
func (s *Service) Delete(ctx context.Context, name string, opts DeleteOptions) (api.Operation, error) {
	unlock, err := s.lock(ctx, name, "vm.delete")
	if err != nil {
		return api.Operation{}, err
	}
	rec, err := s.getRecord(ctx, name)
	if err == nil && rec.Status == statusCreating {
		err = api.Conflict("vm %s is still being created", name)
	}
	if api.Status(err) == 404 {
		if _, derr := s.hv.Lookup(ctx, name); derr == nil {
			err = api.Conflict("vm %s is a libvirt domain godwit did not create; godwit will not delete it (virsh undefine does)", name)
		} else if errors.Is(derr, hypervisor.ErrUnavailable) {
			err = mapHypervisorError(derr)
		}
	}
	if err != nil {
		unlock()
		return api.Operation{}, err
	}
	d, derr := s.hv.Lookup(ctx, name)
	if derr != nil && !errors.Is(derr, hypervisor.ErrNotFound) {
		unlock()
		return api.Operation{}, mapHypervisorError(derr)
	}
	if derr == nil && d.State.Active() && !opts.Force {
		unlock()
		return api.Operation{}, api.Conflict("vm %s is %s; stop it first, or delete with --force", name, stateOf(d))
	}
	op := s.ops.Start("vm.delete", target(name), func(ctx context.Context, o *ops.Op) error {
		defer unlock()
		return s.delete(ctx, o, rec, opts)
	})
	s.relabel(name, "vm.delete", "operation "+op.ID+" (vm.delete)")
	return op, nil
}

// delete is idempotent: Reconcile re-runs it for a record left "deleting".
func (s *Service) delete(ctx context.Context, o reporter, rec record, opts DeleteOptions) error {
	rec.Status = statusDeleting
	rec.KeepDisks = opts.KeepDisks
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	o.Progress("removing domain", 1, 3, "steps")
	d, err := s.hv.Lookup(ctx, rec.Name)
	if err == nil {
		// The name may now belong to a domain godwit did not define (ours
		// was undefined outside godwit, or by a delete cut off after
		// that): leave that one alone.
		var xml string
		if xml, err = s.hv.XML(ctx, rec.Name, true); err == nil && domainxml.OwnerOf(xml) != s.cfg.Owner && !adoptedDomain(rec, d) {
			s.log.Warn("leaving alone a libvirt domain of the VM's name that godwit did not define", "vm", rec.Name)
			err = hypervisor.ErrNotFound
		}
	}
	var overlays []string
	if err == nil {
		overlays = s.snapshotFiles(ctx, rec)
		if d.State.Active() {
			if err := s.hv.Destroy(ctx, rec.Name); err != nil && !errors.Is(err, hypervisor.ErrInvalidState) {
				return opError("destroy", rec.Name, err)
			}
		}
		if err := s.hv.Undefine(ctx, rec.Name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			return opError("undefine", rec.Name, err)
		}
	} else if !errors.Is(err, hypervisor.ErrNotFound) {
		return opError("look up", rec.Name, err)
	}
	if !opts.KeepDisks {
		o.Progress("deleting disks", 2, 3, "steps")
		for _, d := range rec.Disks {
			if d.External {
				continue // an existing volume the VM was given: not ours
			}
			if err := s.hv.DeleteVolume(ctx, d.Pool, d.Volume); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
				return opError("delete disk "+d.Name+" of", rec.Name, err)
			}
		}
		s.removeFiles(overlays)
	}
	s.removeSeed(rec.Name)
	s.removeConsoleLogs(rec.Name)
	if err := s.store.Delete(ctx, bucket, rec.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.released(ctx)
	if err := s.PruneBootFiles(ctx); err != nil {
		s.log.Warn("remove boot files no VM uses", "err", err)
	}
	for _, f := range s.onDeleted {
		f(ctx, rec.Name)
	}
	o.Progress("deleted", 3, 3, "steps")
	s.log.Info("vm deleted", "vm", rec.Name, "keepDisks", opts.KeepDisks)
	return nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
