package vm

import (
	"context"
	"errors"
	"os"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
)

// snapshotFiles lists the overlay files external snapshots made for a VM's
// own disks: the files its snapshots record and the files its disks use now,
// named after one of its volumes (godwit puts an overlay of web1-root.qcow2
// at web1-root.SNAP.qcow2). Backing chains are not followed, so images are
// never listed; nor are the overlays of an external volume the VM was
// given (its delete leaves that volume, and so the data on top of it).
// A delete removes them with the volumes.
func (s *Service) snapshotFiles(ctx context.Context, rec record) []string {
	vols := map[string]bool{}
	var prefixes []string
	for _, d := range rec.Disks {
		if d.Path == "" {
			continue
		}
		vols[d.Path] = true
		if !d.External {
			prefixes = append(prefixes, strings.TrimSuffix(d.Path, ".qcow2")+".")
		}
	}
	found := map[string]bool{}
	if snaps, err := s.hv.Snapshots(ctx, rec.Name); err == nil {
		for _, sn := range snaps {
			for _, f := range sn.Files {
				found[f] = true
			}
		}
	}
	for _, inactive := range []bool{false, true} {
		doc, err := s.hv.XML(ctx, rec.Name, inactive)
		if err != nil {
			continue
		}
		files, err := DiskFiles(doc)
		if err != nil {
			continue
		}
		for _, f := range files {
			found[f] = true
		}
	}
	var out []string
	for f := range found {
		if vols[f] || !strings.HasSuffix(f, ".qcow2") {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(f, p) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

func (s *Service) removeFiles(files []string) {
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("remove snapshot overlay", "path", f, "err", err)
		}
	}
}

// DiskFiles maps each disk target of a domain XML to its source file.
func DiskFiles(doc string) (map[string]string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(doc); err != nil {
		return nil, err
	}
	return DomainDiskFiles(&d), nil
}

// DomainDiskFiles maps each disk target of a domain to its source file.
func DomainDiskFiles(d *libvirtxml.Domain) map[string]string {
	out := map[string]string{}
	if d.Devices != nil {
		for _, disk := range d.Devices.Disks {
			if disk.Target != nil && disk.Source != nil && disk.Source.File != nil {
				out[disk.Target.Dev] = disk.Source.File.File
			}
		}
	}
	return out
}

// keepOverlays carries the disk files of the current definition into a
// regenerated one: after an external snapshot a disk runs on an overlay,
// and redefining it onto its volume would make the VM write into the base
// image its overlays depend on.
func keepOverlays(newXML, oldXML string) (string, error) {
	old, err := DiskFiles(oldXML)
	if err != nil {
		return "", err
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(newXML); err != nil {
		return "", err
	}
	changed := false
	for i, disk := range d.Devices.Disks {
		if disk.Target == nil || disk.Source == nil || disk.Source.File == nil {
			continue
		}
		if f := old[disk.Target.Dev]; f != "" && f != disk.Source.File.File {
			d.Devices.Disks[i].Source.File.File = f
			changed = true
		}
	}
	if !changed {
		return newXML, nil
	}
	return d.Marshal()
}

// growsOverlaid refuses to grow a disk that runs on an external snapshot's
// overlay: growing the volume underneath would not grow the overlay.
func growsOverlaid(rec record, oldXML string, grow map[string]api.Size) error {
	if len(grow) == 0 {
		return nil
	}
	files, err := DiskFiles(oldXML)
	if err != nil {
		return err
	}
	for _, d := range rec.Disks {
		if _, ok := grow[d.Name]; ok && files[d.Target] != "" && files[d.Target] != d.Path {
			return api.Conflict("disks[%s].size: the disk runs on an external snapshot's overlay (%s); delete or revert its external snapshots before growing it", d.Name, files[d.Target])
		}
	}
	return nil
}
