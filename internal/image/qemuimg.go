// Package image inspects and (in later work) manages disk images. This file
// wraps qemu-img, the tool every QEMU host has, for facts libvirt does not
// give about a file it does not manage.
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
	return info, nil
}
