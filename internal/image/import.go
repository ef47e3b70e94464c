package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
)

// Import checks the request, claims the name and imports the image from a
// URL (HTTP(S) download) or a file on this host in an operation, with
// byte progress and a SHA-256 check. A failure leaves no file and no entry.
func (c *Catalog) Import(ctx context.Context, req api.ImageImport) (api.Operation, error) {
	if (req.URL == "") == (req.Path == "") {
		return api.Operation{}, api.BadRequest("import: give exactly one of url and path")
	}
	if req.SHA256 != "" && !isHexSHA(req.SHA256) {
		return api.Operation{}, api.BadRequest("sha256: %q is not 64 hex digits", req.SHA256)
	}
	source := req.Path
	if req.URL != "" {
		u, err := url.Parse(req.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return api.Operation{}, api.BadRequest("url: %q is not an http:// or https:// URL", req.URL)
		}
		source = u.Redacted()
	} else {
		if !filepath.IsAbs(req.Path) {
			return api.Operation{}, api.BadRequest("path: %q must be an absolute path on the daemon's host", req.Path)
		}
		st, err := os.Stat(req.Path)
		if err != nil {
			return api.Operation{}, api.BadRequest("path: %s: no such file on the daemon's host", req.Path)
		}
		if !st.Mode().IsRegular() {
			return api.Operation{}, api.BadRequest("path: %s is not a regular file", req.Path)
		}
	}
	if b := req.Boot; b != nil {
		if b.Kernel == "" && (b.Initrd != "" || b.Cmdline != "") {
			return api.Operation{}, api.BadRequest("boot: initrd and cmdline need boot.kernel")
		}
		if b.Image != "" || b.Firmware != "" {
			return api.Operation{}, api.BadRequest("boot: an image carries only kernel, initrd and cmdline")
		}
	}
	if err := c.reserveNew(ctx, req.Name, "image.import"); err != nil {
		return api.Operation{}, err
	}
	return c.ops.Start("image.import", "image/"+req.Name, func(ctx context.Context, o *ops.Op) error {
		defer c.release(req.Name)
		return c.doImport(ctx, o, req, source)
	}), nil
}

func (c *Catalog) doImport(ctx context.Context, o *ops.Op, req api.ImageImport, source string) error {
	r := revert.New()
	defer r.Fail()
	tmp, err := os.CreateTemp(c.dir, "."+req.Name+".import-*")
	if err != nil {
		return err
	}
	r.Add(func() { _ = os.Remove(tmp.Name()) })
	defer tmp.Close()

	var src io.ReadCloser
	var total int64
	if req.URL != "" {
		o.Progress("connecting to "+source, 0, 0, "")
		hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL, nil)
		if err != nil {
			return api.BadRequest("url: %v", err)
		}
		resp, err := c.HTTP.Do(hreq)
		if err != nil {
			return api.BadRequest("download %s: %v", source, stripURL(err))
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return api.BadRequest("download %s: the server answered %s", source, resp.Status)
		}
		src, total = resp.Body, resp.ContentLength
	} else {
		f, err := os.Open(req.Path)
		if err != nil {
			return api.BadRequest("path: %v", err)
		}
		st, _ := f.Stat()
		src, total = f, st.Size()
	}
	defer src.Close()
	msg := "copying"
	if req.URL != "" {
		msg = "downloading"
	}
	sum, n, err := hashingCopy(ctx, o, msg, tmp, src, total)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s: %w", msg, source, err)
	}
	if total > 0 && n != total {
		return api.BadRequest("%s: got %d of %d bytes (the transfer broke off)", source, n, total)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if req.SHA256 != "" && !strings.EqualFold(sum, req.SHA256) {
		return api.BadRequest("sha256: %s has %s, not %s as expected (corrupt or wrong file)", source, sum, req.SHA256)
	}
	e := Entry{Name: req.Name, SHA256: sum, Source: source}
	if b := req.Boot; b != nil && b.Kernel != "" {
		o.Progress("copying boot files", n, n, "bytes")
		e.Kernel, e.Cmdline = req.Name+".vmlinuz", b.Cmdline
		if err := c.copyBootFile(r, "boot.kernel", b.Kernel, e.Kernel); err != nil {
			return err
		}
		if b.Initrd != "" {
			e.Initrd = req.Name + ".initrd"
			if err := c.copyBootFile(r, "boot.initrd", b.Initrd, e.Initrd); err != nil {
				return err
			}
		}
	}
	o.Progress("checking the image", n, n, "bytes")
	if err := c.finish(ctx, r, e, tmp.Name()); err != nil {
		return err
	}
	r.Success()
	c.log.Info("image imported", "image", req.Name, "source", source, "bytes", n)
	return nil
}

// stripURL drops Go's "Get \"URL\": " prefix from a client error.
func stripURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func isHexSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}
