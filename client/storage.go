package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/godwit-project/godwit/api"
)

func volPath(pool, vol string) string {
	return "/v1/pools/" + url.PathEscape(pool) + "/volumes/" + url.PathEscape(vol)
}

// ListPools lists every storage pool libvirt has.
func (c *Client) ListPools(ctx context.Context) ([]api.Pool, error) {
	var out api.PoolList
	err := c.do(ctx, http.MethodGet, "/v1/pools", nil, nil, &out)
	return out.Pools, err
}

// GetPool shows one pool.
func (c *Client) GetPool(ctx context.Context, name string) (api.Pool, error) {
	var out api.Pool
	err := c.do(ctx, http.MethodGet, "/v1/pools/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// CreatePool creates a pool.
func (c *Client) CreatePool(ctx context.Context, req api.PoolCreate) (api.Pool, error) {
	var out api.Pool
	err := c.do(ctx, http.MethodPost, "/v1/pools", nil, req, &out)
	return out, err
}

// DeletePool deletes an empty pool.
func (c *Client) DeletePool(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/pools/"+url.PathEscape(name), nil, nil, nil)
}

// ListVolumes lists the volumes of pool, or of every pool when it is "".
func (c *Client) ListVolumes(ctx context.Context, pool string) ([]api.Volume, error) {
	q := url.Values{}
	if pool != "" {
		q.Set("pool", pool)
	}
	var out api.VolumeList
	err := c.do(ctx, http.MethodGet, "/v1/volumes", q, nil, &out)
	return out.Volumes, err
}

// CreateVolume creates a blank volume.
func (c *Client) CreateVolume(ctx context.Context, pool string, req api.VolumeCreate) (api.Volume, error) {
	var out api.Volume
	err := c.do(ctx, http.MethodPost, "/v1/pools/"+url.PathEscape(pool)+"/volumes", nil, req, &out)
	return out, err
}

// GetVolume shows a volume.
func (c *Client) GetVolume(ctx context.Context, pool, name string) (api.Volume, error) {
	var out api.Volume
	err := c.do(ctx, http.MethodGet, volPath(pool, name), nil, nil, &out)
	return out, err
}

// DeleteVolume deletes a volume no VM uses.
func (c *Client) DeleteVolume(ctx context.Context, pool, name string) error {
	return c.do(ctx, http.MethodDelete, volPath(pool, name), nil, nil, nil)
}

// ResizeVolume grows a volume.
func (c *Client) ResizeVolume(ctx context.Context, pool, name string, size api.Size) (api.Volume, error) {
	var out api.Volume
	err := c.do(ctx, http.MethodPost, volPath(pool, name)+"/resize", nil, api.VolumeResize{Size: size}, &out)
	return out, err
}

// CloneVolume starts copying a volume into a new one.
func (c *Client) CloneVolume(ctx context.Context, pool, name string, req api.VolumeClone) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, volPath(pool, name)+"/clone", nil, req, &out)
	return out, err
}

// UploadOptions tune UploadVolume.
type UploadOptions struct {
	// Create makes the volume (of size bytes) when it is missing.
	Create bool
	Format string
	// SHA256 is checked by the daemon against what it received.
	SHA256 string
}

// UploadVolume streams size bytes from r into a volume. The daemon's
// SHA-256 of what it received is compared with the one computed here
// while sending; a mismatch is an error.
func (c *Client) UploadVolume(ctx context.Context, pool, name string, r io.Reader, size int64, opts UploadOptions) (api.Transfer, error) {
	q := url.Values{}
	flag(q, "create", opts.Create)
	if opts.Format != "" {
		q.Set("format", opts.Format)
	}
	h := sha256.New()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+volPath(pool, name)+"/data?"+q.Encode(), io.TeeReader(r, h))
	if err != nil {
		return api.Transfer{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Accept", "application/json")
	if opts.SHA256 != "" {
		req.Header.Set(api.HeaderSHA256, opts.SHA256)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return api.Transfer{}, ctx.Err()
		}
		return api.Transfer{}, fmt.Errorf("upload to %s/%s: %w", pool, name, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return api.Transfer{}, decodeError(resp)
	}
	var t api.Transfer
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		return t, fmt.Errorf("decode upload answer: %w", err)
	}
	if mine := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(mine, t.SHA256) {
		return t, fmt.Errorf("upload to %s/%s: sent bytes with SHA-256 %s, the daemon got %s", pool, name, mine, t.SHA256)
	}
	return t, nil
}

// Download is a volume download in progress: read Body to the end, then
// Finish checks the SHA-256 the daemon sent in its trailer.
type Download struct {
	Body io.Reader
	// Size is the number of bytes to expect (-1 if unknown).
	Size int64
	resp *http.Response
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

// DownloadVolume starts streaming a volume's bytes.
func (c *Client) DownloadVolume(ctx context.Context, pool, name string) (*Download, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+volPath(pool, name)+"/data", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("download %s/%s: %w", pool, name, unwrapURLError(err))
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	dl := &Download{Size: -1, resp: resp, h: sha256.New()}
	if s, err := strconv.ParseInt(resp.Header.Get("X-Godwit-Size"), 10, 64); err == nil {
		dl.Size = s
	}
	dl.Body = io.TeeReader(resp.Body, dlCounter{dl})
	return dl, nil
}

type dlCounter struct{ d *Download }

func (c dlCounter) Write(p []byte) (int, error) {
	c.d.n += int64(len(p))
	return c.d.h.Write(p)
}

// Finish closes the download and checks it: the daemon's trailer must
// carry the same SHA-256 as the bytes read, and no error.
func (d *Download) Finish() (api.Transfer, error) {
	_, _ = io.Copy(io.Discard, d.Body)
	d.resp.Body.Close()
	sum := hex.EncodeToString(d.h.Sum(nil))
	if e := d.resp.Trailer.Get(api.HeaderError); e != "" {
		return api.Transfer{Bytes: d.n}, fmt.Errorf("download broke off in the daemon: %s", e)
	}
	theirs := d.resp.Trailer.Get(api.HeaderSHA256)
	if theirs == "" {
		return api.Transfer{Bytes: d.n}, fmt.Errorf("download ended without the daemon's checksum (cut off after %d bytes?)", d.n)
	}
	if !strings.EqualFold(theirs, sum) {
		return api.Transfer{Bytes: d.n}, fmt.Errorf("download corrupted: got SHA-256 %s, the daemon sent %s", sum, theirs)
	}
	return api.Transfer{Bytes: d.n, SHA256: sum}, nil
}

// ListImages lists the image catalog.
func (c *Client) ListImages(ctx context.Context) ([]api.Image, error) {
	var out api.ImageList
	err := c.do(ctx, http.MethodGet, "/v1/images", nil, nil, &out)
	return out.Images, err
}

// GetImage shows one image.
func (c *Client) GetImage(ctx context.Context, name string) (api.Image, error) {
	var out api.Image
	err := c.do(ctx, http.MethodGet, "/v1/images/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// ImportImage starts importing an image (URL or file on the daemon's host).
func (c *Client) ImportImage(ctx context.Context, req api.ImageImport) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/images", nil, req, &out)
	return out, err
}

// BuildImage starts building an image.
func (c *Client) BuildImage(ctx context.Context, req api.ImageBuild) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/images/build", nil, req, &out)
	return out, err
}

// ConvertImage starts converting an image into a new one.
func (c *Client) ConvertImage(ctx context.Context, name string, req api.ImageConvert) (api.Operation, error) {
	var out api.Operation
	err := c.do(ctx, http.MethodPost, "/v1/images/"+url.PathEscape(name)+"/convert", nil, req, &out)
	return out, err
}

// DeleteImage deletes an image no VM uses.
func (c *Client) DeleteImage(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/images/"+url.PathEscape(name), nil, nil, nil)
}

// AttachDisk attaches a volume to a VM (hot-plug when it runs).
func (c *Client) AttachDisk(ctx context.Context, vm string, req api.DiskAttach) (api.VM, error) {
	var out api.VM
	err := c.do(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(vm)+"/disks", nil, req, &out)
	return out, err
}

// DetachDisk detaches an attached volume from a VM.
func (c *Client) DetachDisk(ctx context.Context, vm, disk string) (api.VM, error) {
	var out api.VM
	err := c.do(ctx, http.MethodDelete, "/v1/vms/"+url.PathEscape(vm)+"/disks/"+url.PathEscape(disk), nil, nil, &out)
	return out, err
}
