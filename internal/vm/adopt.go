package vm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/domainxml"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/network"
)

// Adopt takes a libvirt domain godwit did not define under management.
// Its spec is derived from its persistent definition, which adopting
// does not change (nor does it stop or start the domain): from then on
// godwit starts, stops, snapshots, backs up and migrates it, but never
// rewrites its definition from the spec, so what the spec cannot express
// stays as it is (VM.Kept lists it). Its disks must be volumes of
// libvirt pools; they stay the VM's own (deleting the VM leaves them).
// With dryRun nothing is recorded.
func (s *Service) Adopt(ctx context.Context, name string, dryRun bool) (api.AdoptResult, error) {
	if err := ValidateName(name); err != nil {
		return api.AdoptResult{}, api.BadRequest("%v (godwit cannot adopt a domain of that name: rename it with virsh domrename)", err)
	}
	unlock, err := s.lock(ctx, name, "vm.adopt")
	if err != nil {
		return api.AdoptResult{}, err
	}
	defer unlock()
	if _, err := s.getRecord(ctx, name); err == nil {
		return api.AdoptResult{}, api.Conflict("vm %s is managed by godwit already", name)
	} else if api.Status(err) != 404 {
		return api.AdoptResult{}, err
	}
	rec, err := s.derive(ctx, name)
	if err != nil {
		return api.AdoptResult{}, err
	}
	d, err := s.hv.Lookup(ctx, name)
	if err != nil {
		return api.AdoptResult{}, mapHypervisorError(err)
	}
	if !dryRun {
		if err := s.putRecord(ctx, rec); err != nil {
			return api.AdoptResult{}, err
		}
		s.log.Info("vm adopted", "vm", name, "disks", len(rec.Disks), "nics", len(rec.NICs), "kept", len(rec.Kept), "state", stateOf(d))
	}
	return api.AdoptResult{DryRun: dryRun, VM: s.view(rec, d, true)}, nil
}

// derive reads a domain as the record adopting it would write.
func (s *Service) derive(ctx context.Context, name string) (record, error) {
	d, err := s.hv.Lookup(ctx, name)
	if err != nil {
		return record{}, mapHypervisorError(err)
	}
	if !d.Persistent {
		return record{}, api.Conflict("domain %s is transient (it goes when it stops): define it first (virsh dumpxml %s > %s.xml; virsh define %s.xml)", name, name, name, name)
	}
	x, err := s.hv.XML(ctx, name, true)
	if err != nil {
		return record{}, mapHypervisorError(err)
	}
	if owner := domainxml.OwnerOf(x); owner != "" && owner != s.cfg.Owner {
		return record{}, api.Conflict("domain %s belongs to another godwit daemon (%s)", name, owner)
	}
	der, err := domainxml.Derive(x)
	if err != nil {
		return record{}, api.Conflict("domain %s: %v", name, err)
	}
	rec := record{Name: name, UUID: d.UUID, Status: statusReady, CreatedAt: time.Now().UTC(), Adopted: true,
		ConsoleLog: der.ConsoleLog, Boot: der.Boot}
	spec := api.VMSpec{Name: name, CPUs: der.CPUs, Memory: der.Memory, Boot: der.Boot, Autostart: d.Autostart, Graphics: der.Graphics}
	if der.ConsoleLog == "" {
		off := false
		spec.Console = &api.Console{Log: &off}
	}
	vols, err := s.volumesByPath(ctx)
	if err != nil {
		return record{}, err
	}
	for _, dd := range der.Disks {
		v, ok := vols[dd.Path]
		if !ok {
			return record{}, api.Conflict("disk %s of domain %s (%s) is in no libvirt storage pool: godwit manages disks as volumes; "+
				"define a pool on its directory first (virsh pool-define-as NAME dir --target DIR; virsh pool-start NAME)", dd.Target, name, dd.Path)
		}
		rec.Disks = append(rec.Disks, api.VMDisk{Name: dd.Name, Target: dd.Target, Pool: v.pool, Volume: v.info.Name, Path: dd.Path,
			Size: api.Size(v.info.Capacity), Format: dd.Format, Backing: v.info.Backing, External: true})
		spec.Disks = append(spec.Disks, api.Disk{Name: dd.Name, Volume: v.pool + "/" + v.info.Name})
	}
	kept := der.Kept
	for _, n := range der.NICs {
		ref, err := s.godwitNetwork(ctx, n)
		if err != nil {
			return record{}, err
		}
		if ref == nil {
			// Not on a network of godwit's: the spec cannot name it, so
			// the domain keeps it as it is.
			kept = append(kept, foreignNIC(n))
			continue
		}
		rec.NICs = append(rec.NICs, nicRecord{Network: ref.Name, MAC: n.MAC, Model: n.Model, Libvirt: ref.Libvirt, Type: ref.Type})
		spec.NICs = append(spec.NICs, api.NIC{Network: ref.Name, MAC: n.MAC, Model: n.Model})
	}
	rec.Spec, rec.Kept = spec, kept
	return rec, nil
}

// foreignNIC says what of a NIC on a network godwit does not manage is kept.
func foreignNIC(n domainxml.DerivedNIC) string {
	src := fmt.Sprintf(`<source network="%s"/>`, n.Network)
	kind := "network"
	if n.Bridge != "" {
		src, kind = fmt.Sprintf(`<source bridge="%s"/>`, n.Bridge), "bridge"
	}
	return fmt.Sprintf(`<interface type="%s"><mac address="%s"/>%s<model type="%s"/></interface>`, kind, n.MAC, src, n.Model)
}

// godwitNetwork is the godwit network a NIC plugs into; nil for none.
func (s *Service) godwitNetwork(ctx context.Context, n domainxml.DerivedNIC) (*network.Ref, error) {
	if n.Network == "" || s.cfg.Networks == nil {
		return nil, nil
	}
	ref, err := s.cfg.Networks.ByLibvirt(ctx, n.Network)
	if api.Status(err) == 404 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &ref, nil
}

type poolVolume struct {
	pool string
	info hypervisor.VolumeInfo
}

// volumesByPath maps the path of every volume of every active pool.
func (s *Service) volumesByPath(ctx context.Context) (map[string]poolVolume, error) {
	pools, err := s.hv.ListPools(ctx)
	if err != nil {
		return nil, mapHypervisorError(err)
	}
	out := map[string]poolVolume{}
	for _, p := range pools {
		if !p.Active {
			continue
		}
		vols, err := s.hv.ListVolumes(ctx, p.Name)
		if err != nil {
			if errors.Is(err, hypervisor.ErrNotFound) {
				continue
			}
			return nil, mapHypervisorError(err)
		}
		for _, v := range vols {
			out[v.Path] = poolVolume{pool: p.Name, info: v}
		}
	}
	return out, nil
}

// Release hands an adopted VM back to plain libvirt: godwit forgets it
// and leaves the domain, running or not, and its disks as they are.
func (s *Service) Release(ctx context.Context, name string) (api.VM, error) {
	rec, unlock, err := s.lockManaged(ctx, name, "vm.release")
	if err != nil {
		return api.VM{}, err
	}
	defer unlock()
	if !rec.Adopted {
		return api.VM{}, api.Conflict("vm %s was created by godwit, not adopted: delete it (--keep-disks keeps its volumes) instead", name)
	}
	if err := s.store.Delete(ctx, bucket, name); err != nil {
		return api.VM{}, err
	}
	s.log.Info("vm released to libvirt", "vm", name)
	d, err := s.hv.Lookup(ctx, name)
	if err != nil {
		return api.VM{Name: name, UUID: rec.UUID, State: api.VMMissing, Host: s.cfg.Host}, nil
	}
	return s.unmanaged(d), nil
}

// adoptedDomain reports whether the domain of an adopted record is still
// the one adopted (by UUID): godwit never writes its owner into it.
func adoptedDomain(rec record, d hypervisor.Domain) bool {
	return rec.Adopted && rec.UUID != "" && strings.EqualFold(rec.UUID, d.UUID)
}
