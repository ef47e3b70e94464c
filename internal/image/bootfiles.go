package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ioctx"
)

// BootFiles keeps the kernels and initrds VMs boot from, one copy per
// content, in a directory the daemon owns. A VM never boots a user's file
// in place, because:
//   - libvirt chowns a domain's kernel to QEMU's user and remembers the
//     owner it found; when anything else changes that owner while one VM
//     runs (another libvirtd, a rebuild, a crashed QEMU's leftover label),
//     the next VM on the same file is refused ("Setting different DAC user
//     or group ... which is already in use"). A copy that already belongs
//     to QEMU's user, which nothing else touches, never needs relabelling;
//   - the user's file may sit where QEMU cannot reach it (root's home).
type BootFiles struct {
	dir string
}

// NewBootFiles returns the store in dir (made 0711: QEMU must reach the
// files, nobody needs to list them).
func NewBootFiles(dir string) (*BootFiles, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	b := &BootFiles{dir: dir}
	left, _ := filepath.Glob(filepath.Join(dir, ".import-*"))
	for _, p := range left {
		_ = os.Remove(p) // an import a crash cut off
	}
	return b, nil
}

// Dir is where the copies are.
func (b *BootFiles) Dir() string { return b.dir }

// Owns reports whether path is one of the store's copies.
func (b *BootFiles) Owns(path string) bool { return filepath.Dir(path) == b.dir }

// Import copies src into the store, unless a copy of the same content is
// there already, and returns the copy's path. The copy is mode 0644, owned
// by owner (QEMU's user; nil keeps the daemon's).
func (b *BootFiles) Import(ctx context.Context, src string, owner *hypervisor.DACLabel) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(b.dir, ".import-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), ioctx.Reader(ctx, in)); err != nil {
		tmp.Close()
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	dst := filepath.Join(b.dir, hex.EncodeToString(h.Sum(nil))+"-"+safeBase(src))
	if _, err := os.Stat(dst); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	if err := os.Chmod(dst, 0o644); err != nil {
		return "", err
	}
	// Fresh copies are safe from Prune until their VM's record names them.
	now := time.Now()
	if err := os.Chtimes(dst, now, now); err != nil {
		return "", err
	}
	if owner != nil {
		if err := os.Chown(dst, owner.UID, owner.GID); err != nil {
			return "", err
		}
	}
	return dst, nil
}

// pruneAfter is how long an imported copy is kept though no VM names it:
// a create imports its boot files before it writes the VM's record.
const pruneAfter = 10 * time.Minute

// Prune removes the copies no VM uses any more (keep holds the paths in
// use) and returns how many went. Copies imported in the last minutes stay.
func (b *BootFiles) Prune(keep map[string]bool) (int, error) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		p := filepath.Join(b.dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") || keep[p] {
			continue
		}
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < pruneAfter {
			continue
		}
		if err := os.Remove(p); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// safeBase is src's file name, kept readable in the copy's name.
func safeBase(src string) string {
	base := filepath.Base(src)
	if base == "." || base == "/" || strings.HasPrefix(base, ".") {
		return "boot"
	}
	return base
}
