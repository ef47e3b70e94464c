// Package image owns the daemon's image catalog: disk image files in one
// directory with their entries in the store, imported from files or URLs,
// converted, built with debootstrap, and deleted only when no VM uses them
// (it asks the VM service, through UsersFunc). It also inspects image
// files with qemu-img for the VM service.
//
// It does not make VM disks (internal/vm makes overlays and copies) and
// never writes outside its directory. This file wraps qemu-img, the tool
// every QEMU host has, for facts libvirt does not give about a file it does
// not manage.
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Info is what qemu-img says about an image file.
type Info struct {
	Format      string `json:"format"`
	VirtualSize uint64 `json:"virtual-size"`
	ActualSize  uint64 `json:"actual-size"`
	BackingFile string `json:"backing-filename,omitempty"`
}

// Inspector reads image facts. The daemon uses QemuImg; tests may fake it.
type Inspector interface {
	Inspect(ctx context.Context, path string) (Info, error)
}

// QemuImg runs `qemu-img info`.
type QemuImg struct{}

// ErrNotImage means the file exists but qemu-img cannot read it as an image.
var ErrNotImage = errors.New("not a readable disk image")

// Inspect returns the image's format and sizes. -U lets it read an image a
// running VM holds open.
func (QemuImg) Inspect(ctx context.Context, path string) (Info, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	if !st.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%s is not a regular file", path)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", "-U", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return Info{}, fmt.Errorf("qemu-img is not installed (apt-get install qemu-utils): %w", err)
		}
		return Info{}, fmt.Errorf("%s: %s: %w", path, strings.TrimSpace(stderr.String()), ErrNotImage)
	}
	var info Info
	if err := json.Unmarshal(out, &info); err != nil {
		return Info{}, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	if info.Format == "qcow2" {
		if err := check(ctx, path); err != nil {
			return Info{}, err
		}
	}
	return info, nil
}

// check runs `qemu-img check`: qemu-img info reads only the header, so a
// truncated or damaged qcow2 passes it. Leaked clusters (exit 3) are
// harmless; corruption (2) or a check that cannot finish (1) is not.
func check(ctx context.Context, path string) error {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", "check", "-U", "--output=json", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err == nil || (errors.As(err, &ee) && ee.ExitCode() == 3) {
		return nil
	}
	var res struct {
		Corruptions int `json:"corruptions"`
		CheckErrors int `json:"check-errors"`
	}
	_ = json.Unmarshal(stdout.Bytes(), &res)
	if res.Corruptions > 0 {
		return fmt.Errorf("%s: qemu-img check found %d corruptions (truncated or damaged?): %w", path, res.Corruptions, ErrNotImage)
	}
	return fmt.Errorf("%s: qemu-img check failed: %s: %w", path, strings.TrimSpace(stderr.String()), ErrNotImage)
}
