package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
	"github.com/godwit-project/godwit/internal/storage"
	"github.com/godwit-project/godwit/internal/store"
)

const bucket = "images"

// MaxNameLen bounds catalog names.
const MaxNameLen = 63

// Entry is what the store keeps of a catalog image.
type Entry struct {
	Name      string    `json:"name"`
	File      string    `json:"file"` // base name in the catalog dir
	Format    string    `json:"format"`
	SHA256    string    `json:"sha256,omitempty"`
	Source    string    `json:"source,omitempty"`
	Kernel    string    `json:"kernel,omitempty"` // base names, with the image's boot files
	Initrd    string    `json:"initrd,omitempty"`
	Cmdline   string    `json:"cmdline,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Resolved is a catalog image as a VM disk or boot needs it.
type Resolved struct {
	Name        string
	Path        string
	Format      string
	VirtualSize uint64
	// Boot has absolute kernel/initrd paths, when the image carries them.
	Boot *api.Boot
}

// UsersFunc returns the VMs that use an image.
type UsersFunc func(ctx context.Context, image string) ([]string, error)

// Catalog is the daemon's image catalog: files in one directory, entries
// in the store. It imports (file, URL), converts, builds and deletes
// images, and refuses to delete one a VM uses.
type Catalog struct {
	dir   string
	store store.Store
	ops   *ops.Manager
	insp  Inspector
	log   *slog.Logger
	users UsersFunc
	// HTTP fetches URLs.
	HTTP *http.Client

	mu   sync.Mutex
	busy map[string]string // names being made -> operation kind
}

// NewCatalog returns a catalog keeping its files in dir (made 0711: QEMU
// must read images, nobody needs to list them).
func NewCatalog(dir string, st store.Store, om *ops.Manager, log *slog.Logger) (*Catalog, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	c := &Catalog{dir: dir, store: st, ops: om, insp: QemuImg{}, log: log, HTTP: &http.Client{}, busy: map[string]string{}}
	c.removeLeftovers()
	return c, nil
}

// removeLeftovers deletes what imports, conversions and builds cut off by
// a crash left (their work files start with '.'; nothing runs yet at
// start). A build's tree may still have /proc and /sys mounted in it.
func (c *Catalog) removeLeftovers() {
	left, _ := filepath.Glob(filepath.Join(c.dir, ".*"))
	for _, p := range left {
		c.log.Warn("removing what an interrupted image job left", "path", p)
		unmountUnder(p)
		if err := os.RemoveAll(p); err != nil {
			c.log.Warn("remove leftover", "path", p, "err", err)
		}
	}
}

// SetUsers tells the catalog how to find the VMs that use an image.
func (c *Catalog) SetUsers(f UsersFunc) { c.users = f }

// Dir is where the image files are.
func (c *Catalog) Dir() string { return c.dir }

// ValidateName checks a catalog name (no paths: it names files).
func ValidateName(field, name string) error {
	return storage.ValidateName(field, name, MaxNameLen)
}

// IsCatalogName reports whether a disk's image field names a catalog
// image rather than a file (an absolute path).
func IsCatalogName(s string) bool { return !strings.HasPrefix(s, "/") }

func (c *Catalog) get(ctx context.Context, name string) (Entry, error) {
	if err := ValidateName("image", name); err != nil {
		return Entry{}, err
	}
	e, err := store.GetJSON[Entry](ctx, c.store, bucket, name)
	if errors.Is(err, store.ErrNotFound) {
		return e, api.NotFound("image %s not found (godwit image list shows the catalog)", name)
	}
	return e, err
}

func (c *Catalog) path(base string) string { return filepath.Join(c.dir, base) }

// Resolve returns where a catalog image is and what it is.
func (c *Catalog) Resolve(ctx context.Context, name string) (Resolved, error) {
	e, err := c.get(ctx, name)
	if err != nil {
		return Resolved{}, err
	}
	r := Resolved{Name: name, Path: c.path(e.File), Format: e.Format}
	info, err := c.insp.Inspect(ctx, r.Path)
	if err != nil {
		return r, fmt.Errorf("image %s: %w", name, err)
	}
	r.VirtualSize = info.VirtualSize
	if e.Kernel != "" {
		r.Boot = &api.Boot{Kernel: c.path(e.Kernel), Cmdline: e.Cmdline}
		if e.Initrd != "" {
			r.Boot.Initrd = c.path(e.Initrd)
		}
	}
	return r, nil
}

// List returns every catalog image.
func (c *Catalog) List(ctx context.Context) ([]api.Image, error) {
	entries, err := store.ListJSON[Entry](ctx, c.store, bucket)
	if err != nil {
		return nil, err
	}
	out := make([]api.Image, 0, len(entries))
	for _, e := range entries {
		out = append(out, c.view(ctx, e, false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns one image with what qemu-img says of it.
func (c *Catalog) Get(ctx context.Context, name string) (api.Image, error) {
	e, err := c.get(ctx, name)
	if err != nil {
		return api.Image{}, err
	}
	return c.view(ctx, e, true), nil
}

func (c *Catalog) view(ctx context.Context, e Entry, chain bool) api.Image {
	img := api.Image{Name: e.Name, Format: e.Format, Path: c.path(e.File), SHA256: e.SHA256, Source: e.Source, CreatedAt: e.CreatedAt}
	if infos, err := infoChain(ctx, img.Path); err == nil && len(infos) > 0 {
		img.VirtualSize, img.ActualSize = api.Size(infos[0].VirtualSize), api.Size(infos[0].ActualSize)
		if chain {
			for _, i := range infos[1:] {
				img.Backing = append(img.Backing, i.Filename)
			}
		}
	}
	if e.Kernel != "" {
		img.Boot = &api.Boot{Kernel: c.path(e.Kernel), Cmdline: e.Cmdline}
		if e.Initrd != "" {
			img.Boot.Initrd = c.path(e.Initrd)
		}
	}
	if c.users != nil {
		img.UsedBy, _ = c.users(ctx, e.Name)
	}
	return img
}

type chainInfo struct {
	Filename    string `json:"filename"`
	Format      string `json:"format"`
	VirtualSize uint64 `json:"virtual-size"`
	ActualSize  uint64 `json:"actual-size"`
}

// infoChain is `qemu-img info --backing-chain`: the image, then its
// backing files.
func infoChain(ctx context.Context, path string) ([]chainInfo, error) {
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", "--backing-chain", "-U", path).Output()
	if err != nil {
		return nil, err
	}
	var list []chainInfo
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// Delete removes an image no VM uses.
func (c *Catalog) Delete(ctx context.Context, name string) error {
	e, err := c.get(ctx, name)
	if err != nil {
		return err
	}
	if err := c.claim(name, "image.delete"); err != nil {
		return err
	}
	defer c.release(name)
	if c.users != nil {
		users, err := c.users(ctx, name)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return api.Conflict("image %s is in use by vm %s (their disks are overlays on it); delete those VMs first", name, strings.Join(users, ", "))
		}
	}
	if err := c.store.Delete(ctx, bucket, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for _, f := range []string{e.File, e.Kernel, e.Initrd} {
		if f == "" {
			continue
		}
		if err := os.Remove(c.path(f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("remove image file", "image", name, "file", f, "err", err)
		}
	}
	c.log.Info("image deleted", "image", name)
	return nil
}

// claim reserves a name for an action that makes or removes an image.
func (c *Catalog) claim(name, what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.busy[name]; ok {
		return api.Conflict("image %s is busy: %s is in progress", name, w)
	}
	c.busy[name] = what
	return nil
}

func (c *Catalog) release(name string) {
	c.mu.Lock()
	delete(c.busy, name)
	c.mu.Unlock()
}

// reserveNew checks that a new image name is valid and free, and claims it.
func (c *Catalog) reserveNew(ctx context.Context, name, what string) error {
	if err := ValidateName("name", name); err != nil {
		return err
	}
	if _, err := c.get(ctx, name); err == nil {
		return api.Conflict("image %s already exists", name)
	} else if api.Status(err) != 404 {
		return err
	}
	return c.claim(name, what)
}

// finish checks a file made in the catalog dir (tmp), moves it into place
// as the image's file and records the entry. The file must be a readable
// qcow2 or raw image.
func (c *Catalog) finish(ctx context.Context, r *revert.Reverter, e Entry, tmp string) error {
	info, err := c.insp.Inspect(ctx, tmp)
	if err != nil {
		return api.BadRequest("%s is not a usable disk image: %v", e.Source, stripPath(err, tmp))
	}
	if info.Format != "qcow2" && info.Format != "raw" {
		return api.BadRequest("%s is a %s image; the catalog takes qcow2 and raw (convert it with qemu-img first)", e.Source, info.Format)
	}
	if info.Format == "raw" {
		if err := plausibleRaw(tmp); err != nil {
			return api.BadRequest("%s: %v", e.Source, err)
		}
	}
	if info.BackingFile != "" {
		return api.BadRequest("%s has a backing file (%s); import a standalone image (qemu-img convert flattens it)", e.Source, info.BackingFile)
	}
	e.Format = info.Format
	e.File = e.Name + "." + info.Format
	dst := c.path(e.File)
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	r.Add(func() { _ = os.Remove(dst) })
	if err := os.Chmod(dst, 0o644); err != nil {
		return err
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now().UTC()
	}
	return store.PutJSON(ctx, c.store, bucket, e.Name, e)
}

func stripPath(err error, path string) string {
	return strings.TrimPrefix(strings.ReplaceAll(err.Error(), path+": ", ""), path)
}

// plausibleRaw refuses files that qemu-img would take as "raw" but that
// are no disk: not whole sectors, or text.
func plausibleRaw(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() == 0 || st.Size()%512 != 0 {
		return fmt.Errorf("not a disk image: %d bytes is not a whole number of 512-byte sectors (truncated, or not an image)", st.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := io.ReadFull(f, buf)
	buf = buf[:n]
	text := utf8.Valid(buf)
	nonzero := false
	for _, b := range buf {
		if b != 0 {
			nonzero = true
		}
		if b == 0 || (b < 32 && b != '\n' && b != '\r' && b != '\t') {
			text = false
			break
		}
	}
	if text && nonzero {
		return fmt.Errorf("not a disk image: it starts with text")
	}
	return nil
}

// copyBootFile copies a kernel or initrd into the catalog as base.
func (c *Catalog) copyBootFile(r *revert.Reverter, field, src, base string) error {
	if !filepath.IsAbs(src) {
		return api.BadRequest("%s: %q must be an absolute path on the daemon's host", field, src)
	}
	in, err := os.Open(src)
	if err != nil {
		return api.BadRequest("%s: %v", field, err)
	}
	defer in.Close()
	if st, err := in.Stat(); err != nil || !st.Mode().IsRegular() {
		return api.BadRequest("%s: %s is not a regular file", field, src)
	}
	dst := c.path(base)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	r.Add(func() { _ = os.Remove(dst) })
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// hashingCopy copies src to dst, reporting bytes, honouring ctx, and
// returns the SHA-256 of what it copied.
func hashingCopy(ctx context.Context, o *ops.Op, msg string, dst io.Writer, src io.Reader, total int64) (string, int64, error) {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	last := time.Time{}
	for {
		if err := ctx.Err(); err != nil {
			return "", n, err
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := dst.Write(buf[:k]); err != nil {
				return "", n, err
			}
			h.Write(buf[:k])
			n += int64(k)
			if time.Since(last) > 200*time.Millisecond {
				o.Progress(msg, n, total, "bytes")
				last = time.Now()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", n, rerr
		}
	}
	o.Progress(msg, n, max(total, n), "bytes")
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
