package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/ops"
	"github.com/godwit-project/godwit/internal/revert"
)

// Debian image defaults.
const (
	DefaultSuite     = "bookworm"
	DefaultMirror    = "http://deb.debian.org/debian"
	DefaultBuildSize = 4 * api.GiB
	MinBuildSize     = 1 * api.GiB
	// DebianCmdline boots a built image directly (its kernel and initrd
	// come with it): the root filesystem by label, console on ttyS0.
	DebianCmdline = "root=LABEL=root ro console=ttyS0,115200 net.ifnames=0"
)

// debianPackages are installed besides debootstrap's minbase. debootstrap
// ignores virtual packages, so cloud-init's python3-cffi-backend is named.
var debianPackages = []string{
	"linux-image-amd64", "systemd-sysv", "cloud-init", "qemu-guest-agent", "openssh-server", "sudo",
	"ifupdown", "netbase", "python3-cffi-backend", "dbus", "libpam-systemd",
}

// debianFiles are written into the tree after debootstrap.
var debianFiles = map[string]string{
	"etc/fstab":              "LABEL=root / ext4 defaults,errors=remount-ro 0 1\n",
	"etc/hostname":           "debian\n",
	"etc/hosts":              "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
	"etc/resolv.conf":        "",
	"etc/machine-id":         "",
	"etc/network/interfaces": "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n",
	"etc/cloud/cloud.cfg.d/90-godwit.cfg": "# Written by godwit image build.\n" +
		"datasource_list: [NoCloud, None]\n" +
		"manage_etc_hosts: true\n" +
		// RSA host keys take ~13 s to make under TCG.
		"ssh_genkeytypes: [ed25519, ecdsa]\n",
}

// DebianRecipe describes a build so that equal recipes give equal images;
// tests key their cache on its hash.
func DebianRecipe(suite, mirror string, size api.Size) string {
	var b strings.Builder
	fmt.Fprintf(&b, "debian suite=%s mirror=%s size=%s\npackages=%s\ncmdline=%s\n", suite, mirror, size, strings.Join(debianPackages, ","), DebianCmdline)
	names := make([]string, 0, len(debianFiles))
	for n := range debianFiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "file %s:\n%s", n, debianFiles[n])
	}
	return b.String()
}

// RecipeHash is a short hash of a recipe.
func RecipeHash(recipe string) string {
	s := sha256.Sum256([]byte(recipe))
	return hex.EncodeToString(s[:8])
}

var suiteRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,30}$`)

// Build checks the request and builds a Debian image with debootstrap in
// an operation: a root filesystem with a kernel, cloud-init and
// qemu-guest-agent, made into an ext4 image (label root, no partition
// table) converted to qcow2, with the kernel and initrd kept next to it
// for direct kernel boot.
func (c *Catalog) Build(ctx context.Context, req api.ImageBuild) (api.Operation, error) {
	if req.Distro != "debian" {
		return api.Operation{}, api.BadRequest("distro: %q is not supported (only debian)", req.Distro)
	}
	if req.Suite == "" {
		req.Suite = DefaultSuite
	}
	if !suiteRE.MatchString(req.Suite) {
		return api.Operation{}, api.BadRequest("suite: %q is not a Debian suite name (e.g. bookworm)", req.Suite)
	}
	if req.Size == 0 {
		req.Size = DefaultBuildSize
	}
	if req.Size < MinBuildSize {
		return api.Operation{}, api.BadRequest("size: %s is below the %s a Debian image needs (did you forget the unit?)", req.Size.Human(), MinBuildSize)
	}
	if req.Size > 2*api.TiB {
		return api.Operation{}, api.BadRequest("size: %s is more than 2TiB", req.Size.Human())
	}
	if req.Mirror == "" {
		req.Mirror = DefaultMirror
	}
	if u, err := url.Parse(req.Mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return api.Operation{}, api.BadRequest("mirror: %q is not an http:// or https:// URL", req.Mirror)
	}
	for _, tool := range []string{"debootstrap", "mkfs.ext4", "qemu-img", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			return api.Operation{}, api.Conflict("%s is not installed on the daemon's host (scripts/host-setup.sh installs it)", tool)
		}
	}
	if err := c.reserveNew(ctx, req.Name, "image.build"); err != nil {
		return api.Operation{}, err
	}
	return c.ops.Start("image.build", "image/"+req.Name, func(ctx context.Context, o *ops.Op) error {
		defer c.release(req.Name)
		return c.buildDebian(ctx, o, req)
	}), nil
}

func (c *Catalog) buildDebian(ctx context.Context, o *ops.Op, req api.ImageBuild) error {
	r := revert.New()
	defer r.Fail()
	work, err := os.MkdirTemp(c.dir, "."+req.Name+".build-")
	if err != nil {
		return err
	}
	// Always: the tree is big. Unmount first whatever debootstrap left
	// mounted inside it (a cancelled run leaves /proc and /sys there).
	defer func() {
		unmountUnder(work)
		if err := os.RemoveAll(work); err != nil {
			c.log.Warn("remove build dir", "dir", work, "err", err)
		}
	}()
	root := filepath.Join(work, "rootfs")
	const steps = 6
	o.Progress("debootstrap "+req.Suite+" (downloads and installs packages; minutes)", 1, steps, "steps")
	args := []string{"--variant=minbase", "--include=" + strings.Join(debianPackages, ","), req.Suite, root, req.Mirror}
	if err := runLogged(ctx, o, 1, steps, "debootstrap", args...); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	o.Progress("configuring the tree", 2, steps, "steps")
	if err := configureDebian(ctx, root); err != nil {
		return err
	}
	o.Progress("taking the kernel and initrd out", 3, steps, "steps")
	e := Entry{Name: req.Name, Source: fmt.Sprintf("debootstrap %s from %s", req.Suite, req.Mirror), Cmdline: DebianCmdline,
		Kernel: req.Name + ".vmlinuz", Initrd: req.Name + ".initrd"}
	kernel, initrd, err := bootFiles(root)
	if err != nil {
		return err
	}
	if err := c.copyBootFile(r, "kernel", kernel, e.Kernel); err != nil {
		return err
	}
	if err := c.copyBootFile(r, "initrd", initrd, e.Initrd); err != nil {
		return err
	}
	o.Progress("making the ext4 filesystem", 4, steps, "steps")
	raw := filepath.Join(work, "disk.raw")
	if err := os.WriteFile(raw, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(raw, int64(req.Size)); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "root", "-d", root,
		"-E", "lazy_itable_init=0,lazy_journal_init=0", raw).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4: %s: %w", strings.TrimSpace(string(out)), err)
	}
	_ = os.RemoveAll(root)
	o.Progress("converting to qcow2", 5, steps, "steps")
	tmp := c.path("." + req.Name + ".build.qcow2")
	r.Add(func() { _ = os.Remove(tmp) })
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img convert: %s: %w", strings.TrimSpace(string(out)), err)
	}
	o.Progress("adding to the catalog", 6, steps, "steps")
	e.Source += " (" + RecipeHash(DebianRecipe(req.Suite, req.Mirror, req.Size)) + ")"
	if err := c.finish(ctx, r, e, tmp); err != nil {
		return err
	}
	r.Success()
	c.log.Info("image built", "image", req.Name, "suite", req.Suite)
	return nil
}

// configureDebian writes the files a VM image needs and checks that every
// package is configured (debootstrap exits 0 even when one is not).
func configureDebian(ctx context.Context, root string) error {
	for name, content := range debianFiles {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	_ = os.Remove(filepath.Join(root, "var/lib/dbus/machine-id"))
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		_ = os.Remove(k)
	}
	debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		_ = os.Remove(d)
	}
	if out, err := exec.CommandContext(ctx, "chroot", root, "passwd", "-l", "root").CombinedOutput(); err != nil {
		return fmt.Errorf("lock root: %s: %w", strings.TrimSpace(string(out)), err)
	}
	out, err := exec.CommandContext(ctx, "chroot", root, "dpkg", "--audit").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		return fmt.Errorf("packages left unconfigured by debootstrap (dpkg --audit): %s %v", strings.TrimSpace(string(out)), err)
	}
	return nil
}

// bootFiles finds the kernel and initrd debootstrap installed.
func bootFiles(root string) (kernel, initrd string, err error) {
	ks, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	is, _ := filepath.Glob(filepath.Join(root, "boot", "initrd.img-*"))
	if len(ks) == 0 || len(is) == 0 {
		return "", "", errors.New("the tree has no /boot/vmlinuz-* and initrd.img-* (did linux-image-amd64 install?)")
	}
	sort.Strings(ks)
	sort.Strings(is)
	return ks[len(ks)-1], is[len(is)-1], nil
}

// runLogged runs a command in its own process group (a cancel kills it
// and its children), reporting its output lines as progress.
func runLogged(ctx context.Context, o *ops.Op, step, steps int64, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			tail = append(tail, line)
			if len(tail) > 5 {
				tail = tail[1:]
			}
			o.Progress(name+": "+line, step, steps, "steps")
		}
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w; last lines: %s", err, strings.Join(tail, " | "))
	}
	return nil
}

// unmountUnder lazily unmounts every mount below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var under []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			under = append(under, f[1])
		}
	}
	sort.Slice(under, func(i, j int) bool { return len(under[i]) > len(under[j]) })
	for _, m := range under {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}
