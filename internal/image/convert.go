package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
)

// Convert makes a new catalog image with another format (raw <-> qcow2)
// in an operation; the source stays.
func (c *Catalog) Convert(ctx context.Context, name string, req api.ImageConvert) (api.Operation, error) {
	e, err := c.get(ctx, name)
	if err != nil {
		return api.Operation{}, err
	}
	if req.Format != "qcow2" && req.Format != "raw" {
		return api.Operation{}, api.BadRequest("format: %q is not qcow2 or raw", req.Format)
	}
	if req.Format == e.Format {
		return api.Operation{}, api.BadRequest("format: image %s is already %s", name, e.Format)
	}
	if err := c.reserveNew(ctx, req.Name, "image.convert"); err != nil {
		return api.Operation{}, err
	}
	return c.ops.Start("image.convert", "image/"+req.Name, func(ctx context.Context, o *ops.Op) error {
		defer c.release(req.Name)
		r := revert.New()
		defer r.Fail()
		tmp := c.path("." + req.Name + ".convert")
		r.Add(func() { _ = os.Remove(tmp) })
		if err := qemuImgConvert(ctx, o, c.path(e.File), e.Format, tmp, req.Format); err != nil {
			return err
		}
		ne := Entry{Name: req.Name, Source: "converted from " + name, Cmdline: e.Cmdline}
		if e.Kernel != "" {
			ne.Kernel = req.Name + ".vmlinuz"
			if err := c.copyBootFile(r, "kernel", c.path(e.Kernel), ne.Kernel); err != nil {
				return err
			}
		}
		if e.Initrd != "" {
			ne.Initrd = req.Name + ".initrd"
			if err := c.copyBootFile(r, "initrd", c.path(e.Initrd), ne.Initrd); err != nil {
				return err
			}
		}
		if err := c.finish(ctx, r, ne, tmp); err != nil {
			return err
		}
		r.Success()
		c.log.Info("image converted", "from", name, "to", req.Name, "format", req.Format)
		return nil
	}), nil
}

var percentRE = regexp.MustCompile(`\((\d+(?:\.\d+)?)/100%\)`)

// qemuImgConvert runs qemu-img convert -p, reporting its percentage.
func qemuImgConvert(ctx context.Context, o *ops.Op, src, srcFmt, dst, dstFmt string) error {
	args := []string{"convert", "-p", "-f", srcFmt, "-O", dstFmt}
	if dstFmt == "raw" {
		args = append(args, "-S", "4k") // keep it sparse
	}
	cmd := exec.CommandContext(ctx, "qemu-img", append(args, src, dst)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	sc.Split(splitCR)
	for sc.Scan() {
		if m := percentRE.FindStringSubmatch(sc.Text()); m != nil {
			p, _ := strconv.ParseFloat(m[1], 64)
			o.Progress("converting to "+dstFmt, int64(p*10), 1000, "permille")
		}
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("qemu-img convert: %s: %w", strings.TrimSpace(stderr.String()), err)
	}
	return nil
}

// splitCR splits on \r or \n (qemu-img -p redraws with \r).
func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == '\r' || b == '\n' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// CopyToVolume writes a full, independent copy of an image into an
// existing volume file (qemu-img convert -n), for clone: full disks.
func CopyToVolume(ctx context.Context, src, srcFmt, dst, dstFmt string) error {
	cmd := exec.CommandContext(ctx, "qemu-img", "convert", "-n", "-f", srcFmt, "-O", dstFmt, src, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img convert: %s: %w", strings.TrimSpace(string(out)), err)
	}
	return nil
}
