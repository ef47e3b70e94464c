package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/hypervisor"
	"github.com/godwit-project/godwit/internal/ioctx"
)

// Volume limits.
const (
	MinVolumeSize = api.MiB
	MaxVolumeSize = 64 * api.TiB
)

func checkFormat(field, f string) (string, error) {
	switch f {
	case "":
		return "qcow2", nil
	case "qcow2", "raw":
		return f, nil
	}
	return "", api.BadRequest("%s: %q is not qcow2 or raw", field, f)
}

func checkSize(field string, size api.Size) error {
	switch {
	case size == 0:
		return api.BadRequest("%s: missing or 0 (e.g. 10GiB)", field)
	case size < MinVolumeSize:
		return api.BadRequest("%s: %s is below the minimum of %s (did you forget the unit, e.g. 10GiB?)", field, size.Human(), MinVolumeSize)
	case size > MaxVolumeSize:
		return api.BadRequest("%s: %s is above the maximum of %s", field, size.Human(), MaxVolumeSize)
	}
	return nil
}

func (s *Service) activePool(ctx context.Context, name string) error {
	if err := ValidateName("pool", name, MaxPoolName); err != nil {
		return err
	}
	info, err := s.poolInfo(ctx, name)
	if err != nil {
		return err
	}
	if !info.Active {
		return api.Conflict("pool %s is not active", name)
	}
	return nil
}

// CreateVolume makes a blank volume.
func (s *Service) CreateVolume(ctx context.Context, pool string, req api.VolumeCreate) (api.Volume, error) {
	if err := s.activePool(ctx, pool); err != nil {
		return api.Volume{}, err
	}
	if err := ValidateName("name", req.Name, MaxVolumeName); err != nil {
		return api.Volume{}, err
	}
	if err := checkSize("size", req.Size); err != nil {
		return api.Volume{}, err
	}
	format, err := checkFormat("format", req.Format)
	if err != nil {
		return api.Volume{}, err
	}
	if _, err := s.hv.VolumeInfo(ctx, pool, req.Name); err == nil {
		return api.Volume{}, api.Conflict("volume %s/%s already exists", pool, req.Name)
	}
	info, err := s.hv.CreateVolume(ctx, pool, hypervisor.Volume{Name: req.Name, Capacity: uint64(req.Size), Format: format})
	if err != nil {
		return api.Volume{}, fmt.Errorf("create volume %s/%s: %w", pool, req.Name, mapErr(err))
	}
	s.log.Info("volume created", "pool", pool, "volume", req.Name, "size", req.Size)
	return volumeView(pool, info, nil), nil
}

// ListVolumes lists the volumes of one pool, or of every active pool.
func (s *Service) ListVolumes(ctx context.Context, pool string) ([]api.Volume, error) {
	var pools []string
	if pool != "" {
		if err := s.activePool(ctx, pool); err != nil {
			return nil, err
		}
		pools = []string{pool}
	} else {
		infos, err := s.hv.ListPools(ctx)
		if err != nil {
			return nil, mapErr(err)
		}
		for _, p := range infos {
			if p.Active {
				pools = append(pools, p.Name)
			}
		}
	}
	var out []api.Volume
	for _, p := range pools {
		vols, err := s.hv.ListVolumes(ctx, p)
		if err != nil {
			if errors.Is(err, hypervisor.ErrNotFound) && pool == "" {
				continue
			}
			return nil, mapErr(err)
		}
		for _, v := range vols {
			users, err := s.usersOf(ctx, p, v.Name)
			if err != nil {
				return nil, err
			}
			out = append(out, volumeView(p, v, users))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pool != out[j].Pool {
			return out[i].Pool < out[j].Pool
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// GetVolume returns one volume.
func (s *Service) GetVolume(ctx context.Context, pool, name string) (api.Volume, error) {
	info, err := s.volumeInfo(ctx, pool, name)
	if err != nil {
		return api.Volume{}, err
	}
	users, err := s.usersOf(ctx, pool, name)
	if err != nil {
		return api.Volume{}, err
	}
	return volumeView(pool, info, users), nil
}

func (s *Service) volumeInfo(ctx context.Context, pool, name string) (hypervisor.VolumeInfo, error) {
	if err := ValidateName("pool", pool, MaxPoolName); err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	if err := ValidateName("volume", name, MaxVolumeName); err != nil {
		return hypervisor.VolumeInfo{}, err
	}
	info, err := s.hv.VolumeInfo(ctx, pool, name)
	if errors.Is(err, hypervisor.ErrNotFound) {
		if _, perr := s.hv.PoolInfo(ctx, pool); errors.Is(perr, hypervisor.ErrNotFound) {
			return info, api.NotFound("pool %s not found", pool)
		}
		return info, api.NotFound("volume %s/%s not found", pool, name)
	}
	return info, mapErr(err)
}

func (s *Service) usersOf(ctx context.Context, pool, name string) ([]string, error) {
	if s.users == nil {
		return nil, nil
	}
	return s.users.VolumeUsers(ctx, pool, name)
}

// DeleteVolume deletes a volume no VM uses.
func (s *Service) DeleteVolume(ctx context.Context, pool, name string) error {
	if _, err := s.volumeInfo(ctx, pool, name); err != nil {
		return err
	}
	users, err := s.usersOf(ctx, pool, name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return api.Conflict("volume %s/%s is in use by vm %s; detach it or delete the VM first", pool, name, strings.Join(users, ", "))
	}
	if err := s.hv.DeleteVolume(ctx, pool, name); err != nil {
		return fmt.Errorf("delete volume %s/%s: %w", pool, name, mapErr(err))
	}
	s.log.Info("volume deleted", "pool", pool, "volume", name)
	return nil
}

// ResizeVolume grows a volume. A VM's disk grows through the VM service
// (online when the VM runs); shrinking is refused.
func (s *Service) ResizeVolume(ctx context.Context, pool, name string, size api.Size) (api.Volume, error) {
	info, err := s.volumeInfo(ctx, pool, name)
	if err != nil {
		return api.Volume{}, err
	}
	if err := checkSize("size", size); err != nil {
		return api.Volume{}, err
	}
	cur := api.Size(info.Capacity)
	switch {
	case size < cur:
		return api.Volume{}, api.BadRequest("size: shrinking %s/%s from %s to %s would lose data; volumes only grow", pool, name, cur.Human(), size.Human())
	case size == cur:
		return s.GetVolume(ctx, pool, name)
	}
	users, err := s.usersOf(ctx, pool, name)
	if err != nil {
		return api.Volume{}, err
	}
	switch {
	case len(users) > 0:
		if err := s.users.ResizeDisk(ctx, users[0], pool, name, uint64(size)); err != nil {
			return api.Volume{}, err
		}
	default:
		if err := s.hv.ResizeVolume(ctx, pool, name, uint64(size)); err != nil {
			return api.Volume{}, fmt.Errorf("resize volume %s/%s: %w", pool, name, mapErr(err))
		}
	}
	s.log.Info("volume resized", "pool", pool, "volume", name, "from", cur, "to", size)
	return s.GetVolume(ctx, pool, name)
}

// CloneVolume copies a volume into a new, independent one (no backing
// file). It can take long; callers run it in an operation.
func (s *Service) CloneVolume(ctx context.Context, pool, name string, req api.VolumeClone) (api.Volume, error) {
	src, err := s.volumeInfo(ctx, pool, name)
	if err != nil {
		return api.Volume{}, err
	}
	dst := req.Pool
	if dst == "" {
		dst = pool
	}
	if err := s.checkClone(ctx, dst, req.Name); err != nil {
		return api.Volume{}, err
	}
	info, err := s.hv.CloneVolume(ctx, dst, hypervisor.Volume{Name: req.Name, Format: src.Format}, pool, name)
	if err != nil {
		// libvirt removes a half-made clone itself; make sure.
		if _, gerr := s.hv.VolumeInfo(context.Background(), dst, req.Name); gerr == nil {
			_ = s.hv.DeleteVolume(context.Background(), dst, req.Name)
		}
		return api.Volume{}, fmt.Errorf("clone volume %s/%s: %w", pool, name, mapErr(err))
	}
	s.log.Info("volume cloned", "from", pool+"/"+name, "to", dst+"/"+req.Name)
	return volumeView(dst, info, nil), nil
}

// CheckClone validates a clone request before its operation starts.
func (s *Service) CheckClone(ctx context.Context, pool, name string, req api.VolumeClone) error {
	if _, err := s.volumeInfo(ctx, pool, name); err != nil {
		return err
	}
	dst := req.Pool
	if dst == "" {
		dst = pool
	}
	return s.checkClone(ctx, dst, req.Name)
}

func (s *Service) checkClone(ctx context.Context, pool, name string) error {
	if err := ValidateName("name", name, MaxVolumeName); err != nil {
		return err
	}
	if err := s.activePool(ctx, pool); err != nil {
		return err
	}
	if _, err := s.hv.VolumeInfo(ctx, pool, name); err == nil {
		return api.Conflict("volume %s/%s already exists", pool, name)
	}
	return nil
}

// UploadOptions tune Upload.
type UploadOptions struct {
	// Create makes the volume (of Length bytes, Format) when it is missing.
	Create bool
	Format string
	// SHA256, when set, is checked against what arrived.
	SHA256 string
}

// Upload streams length bytes from r into the volume, hashing them as
// they pass. A mismatch with opts.SHA256, a short body or a cancel fails;
// a volume Upload created is then deleted again.
func (s *Service) Upload(ctx context.Context, pool, name string, r io.Reader, length int64, opts UploadOptions) (api.Transfer, error) {
	if length < 0 {
		return api.Transfer{}, api.BadRequest("Content-Length: an upload must say its length")
	}
	if opts.SHA256 != "" && !isHexSHA(opts.SHA256) {
		return api.Transfer{}, api.BadRequest("sha256: %q is not 64 hex digits", opts.SHA256)
	}
	info, err := s.volumeInfo(ctx, pool, name)
	created := false
	switch {
	case api.Status(err) == 404 && opts.Create && strings.HasPrefix(err.Error(), "volume "):
		format, ferr := checkFormat("format", opts.Format)
		if ferr != nil {
			return api.Transfer{}, ferr
		}
		if length == 0 {
			return api.Transfer{}, api.BadRequest("Content-Length: 0 bytes cannot make a volume")
		}
		if info, err = s.hv.CreateVolume(ctx, pool, hypervisor.Volume{Name: name, Capacity: uint64(length), Format: format}); err != nil {
			return api.Transfer{}, fmt.Errorf("create volume %s/%s: %w", pool, name, mapErr(err))
		}
		created = true
	case err != nil:
		return api.Transfer{}, err
	}
	if !created {
		users, err := s.usersOf(ctx, pool, name)
		if err != nil {
			return api.Transfer{}, err
		}
		if len(users) > 0 {
			return api.Transfer{}, api.Conflict("volume %s/%s is in use by vm %s; uploading would overwrite a live disk", pool, name, strings.Join(users, ", "))
		}
	}
	fail := func(err error) (api.Transfer, error) {
		if created {
			_ = s.hv.DeleteVolume(context.Background(), pool, name)
		}
		return api.Transfer{}, err
	}
	if uint64(length) > info.Capacity {
		return fail(api.BadRequest("upload: %s is more than volume %s/%s holds (%s)", api.Size(length).Human(), pool, name, api.Size(info.Capacity).Human()))
	}
	start := time.Now()
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(io.LimitReader(r, length), h)}
	upload := s.hv.UploadVolume
	if s.direct && isRegularFile(info.Path) {
		upload = func(ctx context.Context, _, _ string, r io.Reader, _ uint64) error {
			return writeFile(ctx, info.Path, r)
		}
	}
	if err := upload(ctx, pool, name, cr, uint64(length)); err != nil {
		if ctx.Err() != nil {
			return fail(fmt.Errorf("upload to %s/%s: %w", pool, name, ctx.Err()))
		}
		return fail(fmt.Errorf("upload to %s/%s: %w", pool, name, mapErr(err)))
	}
	if cr.n != length {
		return fail(api.BadRequest("upload to %s/%s: got %d of %d bytes", pool, name, cr.n, length))
	}
	sum := hexSum(h)
	if opts.SHA256 != "" && !strings.EqualFold(sum, opts.SHA256) {
		return fail(api.BadRequest("sha256: the upload's is %s, not %s as expected", sum, opts.SHA256))
	}
	s.log.Info("volume uploaded", "pool", pool, "volume", name, "bytes", length)
	return api.Transfer{Bytes: length, SHA256: sum, Elapsed: time.Since(start)}, nil
}

// Download checks the volume and returns its size and a func that streams
// it to w and returns the SHA-256 of what it wrote.
func (s *Service) Download(ctx context.Context, pool, name string) (int64, func(context.Context, io.Writer) (api.Transfer, error), error) {
	info, err := s.volumeInfo(ctx, pool, name)
	if err != nil {
		return 0, nil, err
	}
	return int64(info.Capacity), func(ctx context.Context, w io.Writer) (api.Transfer, error) {
		start := time.Now()
		h := sha256.New()
		cw := &countWriter{w: io.MultiWriter(w, h)}
		download := s.hv.DownloadVolume
		if s.direct && isRegularFile(info.Path) {
			download = func(ctx context.Context, _, _ string, w io.Writer) error { return readFile(ctx, info.Path, w) }
		}
		if err := download(ctx, pool, name, cw); err != nil {
			return api.Transfer{Bytes: cw.n}, fmt.Errorf("download %s/%s: %w", pool, name, mapErr(err))
		}
		return api.Transfer{Bytes: cw.n, SHA256: hexSum(h), Elapsed: time.Since(start)}, nil
	}, nil
}

// isRegularFile reports whether a volume is a file on this host, which
// the daemon (root, on libvirtd's host) can read and write itself.
func isRegularFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// writeFile writes r into the file from offset 0, as libvirt's upload
// does (no truncation), and syncs it.
func writeFile(ctx context.Context, path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(f, ioctx.Reader(ctx, r), make([]byte, 4<<20)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readFile(ctx context.Context, path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(w, ioctx.Reader(ctx, f), make([]byte, 4<<20))
	return err
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func isHexSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func volumeView(pool string, v hypervisor.VolumeInfo, users []string) api.Volume {
	return api.Volume{
		Pool: pool, Name: v.Name, Path: v.Path, Format: v.Format, Capacity: api.Size(v.Capacity),
		Allocation: api.Size(v.Allocation), Backing: v.Backing, UsedBy: users,
	}
}
