package e2e

import (
	"context"

	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
	"github.com/godwit-project/godwit/internal/image"
	"github.com/godwit-project/godwit/internal/testenv"
)

// debianCache keeps a built Debian image between runs on one machine,
// keyed by the build recipe: a second `make test` skips the build.
const debianCache = "/var/cache/godwit-test"

// testKey is an SSH public key for cloud-init to install (never used to log in).
const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtestkeytestkeytestkeytestkeytestkeytest e2e@godwit"

// debianImage puts a Debian image in the daemon's catalog as name: built
// with `godwit image build debian` (and cached), or imported from the cache.
func debianImage(t *testing.T, d *Daemon, name string) {
	t.Helper()
	testenv.RequireCommand(t, "debootstrap")
	const suite, size = image.DefaultSuite, 4 * api.GiB
	dir := filepath.Join(debianCache, "debian-"+image.RecipeHash(image.DebianRecipe(suite, image.DefaultMirror, size)))
	files := map[string]string{"disk": filepath.Join(dir, "image.qcow2"), "kernel": filepath.Join(dir, "vmlinuz"), "initrd": filepath.Join(dir, "initrd")}
	cached := true
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			cached = false
		}
	}
	if cached {
		t.Logf("importing the cached Debian image from %s", dir)
		d.MustCLI("image", "import", files["disk"], "--name", name, "--kernel", files["kernel"], "--initrd", files["initrd"], "--cmdline", image.DebianCmdline)
		return
	}
	t.Logf("building a Debian %s image with debootstrap (minutes; cached in %s for the next run)", suite, dir)
	start := time.Now()
	// Through the API, bounded: a mirror that stalls must not hang the run.
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	op, err := d.C.BuildImage(ctx, api.ImageBuild{Name: name, Distro: "debian", Suite: suite, Size: size})
	if err != nil {
		t.Fatalf("image build: %v", err)
	}
	if op, err = d.C.WaitOperation(ctx, op.ID, nil); err != nil {
		if ctx.Err() != nil {
			_, _ = d.C.CancelOperation(context.Background(), op.ID)
		}
		t.Fatalf("image build: %v (last step: %s)", err, op.Progress.Message)
	}
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	img := d.imageJSON(name)
	if img.Boot == nil || img.Boot.Kernel == "" || img.Boot.Initrd == "" || img.Boot.Cmdline != image.DebianCmdline {
		t.Fatalf("the built image carries no boot files: %+v", img)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for key, src := range map[string]string{"disk": img.Path, "kernel": img.Boot.Kernel, "initrd": img.Boot.Initrd} {
		if err := copyFile(src, files[key]); err != nil {
			t.Logf("caching %s: %v", files[key], err)
		}
	}
}

// copyFile copies atomically (a cut-off copy is never taken for a cache hit).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// A Debian image built with debootstrap boots under TCG from its own
// kernel (boot.image), and cloud-init takes the hostname and the user's
// SSH key from the NoCloud seed godwit made.
func TestDebianImageCloudInit(t *testing.T) {
	concurrent(t)
	d := StartDaemon(t)
	img := "debian-" + uniq()
	debianImage(t, d, img)

	name := "e2e-deb-" + uniq()
	host := "ci-" + uniq()
	spec := api.VMSpec{
		Name: name, CPUs: 1, Memory: 768 * api.MiB,
		Boot:  &api.Boot{Image: img},
		Disks: []api.Disk{{Name: "root", Image: img}},
		CloudInit: &api.CloudInit{
			Hostname: host,
			Users:    []api.CloudInitUser{{Name: "godwit", SSHKeys: []string{testKey}, Sudo: true}},
			// Runs last (scripts-user), after users and keys exist.
			UserData: "#!/bin/sh\n" +
				"echo \"CI-HOST $(hostname)\" > /dev/ttyS0\n" +
				"echo \"CI-KEY $(cat /home/godwit/.ssh/authorized_keys)\" > /dev/ttyS0\n",
		},
	}
	start := time.Now()
	d.createVM(spec, true)
	d.waitConsole(name, "^CI-KEY "+strings.ReplaceAll(testKey, "+", `\+`), 0, 8*time.Minute)
	t.Logf("cloud-init ran %s after start", time.Since(start).Round(time.Second))
	con := d.console(name)
	if !strings.Contains(con, "CI-HOST "+host) {
		t.Fatalf("the guest's hostname is not %s:\n%s", host, tail(con, 40))
	}
	if !strings.Contains(con, host+" login:") {
		t.Errorf("the login prompt does not show the hostname %s", host)
	}
	// The seed is an ISO labelled cidata, attached as a CD-ROM.

	xml, _ := virsh(t, "dumpxml", name)
	if !strings.Contains(xml, "device='cdrom'") || !strings.Contains(xml, ".iso") {
		t.Fatalf("no seed CD-ROM in the domain:\n%s", xml)
	}
	if out, err := exec.Command("blkid", "-s", "LABEL", "-o", "value", filepath.Join(d.Dir, "state", "seeds", name+".iso")).Output(); err != nil || strings.TrimSpace(string(out)) != "cidata" {
		t.Fatalf("seed label: %q %v", out, err)
	}
	if _, errOut, code := d.CLI("image", "delete", img); code != 1 || !strings.Contains(errOut, name) {
		t.Fatalf("deleting the image the VM boots: exit %d, %q", code, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d.waitOp(d.C.DeleteVM(ctx, name, clientDelete()))
	if _, err := os.Stat(filepath.Join(d.Dir, "state", "seeds", name+".iso")); !os.IsNotExist(err) {
		t.Errorf("the seed outlived its VM: %v", err)
	}
	d.MustCLI("image", "delete", img)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
