package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
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
	NICs          []api.MigrationNIC
	ConsoleLogged bool
	CreatedAt     time.Time
	// Boot is the boot the domain has (boot.image resolved).
	Boot *api.Boot
	// Seed is the path of the cloud-init seed ISO here ("" for none).
	Seed string
	// Run: the VM runs once moved.
	Run bool
	// Adopted and Kept: an adopted domain stays one where it goes.
	Adopted bool
	Kept    []string
}

// HoldForMove locks a managed VM for a migration and returns it with its
// domain. The caller releases the lock with the returned func.
func (s *Service) HoldForMove(ctx context.Context, name, holder string) (Moving, hypervisor.Domain, func(), error) {
	rec, unlock, err := s.lockManaged(ctx, name, holder)
	if err != nil {
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
	m := Moving{Name: rec.Name, UUID: rec.UUID, Spec: rec.Spec, Disks: rec.Disks, ConsoleLogged: rec.ConsoleLog != "",
		CreatedAt: rec.CreatedAt, Boot: rec.Boot, Seed: rec.Seed, Adopted: rec.Adopted, Kept: rec.Kept}
	for _, n := range rec.NICs {
		m.NICs = append(m.NICs, api.MigrationNIC{Network: n.Network, MAC: n.MAC, Model: n.Model, Libvirt: n.Libvirt})
	}
	return m, d, unlock, nil
}

// ReserveIncoming locks a name for a VM arriving from another host: no VM
// and no domain of that name may exist here.
func (s *Service) ReserveIncoming(ctx context.Context, name, holder string) (func(), error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	unlock, err := s.lockLocal(name, holder)
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

// Arrival is what this host readies for a VM moving in: its NICs on this
// host's networks (held until adopted or abandoned) and its seed ISO.
type Arrival struct {
	nics    []nicRecord
	release func()
	// Seed is the seed ISO rendered here ("" for none).
	Seed string
	// BootFiles are the kernel and initrd copied into this host's boot
	// store (nil when the VM boots from a disk).
	BootFiles *api.Boot
	// Libvirt maps each godwit network to its libvirt name here.
	Libvirt map[string]string
}

// CheckArrival lists why a VM could not arrive here: networks this host
// lacks, MACs another VM here has.
func (s *Service) CheckArrival(ctx context.Context, m Moving) []string {
	a, err := s.PrepareArrival(ctx, m, false)
	if err != nil {
		return []string{err.Error()}
	}
	s.AbandonArrival(a)
	return nil
}

// PrepareArrival holds the networks the VM's NICs plug into and checks
// their MACs are free here; with render, it writes the seed ISO and copies
// the boot files into this host's boot store too.
func (s *Service) PrepareArrival(ctx context.Context, m Moving, render bool) (*Arrival, error) {
	a := &Arrival{release: func() {}, Libvirt: map[string]string{}}
	if len(m.NICs) > 0 {
		if s.cfg.Networks == nil {
			return nil, api.Conflict("nics: this host runs without networks")
		}
		names := make([]string, len(m.NICs))
		for i, n := range m.NICs {
			names[i] = n.Network
		}
		refs, release, err := s.cfg.Networks.Pin(ctx, names, func(i int) string { return fmt.Sprintf("nics[%d].network", i) })
		if err != nil {
			return nil, err
		}
		a.release = release
		owners, err := s.macOwners(ctx, m.Name)
		if err != nil {
			release()
			return nil, err
		}
		for i, n := range m.NICs {
			if other, ok := owners[n.MAC]; ok {
				release()
				return nil, api.Conflict("nics[%d].mac: %s is the MAC of vm %s on this host", i, n.MAC, other)
			}
			a.nics = append(a.nics, nicRecord{Network: n.Network, MAC: n.MAC, Model: n.Model, Libvirt: refs[i].Libvirt, Type: refs[i].Type})
			a.Libvirt[n.Network] = refs[i].Libvirt
		}
	}
	if render && m.Seed != "" && m.Spec.CloudInit != nil {
		rec := record{Name: m.Name, UUID: m.UUID, Spec: m.Spec, Seed: s.seedPath(m.Name)}
		if err := s.writeSeed(rec); err != nil {
			a.release()
			return nil, fmt.Errorf("render the cloud-init seed here: %w", err)
		}
		a.Seed = rec.Seed
	}
	if render && m.Boot != nil && m.Boot.Kernel != "" {
		host, err := s.hv.HostInfo(ctx)
		if err == nil {
			a.BootFiles, err = s.copyBoot(ctx, m.Boot, host.QEMU)
		}
		if err != nil {
			s.AbandonArrival(a)
			return nil, fmt.Errorf("copy the boot files here: %w", err)
		}
	}
	return a, nil
}

// AbandonArrival undoes PrepareArrival.
func (s *Service) AbandonArrival(a *Arrival) {
	if a == nil {
		return
	}
	a.release()
	if a.Seed != "" {
		_ = os.Remove(a.Seed)
	}
}

// AdoptMoved records a VM whose domain now runs (or is defined) here.
func (s *Service) AdoptMoved(ctx context.Context, m Moving, a *Arrival) error {
	rec := record{Name: m.Name, UUID: m.UUID, Spec: m.Spec, Status: statusReady, Disks: m.Disks, CreatedAt: m.CreatedAt, Boot: m.Boot,
		Adopted: m.Adopted, Kept: m.Kept, Run: m.Run}
	if m.Adopted {
		// Its disks stay the VM's own, and its spec names them where
		// they are now.
		rec.Spec.Disks = slices.Clone(m.Spec.Disks)
		for i := range rec.Disks {
			rec.Disks[i].External = true
			for j := range rec.Spec.Disks {
				if rec.Spec.Disks[j].Name == rec.Disks[i].Name && rec.Disks[i].Pool != "" {
					rec.Spec.Disks[j].Volume = rec.Disks[i].Pool + "/" + rec.Disks[i].Volume
				}
			}
		}
	}
	if m.ConsoleLogged {
		rec.ConsoleLog = s.consolePath(m.Name)
	}
	if a != nil {
		rec.NICs, rec.Seed, rec.BootFiles = a.nics, a.Seed, a.BootFiles
		defer a.release()
	}
	return s.putRecord(ctx, rec)
}

// ForgetMoved drops a VM that now lives on another host: its record,
// console logs and seed (its domain and disks are the caller's business).
func (s *Service) ForgetMoved(ctx context.Context, name string) error {
	s.removeConsoleLogs(name)
	s.removeSeed(name)
	if err := s.store.Delete(ctx, bucket, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.released(ctx)
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
