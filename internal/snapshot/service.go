// Package snapshot owns VM snapshots: internal qcow2 snapshots (with the
// guest's memory when it runs, so a revert resumes it) and external
// disk-only ones (qcow2 overlays next to the VM's volumes), listed as a
// tree, reverted to and deleted through libvirt.
//
// It does not define domains or manage volumes (internal/vm does) and keeps
// no state of its own: libvirt's snapshot metadata is the truth.
package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/vm"
)

// Hypervisor is what snapshots need of libvirt.
type Hypervisor interface {
	hypervisor.Domains
	hypervisor.Snapshots
}

// Service takes and manages snapshots.
type Service struct {
	hv  Hypervisor
	vms *vm.Service
	ops *ops.Manager
	log *slog.Logger
}

// New returns a Service.
func New(hv Hypervisor, vms *vm.Service, om *ops.Manager, log *slog.Logger) *Service {
	return &Service{hv: hv, vms: vms, ops: om, log: log}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateName checks a snapshot name: it is part of overlay file names.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return api.BadRequest("name: %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func target(vmName string) string { return "vm/" + vmName }

// Create takes a snapshot in an operation.
func (s *Service) Create(ctx context.Context, vmName string, req api.SnapshotRequest) (api.Operation, error) {
	if err := ValidateName(req.Name); err != nil {
		return api.Operation{}, err
	}
	switch {
	case req.Memory && req.DiskOnly:
		return api.Operation{}, api.BadRequest("memory, diskOnly: a snapshot with memory is not disk-only; pick one")
	case req.Quiesce && !req.DiskOnly:
		return api.Operation{}, api.BadRequest("quiesce: only disk-only snapshots quiesce (libvirt freezes the guest's filesystems through its agent)")
	}
	v, release, err := s.vms.HoldSettled(ctx, vmName, "snapshot.create", "snapshot")
	if err != nil {
		return api.Operation{}, err
	}
	fail := func(err error) (api.Operation, error) { release(); return api.Operation{}, err }
	running := v.State == api.VMRunning || v.State == api.VMPaused
	if req.Memory && !running {
		return fail(api.Conflict("vm %s is stopped: it has no memory to keep (drop --memory)", vmName))
	}
	if req.Quiesce && !running {
		return fail(api.Conflict("vm %s is stopped: there is nothing to quiesce (drop --quiesce)", vmName))
	}
	snaps, err := s.hv.Snapshots(ctx, vmName)
	if err != nil {
		return fail(hypervisor.APIErrorf("list snapshots of vm "+vmName, err))
	}
	for _, sn := range snaps {
		if sn.Name == req.Name {
			return fail(api.Conflict("vm %s has a snapshot %s already", vmName, req.Name))
		}
	}
	x := libvirtxml.DomainSnapshot{Name: req.Name, Description: req.Description}
	if req.DiskOnly {
		x.Memory = &libvirtxml.DomainSnapshotMemory{Snapshot: "no"}
		x.Disks = &libvirtxml.DomainSnapshotDisks{}
		live, err := s.diskSources(ctx, vmName)
		if err != nil {
			return fail(err)
		}
		for _, d := range v.Disks {
			cur := live[d.Target]
			if cur == "" {
				cur = d.Path
			}
			file := overlayPath(d.Path, req.Name)
			if _, err := os.Stat(file); err == nil {
				return fail(api.Conflict("%s exists already (left by an earlier snapshot?); pick another snapshot name", file))
			}
			x.Disks.Disks = append(x.Disks.Disks, libvirtxml.DomainSnapshotDisk{
				Name: d.Target, Snapshot: "external",
				Driver: &libvirtxml.DomainDiskDriver{Type: "qcow2"},
				Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: file}},
			})
		}
	}
	doc, err := x.Marshal()
	if err != nil {
		return fail(err)
	}
	op := s.ops.Start("snapshot.create", target(vmName), func(ctx context.Context, o *ops.Op) error {
		defer release()
		o.Progress("taking snapshot "+req.Name, 0, 0, "")
		if err := s.hv.CreateSnapshot(ctx, vmName, doc, req.DiskOnly, req.Quiesce); err != nil {
			return hypervisor.APIErrorf("snapshot vm "+vmName, err)
		}
		sn, err := s.Get(ctx, vmName, req.Name)
		if err != nil {
			return err
		}
		o.SetResult(sn)
		s.log.Info("snapshot taken", "vm", vmName, "snapshot", req.Name, "kind", sn.Kind, "memory", sn.Memory)
		return nil
	})
	s.vms.Relabel(vmName, "snapshot.create", "operation "+op.ID+" (snapshot.create)")
	return op, nil
}

// overlayPath names an external snapshot's overlay: next to the volume,
// "web1-root.qcow2" -> "web1-root.SNAP.qcow2".
func overlayPath(volume, snap string) string {
	return strings.TrimSuffix(volume, ".qcow2") + "." + snap + ".qcow2"
}

// diskSources returns the file each disk target uses now (an external
// snapshot's overlay, after one).
func (s *Service) diskSources(ctx context.Context, vmName string) (map[string]string, error) {
	doc, err := s.hv.XML(ctx, vmName, false)
	if err != nil {
		return nil, hypervisor.APIErrorf("get XML of vm "+vmName, err)
	}
	return vm.DiskFiles(doc)
}

// List returns a VM's snapshots, oldest first.
func (s *Service) List(ctx context.Context, vmName string) ([]api.Snapshot, error) {
	if _, err := s.vms.Get(ctx, vmName); err != nil {
		return nil, err
	}
	snaps, err := s.hv.Snapshots(ctx, vmName)
	if err != nil {
		return nil, hypervisor.APIErrorf("list snapshots of vm "+vmName, err)
	}
	var memSizes map[string]int64
	out := make([]api.Snapshot, 0, len(snaps))
	children := map[string][]string{}
	for _, sn := range snaps {
		if sn.Parent != "" {
			children[sn.Parent] = append(children[sn.Parent], sn.Name)
		}
	}
	for _, sn := range snaps {
		a := api.Snapshot{
			Name: sn.Name, VM: vmName, Parent: sn.Parent, Children: children[sn.Name], Description: sn.Description,
			CreatedAt: time.Unix(sn.Created, 0).UTC(), VMState: sn.State, Kind: "internal", Memory: sn.Memory,
			Current: sn.Current, Files: sn.Files,
		}
		if sn.External {
			a.Kind = "external"
			for _, f := range sn.Files {
				var st syscall.Stat_t
				if syscall.Stat(f, &st) == nil {
					a.Size += api.Size(st.Blocks * 512)
				}
			}
		} else if sn.Memory {
			if memSizes == nil {
				memSizes = s.internalSizes(ctx, vmName)
			}
			a.Size = api.Size(memSizes[sn.Name])
		}
		out = append(out, a)
	}
	return out, nil
}

// internalSizes reads the memory state size of every internal snapshot
// from the disks' qcow2 files (qemu-img info -U: the VM may run).
func (s *Service) internalSizes(ctx context.Context, vmName string) map[string]int64 {
	out := map[string]int64{}
	live, err := s.diskSources(ctx, vmName)
	if err != nil {
		return out
	}
	for _, path := range live {
		b, err := exec.CommandContext(ctx, "qemu-img", "info", "-U", "--backing-chain", "--output=json", path).Output()
		if err != nil {
			continue
		}
		var infos []struct {
			Snapshots []struct {
				Name    string `json:"name"`
				VMState int64  `json:"vm-state-size"`
			} `json:"snapshots"`
		}
		if json.Unmarshal(b, &infos) != nil {
			continue
		}
		for _, in := range infos {
			for _, sn := range in.Snapshots {
				if sn.VMState > out[sn.Name] {
					out[sn.Name] = sn.VMState
				}
			}
		}
	}
	return out
}

// Get returns one snapshot.
func (s *Service) Get(ctx context.Context, vmName, name string) (api.Snapshot, error) {
	list, err := s.List(ctx, vmName)
	if err != nil {
		return api.Snapshot{}, err
	}
	for _, sn := range list {
		if sn.Name == name {
			return sn, nil
		}
	}
	return api.Snapshot{}, api.NotFound("vm %s has no snapshot %s", vmName, name)
}

// Revert reverts a VM to a snapshot in an operation: a snapshot with
// memory resumes the guest where it was; a disk snapshot leaves the VM in
// the state it was taken in.
func (s *Service) Revert(ctx context.Context, vmName, name string) (api.Operation, error) {
	sn, err := s.Get(ctx, vmName, name)
	if err != nil {
		return api.Operation{}, err
	}
	if sn.Kind == "external" && sn.Memory {
		return api.Operation{}, api.Conflict("snapshot %s is external with memory: godwit cannot revert to it", name)
	}
	v, release, err := s.vms.HoldSettled(ctx, vmName, "snapshot.revert", "revert")
	if err != nil {
		return api.Operation{}, err
	}
	op := s.ops.Start("snapshot.revert", target(vmName), func(ctx context.Context, o *ops.Op) error {
		defer release()
		o.Progress("reverting to snapshot "+name, 0, 0, "")
		if sn.Kind == "external" {
			return s.revertExternal(ctx, v, name)
		}
		if err := s.hv.RevertSnapshot(ctx, vmName, name); err != nil {
			return hypervisor.APIErrorf("revert vm "+vmName+" to snapshot "+name, err)
		}
		s.log.Info("snapshot reverted", "vm", vmName, "snapshot", name)
		return nil
	})
	s.vms.Relabel(vmName, "snapshot.revert", "operation "+op.ID+" (snapshot.revert)")
	return op, nil
}

// Delete deletes a snapshot in an operation. libvirt merges an external
// snapshot's overlay into its parent and removes the file; what libvirt
// cannot merge safely it refuses, and nothing is removed.
func (s *Service) Delete(ctx context.Context, vmName, name string) (api.Operation, error) {
	sn, err := s.Get(ctx, vmName, name)
	if err != nil {
		return api.Operation{}, err
	}
	_, release, err := s.vms.Hold(ctx, vmName, "snapshot.delete")
	if err != nil {
		return api.Operation{}, err
	}
	op := s.ops.Start("snapshot.delete", target(vmName), func(ctx context.Context, o *ops.Op) error {
		defer release()
		o.Progress("deleting snapshot "+name, 0, 0, "")
		if err := s.hv.DeleteSnapshot(ctx, vmName, name); err != nil {
			return hypervisor.APIErrorf("delete snapshot "+name+" of vm "+vmName, err)
		}
		s.log.Info("snapshot deleted", "vm", vmName, "snapshot", name, "kind", sn.Kind)
		return nil
	})
	s.vms.Relabel(vmName, "snapshot.delete", "operation "+op.ID+" (snapshot.delete)")
	return op, nil
}

// revertExternal reverts to an external (disk-only) snapshot by hand, as
// libvirt 9.0 cannot: the VM is stopped, each disk gets a fresh overlay on
// the file that holds the snapshot's state (which stays untouched, so the
// snapshot can be reverted to again), the domain is redefined onto the new
// overlays and the snapshot becomes libvirt's current one. The state the
// VM had is discarded, as with any revert; files a snapshot still needs
// stay. The VM is left stopped: a disk-only snapshot holds no memory.
func (s *Service) revertExternal(ctx context.Context, v api.VM, name string) error {
	snaps, err := s.hv.Snapshots(ctx, v.Name)
	if err != nil {
		return hypervisor.APIErrorf("list snapshots of vm "+v.Name, err)
	}
	var target *hypervisor.Snapshot
	needed := map[string]bool{}
	for i, sn := range snaps {
		if sn.Name == name {
			target = &snaps[i]
		}
		for _, f := range sn.Files {
			needed[f] = true
		}
		var x libvirtxml.DomainSnapshot
		if x.Unmarshal(sn.XML) == nil && x.Domain != nil && x.Domain.Devices != nil {
			for _, d := range x.Domain.Devices.Disks {
				if d.Source != nil && d.Source.File != nil {
					needed[d.Source.File.File] = true
				}
			}
		}
	}
	if target == nil {
		return api.NotFound("vm %s has no snapshot %s", v.Name, name)
	}
	var x libvirtxml.DomainSnapshot
	if err := x.Unmarshal(target.XML); err != nil || x.Domain == nil || x.Domain.Devices == nil {
		return fmt.Errorf("snapshot %s: its XML holds no domain to revert to", name)
	}
	bases := vm.DomainDiskFiles(x.Domain)
	for _, d := range v.Disks {
		b := bases[d.Target]
		if b == "" {
			return api.Conflict("snapshot %s has no disk %s (the VM's disks changed since): cannot revert", name, d.Target)
		}
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("snapshot %s: the file holding disk %s's state: %w", name, d.Target, err)
		}
	}
	dom, err := s.hv.Lookup(ctx, v.Name)
	if err != nil {
		return hypervisor.APIErrorf("look up vm "+v.Name, err)
	}
	if dom.State.Active() {
		if err := s.hv.Destroy(ctx, v.Name); err != nil && !errors.Is(err, hypervisor.ErrInvalidState) {
			return hypervisor.APIErrorf("stop vm "+v.Name, err)
		}
	}
	oldXML, err := s.hv.XML(ctx, v.Name, true)
	if err != nil {
		return hypervisor.APIErrorf("get XML of vm "+v.Name, err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(oldXML); err != nil {
		return err
	}
	old := map[string]string{}
	stamp := fmt.Sprint(time.Now().Unix())
	var made []string
	ok := false
	defer func() {
		if !ok {
			for _, f := range made {
				os.Remove(f)
			}
		}
	}()
	for i, d := range def.Devices.Disks {
		if d.Target == nil || d.Source == nil || d.Source.File == nil {
			continue
		}
		base := bases[d.Target.Dev]
		vol := ""
		for _, vd := range v.Disks {
			if vd.Target == d.Target.Dev {
				vol = vd.Path
			}
		}
		if base == "" || vol == "" {
			continue
		}
		n := overlayPath(vol, name+".r"+stamp)
		out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", "-F", "qcow2", "-b", base, n).CombinedOutput()
		if err != nil {
			return fmt.Errorf("create an overlay on %s: %v: %s", base, err, strings.TrimSpace(string(out)))
		}
		made = append(made, n)
		old[d.Target.Dev] = d.Source.File.File
		def.Devices.Disks[i].Source.File.File = n
		def.Devices.Disks[i].BackingStore = nil
	}
	doc, err := def.Marshal()
	if err != nil {
		return err
	}
	if _, err := s.hv.Define(ctx, doc); err != nil {
		return hypervisor.APIErrorf("redefine vm "+v.Name+" onto the snapshot's disks", err)
	}
	if err := s.hv.MakeCurrent(ctx, v.Name, target.XML); err != nil {
		if _, derr := s.hv.Define(context.Background(), oldXML); derr != nil {
			s.log.Error("revert: restore the domain definition", "vm", v.Name, "err", derr)
		}
		return hypervisor.APIErrorf("make snapshot "+name+" current", err)
	}
	ok = true
	// The discarded state: the files the disks used, unless a snapshot
	// needs them or they are the VM's volumes.
	for _, f := range old {
		isVolume := false
		for _, vd := range v.Disks {
			isVolume = isVolume || vd.Path == f
		}
		if !needed[f] && !isVolume {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("remove the discarded overlay", "path", f, "err", err)
			}
		}
	}
	s.log.Info("reverted to an external snapshot", "vm", v.Name, "snapshot", name, "overlays", made)
	return nil
}
