package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/godwit-project/godwit/internal/access"
	"github.com/godwit-project/godwit/internal/prereq"
)

// qemuDirs are the daemon's directories QEMU opens files in, by what is
// there: each and every directory above it must let QEMU's user through.
func (d *Daemon) qemuDirs() [][2]string {
	return [][2]string{
		{"state dir", d.cfg.StateDir},
		{"disk pool", d.cfg.Pool.Path},
		{"boot files", d.bootDir()},
		{"image catalog", filepath.Join(d.cfg.StateDir, "images")},
		{"cloud-init seeds", filepath.Join(d.cfg.StateDir, "seeds")},
		{"backup work dir", filepath.Join(d.cfg.StateDir, "backup-work")},
	}
}

func (d *Daemon) bootDir() string { return filepath.Join(d.cfg.StateDir, "boot") }

// unreachable lists the daemon's directories the user QEMU runs as cannot
// reach, each with the fix; nil when libvirt does not say who that is.
func (d *Daemon) unreachable(ctx context.Context) ([]string, error) {
	info, err := d.hv.HostInfo(ctx)
	if err != nil {
		return nil, err
	}
	if info.QEMU == nil {
		return nil, nil
	}
	u := access.Lookup(info.QEMU.UID, info.QEMU.GID)
	var out []string
	for _, dir := range d.qemuDirs() {
		// A file inside: the directory itself must let QEMU in too.
		if err := access.Check(u, filepath.Join(dir[1], "x")); err != nil {
			var ae *access.Error
			if errors.As(err, &ae) {
				out = append(out, fmt.Sprintf("%s %s: QEMU runs as %s, which cannot enter %s (mode %04o, owner %d:%d); "+
					"pick a %s under a directory QEMU can reach (e.g. /var/lib/godwit), or chmod o+x %s",
					dir[0], dir[1], u, ae.Dir, ae.Mode.Perm(), ae.UID, ae.GID, dir[0], ae.Dir))
				continue
			}
			out = append(out, fmt.Sprintf("%s %s: %v", dir[0], dir[1], err))
		}
	}
	return out, nil
}

// errUnreachable is the daemon's refusal while QEMU cannot reach its
// directories.
func errUnreachable(problems []string) error {
	return fmt.Errorf("QEMU cannot reach the daemon's directories, so no VM could start: %s", strings.Join(problems, "; "))
}

// checkQEMUAccess refuses to start a daemon whose directories QEMU cannot
// reach, when libvirt answers now; otherwise the host bring-up checks it
// once libvirt does.
func (d *Daemon) checkQEMUAccess(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	problems, err := d.unreachable(ctx)
	if err != nil {
		d.log.Info("libvirt does not answer yet; QEMU's access to the state dir is checked once it does", "err", err)
		return nil
	}
	if len(problems) > 0 {
		return errUnreachable(problems)
	}
	return nil
}

// withMissingPrograms replaces the look at this host's programs (tests).
func withMissingPrograms(f func() []string) Option {
	return func(d *Daemon) { d.missingPrograms = f }
}

// missingPrograms lists the features whose programs this host lacks.
func missingPrograms() []string {
	var out []string
	for _, m := range prereq.Check(prereq.ScopeRun, prereq.ScopeExtra) {
		out = append(out, m.String())
	}
	return out
}
