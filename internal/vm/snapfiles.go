package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"libvirt.org/go/libvirtxml"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
)

// snapshotFiles lists the overlay files external snapshots made for a VM:
// what its disks use now and what its snapshots record, other than its
// volumes, and only next to those volumes (godwit puts overlays there). A
// delete removes them with the volumes.
func (s *Service) snapshotFiles(ctx context.Context, rec record) []string {
	dirs := map[string]bool{}
	vols := map[string]bool{}
	for _, d := range rec.Disks {
		if d.Path != "" {
			dirs[filepath.Dir(d.Path)] = true
			vols[d.Path] = true
		}
	}
	found := map[string]bool{}
	if sh, ok := s.hv.(hypervisor.Snapshots); ok {
		if snaps, err := sh.Snapshots(ctx, rec.Name); err == nil {
			for _, sn := range snaps {
				for _, f := range sn.Files {
					found[f] = true
				}
			}
		}
	}
	for _, inactive := range []bool{false, true} {
		doc, err := s.hv.XML(ctx, rec.Name, inactive)
		if err != nil {
			continue
		}
		var d libvirtxml.Domain
		if d.Unmarshal(doc) != nil || d.Devices == nil {
			continue
		}
		for _, disk := range d.Devices.Disks {
			for src, bs := disk.Source, disk.BackingStore; src != nil; {
				if src.File != nil {
					found[src.File.File] = true
				}
				if bs == nil {
					break
				}
				src, bs = bs.Source, bs.BackingStore
			}
		}
	}
	var out []string
	for f := range found {
		if !vols[f] && dirs[filepath.Dir(f)] && strings.HasSuffix(f, ".qcow2") {
			out = append(out, f)
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

// diskFiles maps each disk target of a domain XML to its source file.
func diskFiles(doc string) (map[string]string, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(doc); err != nil {
		return nil, err
	}
	out := map[string]string{}
	if d.Devices != nil {
		for _, disk := range d.Devices.Disks {
			if disk.Target != nil && disk.Source != nil && disk.Source.File != nil {
				out[disk.Target.Dev] = disk.Source.File.File
			}
		}
	}
	return out, nil
}

// keepOverlays carries the disk files of the current definition into a
// regenerated one: after an external snapshot a disk runs on an overlay,
// and redefining it onto its volume would make the VM write into the base
// image its overlays depend on.
func keepOverlays(newXML, oldXML string) (string, error) {
	old, err := diskFiles(oldXML)
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
	files, err := diskFiles(oldXML)
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
