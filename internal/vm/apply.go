package vm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
)

// diff is what an apply would change, split by what the VM's state allows.
type diff struct {
	live      []string // applied whether the VM runs or not
	offline   []string // need the VM stopped
	refused   []string // never done by apply
	newDisks  []api.Disk
	growDisks map[string]api.Size // disk name -> new size
}

func (d diff) changes() []string {
	return append(append([]string{}, d.live...), d.offline...)
}

// compare lists the differences between the current and the new spec;
// disks holds the current disks as created (their real sizes).
func compare(old, new api.VMSpec, disks []api.VMDisk) diff {
	d := diff{growDisks: map[string]api.Size{}}
	// cpus, memory and the rest of the tuning: compareTuning.
	if !reflect.DeepEqual(old.Boot, new.Boot) {
		d.offline = append(d.offline, "boot: changed")
	}
	if ConsoleLogged(old) != ConsoleLogged(new) {
		d.offline = append(d.offline, fmt.Sprintf("console.log: %t -> %t", ConsoleLogged(old), ConsoleLogged(new)))
	}
	if old.Graphics != new.Graphics {
		d.offline = append(d.offline, fmt.Sprintf("graphics: %s -> %s", graphicsName(old.Graphics), graphicsName(new.Graphics)))
	}
	if !reflect.DeepEqual(old.CloudInit, new.CloudInit) {
		d.offline = append(d.offline, "cloudInit: changed (a new seed; cloud-init reads it at the next boot)")
	}
	if old.Autostart != new.Autostart {
		d.live = append(d.live, fmt.Sprintf("autostart: %t -> %t", old.Autostart, new.Autostart))
	}
	if !maps.Equal(old.Labels, new.Labels) {
		d.live = append(d.live, "labels: changed")
	}
	if !reflect.DeepEqual(old.Placement, new.Placement) {
		d.live = append(d.live, "placement: changed (for the next placement: drain, HA restart)")
	}
	if old.HA != new.HA {
		d.live = append(d.live, fmt.Sprintf("ha: %s -> %s", orOff(old.HA), orOff(new.HA)))
	}

	for i, od := range old.Disks {
		if i >= len(new.Disks) {
			d.refused = append(d.refused, fmt.Sprintf("disks: removing disk %s would delete its data; apply does not remove disks", od.Name))
			continue
		}
		nd := new.Disks[i]
		current := od.Size
		if i < len(disks) {
			current = disks[i].Size
		}
		switch {
		case nd.Name != od.Name:
			d.refused = append(d.refused, fmt.Sprintf("disks[%d]: is %s, the new spec has %s there (disks keep their order; add new disks at the end)", i, od.Name, nd.Name))
		case nd.Image != od.Image:
			d.refused = append(d.refused, fmt.Sprintf("disks[%d].image: a disk's image cannot change (%s -> %s)", i, od.Image, nd.Image))
		case nd.Volume != od.Volume:
			d.refused = append(d.refused, fmt.Sprintf("disks[%d].volume: a disk's volume cannot change (%s -> %s); use godwit vm disk attach/detach", i, od.Volume, nd.Volume))
		case nd.Clone != od.Clone:
			d.refused = append(d.refused, fmt.Sprintf("disks[%d].clone: how a disk was made cannot change", i))
		case nd.Size != 0 && nd.Size < current:
			d.refused = append(d.refused, fmt.Sprintf("disks[%d].size: shrinking %s from %s to %s would lose data; disks only grow", i, od.Name, current, nd.Size))
		case nd.Size != 0 && nd.Size > current:
			d.offline = append(d.offline, fmt.Sprintf("disks[%d].size: %s -> %s", i, current, nd.Size))
			d.growDisks[nd.Name] = nd.Size
		}
	}
	for i := len(old.Disks); i < len(new.Disks); i++ {
		d.offline = append(d.offline, fmt.Sprintf("disks[%d]: add %s", i, new.Disks[i].Name))
		d.newDisks = append(d.newDisks, new.Disks[i])
	}
	return d
}

func orOff(ha string) string {
	if ha == "" {
		return api.HAOff
	}
	return ha
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	Start bool // when apply creates the VM
}

// Apply makes a VM match spec: it creates the VM when it does not exist,
// applies what the VM's state allows, and refuses (409, with the reasons)
// changes that need the VM stopped while it runs.
func (s *Service) Apply(ctx context.Context, spec api.VMSpec, opts ApplyOptions) (api.Operation, error) {
	Normalize(&spec)
	if err := ValidateStatic(spec); err != nil {
		return api.Operation{}, err
	}
	if _, err := s.getRecord(ctx, spec.Name); api.Status(err) == 404 {
		return s.Create(ctx, spec, CreateOptions{Start: opts.Start})
	}
	unlock, err := s.lock(ctx, spec.Name, "vm.apply")
	if err != nil {
		return api.Operation{}, err
	}
	plan, err := s.planApply(ctx, spec)
	if err != nil {
		unlock()
		return api.Operation{}, err
	}
	op := s.ops.Start("vm.apply", target(spec.Name), func(ctx context.Context, o *ops.Op) error {
		defer unlock()
		defer plan.release()
		return s.apply(ctx, o, plan)
	})
	s.relabel(spec.Name, "vm.apply", "operation "+op.ID+" (vm.apply)")
	return op, nil
}

type applyPlan struct {
	rec      record
	spec     api.VMSpec
	diff     diff
	active   bool
	newDisks []resolvedDisk
	boot     plannedBoot
	virtType string
	nics     []nicRecord  // the NICs after apply, when they change
	release  func()       // lets go of the NICs' networks
	live     []liveChange // made to the running VM (tuning)
}

// newDisksPlanned are the disks apply adds, before they are resolved (new
// disks are blank or images: they go to the VM pool; volumes name theirs).
func (p applyPlan) newDisksPlanned() []resolvedDisk {
	var out []resolvedDisk
	for _, d := range p.diff.newDisks {
		r := resolvedDisk{Disk: d}
		if d.Volume != "" {
			r.Pool, _, _ = strings.Cut(d.Volume, "/")
		}
		out = append(out, r)
	}
	return out
}

func (s *Service) planApply(ctx context.Context, spec api.VMSpec) (applyPlan, error) {
	rec, err := s.managed(ctx, spec.Name)
	if err != nil {
		return applyPlan{}, err
	}
	if rec.Adopted {
		// Apply rewrites the definition from the spec, which would drop
		// what the spec does not express of the domain.
		return applyPlan{}, api.Conflict("vm %s is adopted: godwit does not rewrite its definition from a spec; change it with virsh edit (then release and adopt it again to refresh its spec), or attach disks and NICs with godwit", spec.Name)
	}
	d, err := s.hv.Lookup(ctx, spec.Name)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return applyPlan{}, api.Conflict("vm %s has no libvirt domain (undefined outside godwit?); delete the VM and create it again", spec.Name)
	}
	if err != nil {
		return applyPlan{}, mapHypervisorError(err)
	}
	p := applyPlan{rec: rec, spec: spec, diff: compare(rec.Spec, spec, rec.Disks), active: d.State.Active(), release: func() {}}
	nicChanges := compareNICs(rec.NICs, spec.NICs)
	p.diff.offline = append(p.diff.offline, nicChanges...)
	if len(p.diff.refused) > 0 {
		return p, api.Conflict("vm %s: %s", spec.Name, strings.Join(p.diff.refused, "; "))
	}
	pools := s.diskPools(p.newDisksPlanned())
	for _, d := range rec.Disks {
		pools[d.Name] = d.Pool
	}
	if err := s.haDisks(ctx, spec, pools); err != nil {
		return p, err
	}
	host, err := s.hv.HostInfo(ctx)
	if err != nil {
		return p, mapHypervisorError(err)
	}
	td := s.compareTuning(spec.Name, rec.Spec, spec, rec.Disks, host.CPUs)
	p.diff.offline = append(p.diff.offline, td.offline...)
	if p.active {
		p.live = td.live
	} else {
		for _, c := range td.live {
			p.diff.offline = append(p.diff.offline, c.what) // the redefine makes them
		}
	}
	if p.active && len(p.diff.offline) > 0 {
		var could []string
		for _, c := range p.live {
			could = append(could, c.what)
		}
		msg := fmt.Sprintf("vm %s is %s; these changes need it stopped, as they wait for a restart (godwit vm stop %s, then apply again): %s",
			spec.Name, stateOf(d), spec.Name, strings.Join(p.diff.offline, "; "))
		if len(could) > 0 {
			msg += "; these would be made live: " + strings.Join(could, "; ")
		}
		return p, api.Conflict("%s", msg)
	}
	if len(p.live) > 0 {
		if err := s.hostTuning(spec, host, false); err != nil {
			return p, err
		}
	}
	if len(p.diff.offline) > 0 {
		if err := hostLimits(spec, host); err != nil {
			return p, err
		}
		if err := s.hostTuning(spec, host, true); err != nil {
			return p, err
		}
		if p.newDisks, err = s.resolveDisks(ctx, spec.Name, p.diff.newDisks); err != nil {
			return p, err
		}
		if err := reachDisks(p.newDisks, host.QEMU); err != nil {
			return p, err
		}
		if p.boot, err = s.planBoot(ctx, spec.Boot, host.QEMU); err != nil {
			return p, err
		}
		if p.virtType, err = s.cfg.VirtType(ctx); err != nil {
			return p, mapHypervisorError(err)
		}
		if len(nicChanges) > 0 {
			nics, release, err := s.planNICs(ctx, spec.Name, spec.NICs, rec.NICs, func(i int) string { return fmt.Sprintf("nics[%d]", i) })
			if err != nil {
				return p, err
			}
			p.nics, p.release = nics, release
			if p.nics == nil {
				p.nics = []nicRecord{}
			}
		}
	}
	return p, nil
}

func (s *Service) apply(ctx context.Context, o *ops.Op, p applyPlan) error {
	result := api.ApplyResult{Changes: p.diff.changes()}
	for _, c := range p.live {
		result.Changes = append(result.Changes, c.what)
		result.Live = append(result.Live, c.what)
	}
	if len(result.Changes) == 0 {
		o.Progress("nothing to change", 0, 0, "")
		vm, err := s.Get(ctx, p.spec.Name)
		result.VM = vm
		o.SetResult(result)
		return err
	}
	r := revert.New()
	defer r.Fail()
	undo := context.Background()
	rec := p.rec
	rec.Spec = p.spec

	if len(p.diff.offline) > 0 {
		oldXML, err := s.hv.XML(ctx, rec.Name, true)
		if err != nil {
			return opError("read definition of", rec.Name, err)
		}
		if err := growsOverlaid(rec, oldXML, p.diff.growDisks); err != nil {
			return err
		}
		for _, nd := range p.newDisks {
			o.Progress("creating disk "+nd.Name, 0, 0, "")
			vd := s.plannedDisk(rec.Name, freeTarget(rec.Disks), nd)
			if err := s.makeDisk(ctx, r, &vd, nd); err != nil {
				return opError("create disk "+nd.Name+" of", rec.Name, err)
			}
			rec.Disks = append(rec.Disks, vd)
		}
		rec.Boot, rec.BootFiles = p.boot.boot, p.boot.files
		rec.Seed = ""
		if rec.Spec.CloudInit != nil {
			rec.Seed = s.seedPath(rec.Name)
			if !reflect.DeepEqual(p.rec.Spec.CloudInit, rec.Spec.CloudInit) {
				o.Progress("writing the cloud-init seed", 0, 0, "")
				if err := s.writeSeed(rec); err != nil {
					return err
				}
			}
		}
		for i, d := range rec.Disks {
			if size, ok := p.diff.growDisks[d.Name]; ok {
				o.Progress("growing disk "+d.Name, 0, 0, "")
				if err := s.hv.ResizeVolume(ctx, d.Pool, d.Volume, uint64(size)); err != nil {
					return opError("grow disk "+d.Name+" of", rec.Name, err)
				}
				rec.Disks[i].Size = size
			}
		}
		if p.nics != nil {
			rec.NICs = p.nics
		}
		rec.ConsoleLog = ""
		if ConsoleLogged(rec.Spec) {
			rec.ConsoleLog = s.consolePath(rec.Name)
		}
		xml, err := s.domainXML(rec, p.virtType)
		if err == nil {
			xml, err = keepOverlays(xml, oldXML)
		}
		if err != nil {
			return err
		}
		o.Progress("redefining domain", 0, 0, "")
		if _, err := s.hv.Define(ctx, xml); err != nil {
			return opError("redefine", rec.Name, err)
		}
		r.Add(func() { _, _ = s.hv.Define(undo, oldXML) })
	}
	for _, c := range p.live {
		o.Progress("live: "+c.what, 0, 0, "")
		if err := c.do(ctx); err != nil {
			return opError("change live ("+c.what+")", rec.Name, err)
		}
		r.Add(func() {
			if err := c.undo(undo); err != nil {
				s.log.Error("revert apply: undo a live change", "vm", rec.Name, "change", c.what, "err", err)
			}
		})
	}
	if p.rec.Spec.Autostart != p.spec.Autostart {
		if err := s.hv.SetAutostart(ctx, rec.Name, p.spec.Autostart); err != nil {
			return opError("set autostart of", rec.Name, err)
		}
		r.Add(func() { _ = s.hv.SetAutostart(undo, rec.Name, p.rec.Spec.Autostart) })
	}
	if err := s.putRecord(ctx, rec); err != nil {
		return err
	}
	r.Success()
	if p.rec.Seed != "" && rec.Seed == "" {
		s.removeSeed(rec.Name) // cloudInit was removed from the spec
	}
	vm, err := s.Get(ctx, rec.Name)
	result.VM = vm
	o.SetResult(result)
	o.Progress("applied", 0, 0, "")
	s.log.Info("vm spec applied", "vm", rec.Name, "changes", strings.Join(result.Changes, "; "))
	return err
}
