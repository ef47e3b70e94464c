package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"libvirt.org/go/libvirtxml"

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
