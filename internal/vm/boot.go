package vm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/access"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/store"
)

// plannedBoot is how a VM boots: boot is the spec's boot with boot.image
// resolved (the files as the user or the catalog has them), files the
// daemon's copies of its kernel and initrd that the domain really boots
// (nil when the VM boots from a disk or firmware).
type plannedBoot struct {
	boot, files *api.Boot
}

// planBoot checks the spec's boot files, resolves boot.image and copies
// the kernel and initrd into the daemon's boot store, owned by the user
// QEMU runs as (see image.BootFiles for why a VM never boots the user's
// file in place).
func (s *Service) planBoot(ctx context.Context, b *api.Boot, qemu *hypervisor.DACLabel) (plannedBoot, error) {
	boot, err := s.resolveBoot(ctx, b)
	if err != nil || boot == nil || boot.Kernel == "" {
		return plannedBoot{boot: boot}, err
	}
	files, err := s.copyBoot(ctx, boot, qemu)
	return plannedBoot{boot: boot, files: files}, err
}

// copyBoot puts boot's kernel and initrd into the boot store and returns
// boot with the copies' paths. Without a store the files are used in place.
func (s *Service) copyBoot(ctx context.Context, boot *api.Boot, qemu *hypervisor.DACLabel) (*api.Boot, error) {
	out := *boot
	for _, f := range []struct {
		field string
		path  *string
	}{{"boot.kernel", &out.Kernel}, {"boot.initrd", &out.Initrd}} {
		if *f.path == "" {
			continue
		}
		if err := checkFile(f.field, *f.path); err != nil {
			return nil, err
		}
		if s.cfg.BootFiles == nil {
			continue
		}
		copied, err := s.cfg.BootFiles.Import(ctx, *f.path, qemu)
		if err != nil {
			return nil, fmt.Errorf("%s: copy %s into the boot store: %w", f.field, *f.path, err)
		}
		*f.path = copied
	}
	return &out, nil
}

// PruneBootFiles removes the boot store's copies that no VM boots.
func (s *Service) PruneBootFiles(ctx context.Context) error {
	if s.cfg.BootFiles == nil {
		return nil
	}
	recs, err := store.ListJSON[record](ctx, s.store, bucket)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, r := range recs {
		if b := r.BootFiles; b != nil {
			keep[b.Kernel], keep[b.Initrd] = true, true
		}
	}
	n, err := s.cfg.BootFiles.Prune(keep)
	if n > 0 {
		s.log.Info("removed boot files no VM uses", "count", n)
	}
	return err
}

// reachDisks checks that QEMU can reach the files of disks: the image an
// overlay reads through, an existing volume. New volumes sit in the pool,
// which the daemon checks when it starts.
func reachDisks(disks []resolvedDisk, qemu *hypervisor.DACLabel) error {
	for i, d := range disks {
		field := fmt.Sprintf("disks[%d]", i)
		switch {
		case d.Path != "":
			if err := checkReach(field+".volume", d.Path, qemu); err != nil {
				return err
			}
		case d.BackingPath != "" && d.Clone != "full":
			if err := checkReach(field+".image", d.BackingPath, qemu); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkReach refuses a file QEMU will open but cannot reach, naming the
// path, QEMU's user, the directory in the way and the fix.
func checkReach(field, path string, qemu *hypervisor.DACLabel) error {
	if qemu == nil || path == "" {
		return nil
	}
	if err := access.Check(access.Lookup(qemu.UID, qemu.GID), path); err != nil {
		if errors.Is(err, access.ErrDenied) {
			return api.BadRequest("%s: %v", field, err)
		}
		return api.BadRequest("%s: %s: %v", field, path, err)
	}
	return nil
}

// checkFile makes sure a boot file exists and is a readable regular file.
func checkFile(field, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return api.BadRequest("%s: %s: no such file on this host", field, path)
	}
	if err != nil {
		return api.BadRequest("%s: %v", field, err)
	}
	if !st.Mode().IsRegular() {
		return api.BadRequest("%s: %s is not a regular file", field, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return api.BadRequest("%s: %v", field, err)
	}
	f.Close()
	return nil
}

// resolveBoot turns boot.image into the image's kernel, initrd and
// cmdline (a cmdline in the spec replaces the image's).
func (s *Service) resolveBoot(ctx context.Context, b *api.Boot) (*api.Boot, error) {
	if b == nil || b.Image == "" {
		return b, nil
	}
	if s.cat == nil {
		return nil, api.BadRequest("boot.image: this daemon has no image catalog")
	}
	img, err := s.cat.Resolve(ctx, b.Image)
	if err != nil {
		if api.Status(err) == 404 {
			return nil, api.BadRequest("boot.image: %v", err)
		}
		return nil, err
	}
	if img.Boot == nil || img.Boot.Kernel == "" {
		return nil, api.BadRequest("boot.image: image %s carries no kernel for direct boot (built images do; or import with --kernel)", b.Image)
	}
	out := *img.Boot
	out.Image = b.Image
	if b.Cmdline != "" {
		out.Cmdline = b.Cmdline
	}
	return &out, nil
}
