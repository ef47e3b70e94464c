package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/cloudinit"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/image"
	"github.com/godwit-project/godwit/internal/revert"
	"github.com/godwit-project/godwit/internal/storage"
	"github.com/godwit-project/godwit/internal/store"
)

// plannedDisk is the record of a disk about to be made (Path comes later
// for disks godwit creates).
func (s *Service) plannedDisk(vm, target string, d resolvedDisk) api.VMDisk {
	if d.Volume != "" {
		return api.VMDisk{Name: d.Name, Target: target, Pool: d.Pool, Volume: d.VolumeName, Path: d.Path,
			Size: api.Size(d.Capacity), Format: d.Format, External: true}
	}
	vd := api.VMDisk{Name: d.Name, Target: target, Pool: s.cfg.Pool, Volume: volumeName(vm, d.Name),
		Size: api.Size(d.Capacity), Format: "qcow2"}
	if d.Clone != "full" {
		vd.Backing, vd.Image = d.BackingPath, d.ImageName
	}
	return vd
}

// makeDisk creates a disk's volume (nothing for an existing volume) and
// registers its undo with r.
func (s *Service) makeDisk(ctx context.Context, r *revert.Reverter, vd *api.VMDisk, d resolvedDisk) error {
	if vd.External {
		return nil
	}
	undo := context.Background()
	vol := hypervisor.Volume{Name: vd.Volume, Capacity: d.Capacity, Format: "qcow2"}
	if d.BackingPath != "" && d.Clone != "full" {
		vol.BackingPath, vol.BackingFormat = d.BackingPath, d.BackingFormat
	}
	info, err := s.hv.CreateVolume(ctx, vd.Pool, vol)
	if err != nil {
		return err
	}
	pool, name := vd.Pool, vd.Volume
	r.Add(func() {
		if err := s.hv.DeleteVolume(undo, pool, name); err != nil && !errors.Is(err, hypervisor.ErrNotFound) {
			s.log.Error("revert: delete volume", "pool", pool, "volume", name, "err", err)
		}
	})
	vd.Path = info.Path
	if d.Clone == "full" {
		// An independent copy: the image's data written into the new
		// volume, which has no backing file.
		if err := image.CopyToVolume(ctx, d.BackingPath, d.BackingFormat, info.Path, "qcow2"); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) seedPath(vm string) string { return filepath.Join(s.cfg.SeedDir, vm+".iso") }

// writeSeed renders the VM's cloud-init seed ISO.
func (s *Service) writeSeed(rec record) error {
	files, err := cloudinit.Render(*rec.Spec.CloudInit, rec.Name, rec.UUID)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.SeedDir, 0o711); err != nil {
		return err
	}
	return cloudinit.WriteISO(rec.Seed, files)
}

func (s *Service) removeSeed(vm string) {
	if s.cfg.SeedDir == "" {
		return
	}
	if err := os.Remove(s.seedPath(vm)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove cloud-init seed", "vm", vm, "err", err)
	}
}

// VolumeUsers returns the VMs that have the volume as a disk.
func (s *Service) VolumeUsers(ctx context.Context, pool, volume string) ([]string, error) {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		for _, d := range r.Disks {
			if d.Pool == pool && d.Volume == volume {
				out = append(out, r.Name)
				break
			}
		}
	}
	return out, nil
}

// ImageUsers returns the VMs with a disk on a catalog image (overlays need
// it) or booting its kernel.
func (s *Service) ImageUsers(ctx context.Context, name string) ([]string, error) {
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		uses := r.Spec.Boot != nil && r.Spec.Boot.Image == name
		for _, d := range r.Disks {
			if d.Image == name {
				uses = true
			}
		}
		if uses {
			out = append(out, r.Name)
		}
	}
	return out, nil
}

// ResizeDisk grows a VM's disk: online (the guest sees the new size at
// once) when the VM runs, else the volume. The record follows.
func (s *Service) ResizeDisk(ctx context.Context, vm, pool, volume string, size uint64) error {
	rec, unlock, err := s.lockManaged(ctx, vm, "vm.disk.resize")
	if err != nil {
		return err
	}
	defer unlock()
	i := slices.IndexFunc(rec.Disks, func(d api.VMDisk) bool { return d.Pool == pool && d.Volume == volume })
	if i < 0 {
		return api.NotFound("vm %s has no disk on volume %s/%s", vm, pool, volume)
	}
	if size < uint64(rec.Disks[i].Size) {
		return api.BadRequest("size: shrinking disk %s of vm %s would lose data; disks only grow", rec.Disks[i].Name, vm)
	}
	d, err := s.hv.Lookup(ctx, vm)
	if err != nil {
		return mapHypervisorError(err)
	}
	if d.State.Active() {
		if err := s.hv.BlockResize(ctx, vm, rec.Disks[i].Target, size); err != nil {
			return opError("grow disk "+rec.Disks[i].Name+" of", vm, err)
		}
	} else if err := s.hv.ResizeVolume(ctx, pool, volume, size); err != nil {
		return opError("grow disk "+rec.Disks[i].Name+" of", vm, err)
	}
	rec.Disks[i].Size = api.Size(size)
	s.log.Info("disk grown", "vm", vm, "disk", rec.Disks[i].Name, "size", api.Size(size), "online", d.State.Active())
	return s.putRecord(ctx, rec)
}

var diskNameBad = regexp.MustCompile(`[^a-z0-9_-]+`)

// diskNameFor makes a disk name from a volume name: vm-data.qcow2 -> vm-data.
func diskNameFor(volume string) string {
	n := strings.ToLower(strings.TrimSuffix(volume, filepath.Ext(volume)))
	n = strings.Trim(diskNameBad.ReplaceAllString(n, "-"), "-_")
	if len(n) > 32 {
		n = n[:32]
	}
	if n == "" {
		n = "disk"
	}
	return n
}

// AttachDisk attaches an existing volume to a VM: hot-plugged into a
// running guest (it sees a new /dev/vdX) and kept in the definition, or
// only the definition of a stopped VM. A volume is a disk of one VM at a
// time.
func (s *Service) AttachDisk(ctx context.Context, vm string, req api.DiskAttach) (api.VM, error) {
	pool, vol, err := storage.SplitVolume("volume", req.Volume)
	if err != nil {
		return api.VM{}, err
	}
	rec, unlock, err := s.lockManaged(ctx, vm, "vm.disk.attach")
	if err != nil {
		return api.VM{}, err
	}
	defer unlock()
	dom, err := s.hv.Lookup(ctx, vm)
	if errors.Is(err, hypervisor.ErrNotFound) {
		return api.VM{}, api.Conflict("vm %s has no libvirt domain (undefined outside godwit?)", vm)
	} else if err != nil {
		return api.VM{}, mapHypervisorError(err)
	}
	name := req.Name
	if name == "" {
		name = diskNameFor(vol)
	}
	if !diskNameRE.MatchString(name) {
		return api.VM{}, api.BadRequest("name: %q must be 1-32 lowercase letters, digits, '_' or '-'", name)
	}
	for _, d := range rec.Disks {
		if d.Pool == pool && d.Volume == vol {
			return api.VM{}, api.Conflict("volume %s is already attached to vm %s as disk %s", req.Volume, vm, d.Name)
		}
		if d.Name == name {
			return api.VM{}, api.Conflict("vm %s already has a disk named %s (pick another with --name)", vm, name)
		}
	}
	if len(rec.Disks) >= MaxDisks {
		return api.VM{}, api.Conflict("vm %s has %d disks, the most a VM can have", vm, len(rec.Disks))
	}
	resolved, err := s.resolveDisks(ctx, vm, []api.Disk{{Name: name, Volume: req.Volume}})
	if err != nil {
		return api.VM{}, err
	}
	host, err := s.hv.HostInfo(ctx)
	if err != nil {
		return api.VM{}, mapHypervisorError(err)
	}
	if err := reachDisks(resolved, host.QEMU); err != nil {
		return api.VM{}, err
	}
	vd := s.plannedDisk(vm, freeTarget(rec.Disks), resolved[0])
	xml, err := domainxml.DiskXML(domainDisk(vd))
	if err != nil {
		return api.VM{}, err
	}
	live := dom.State.Active()
	if err := s.hv.AttachDevice(ctx, vm, xml, live); err != nil {
		return api.VM{}, opError("attach "+req.Volume+" to", vm, err)
	}
	rec.Disks = append(rec.Disks, vd)
	rec.Spec.Disks = append(rec.Spec.Disks, api.Disk{Name: name, Volume: req.Volume})
	if err := s.putRecord(ctx, rec); err != nil {
		_ = s.hv.DetachDevice(context.Background(), vm, xml, live)
		return api.VM{}, err
	}
	s.log.Info("disk attached", "vm", vm, "volume", req.Volume, "target", vd.Target, "live", live)
	return s.Get(ctx, vm)
}

// DetachDisk detaches an attached volume (by disk name, or POOL/VOLUME)
// from a VM, live from a running guest. The volume stays.
func (s *Service) DetachDisk(ctx context.Context, vm, disk string) (api.VM, error) {
	rec, unlock, err := s.lockManaged(ctx, vm, "vm.disk.detach")
	if err != nil {
		return api.VM{}, err
	}
	defer unlock()
	i := slices.IndexFunc(rec.Disks, func(d api.VMDisk) bool { return d.Name == disk || d.Pool+"/"+d.Volume == disk })
	if i < 0 {
		return api.VM{}, api.NotFound("vm %s has no disk %s", vm, disk)
	}
	vd := rec.Disks[i]
	if !vd.External {
		return api.VM{}, api.Conflict("disk %s of vm %s was made with the VM; only attached volumes detach (deleting the VM with --keep-disks keeps it)", vd.Name, vm)
	}
	dom, err := s.hv.Lookup(ctx, vm)
	if err != nil {
		return api.VM{}, mapHypervisorError(err)
	}
	xml, err := domainxml.DiskXML(domainDisk(vd))
	if err != nil {
		return api.VM{}, err
	}
	live := dom.State.Active()
	if err := s.hv.DetachDevice(ctx, vm, xml, live); err != nil {
		return api.VM{}, opError("detach "+vd.Name+" from", vm, err)
	}
	if live {
		// The guest must let go of the device (ACPI eject); libvirt may
		// return before it did.
		if err := s.waitDetached(ctx, vm, vd.Target); err != nil {
			return api.VM{}, err
		}
	}
	rec.Disks = slices.Delete(rec.Disks, i, i+1)
	if j := slices.IndexFunc(rec.Spec.Disks, func(d api.Disk) bool { return d.Name == vd.Name }); j >= 0 {
		rec.Spec.Disks = slices.Delete(rec.Spec.Disks, j, j+1)
	}
	if err := s.putRecord(ctx, rec); err != nil {
		return api.VM{}, err
	}
	s.log.Info("disk detached", "vm", vm, "disk", vd.Name, "live", live)
	return s.Get(ctx, vm)
}

func (s *Service) waitDetached(ctx context.Context, vm, target string) error {
	deadline := time.Now().Add(detachWait) // shared with NICs (nics.go)
	for {
		xml, err := s.hv.XML(ctx, vm, false)
		if err != nil {
			return mapHypervisorError(err)
		}
		if !strings.Contains(xml, "dev='"+target+"'") && !strings.Contains(xml, `dev="`+target+`"`) {
			return nil
		}
		if time.Now().After(deadline) {
			return api.StatusErrorf(504, "vm %s: the guest did not release disk %s within %s (does it handle PCI hot-unplug?); it is detached from the definition and goes at the next stop", vm, target, detachWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
