package deb

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/debpkg"
	"github.com/godwit-project/godwit/internal/testenv"
)

// The package as a user installs it: `apt-get install ./godwit_*.deb` in
// a fresh Debian 12 root with no systemd, apt resolving the Depends from
// the mirror. Then the daemon runs from the installed files by the
// unit's own ExecStart line (the postinst started nothing: no systemd),
// a VM boots to its console, the version agrees with dpkg's, the man
// pages and completion are in place, and the package purges.
//
// The root runs in mount, PID and network namespaces of its own, with a
// /dev of its own. apt downloads first in mount and PID namespaces on
// this machine's network (no maintainer script runs then); everything
// else, the install included, runs with only lo.
func TestInstallInFreshRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the install test builds a Debian root and boots a VM")
	}
	testenv.RequireRoot(t)
	for _, c := range []string{"debootstrap", "unshare", "nsenter", "ip", "cp"} {
		testenv.RequireCommand(t, c)
	}
	guest := testenv.RequireGuest(t)
	start := time.Now()
	phase := start
	step := func(what string) {
		t.Logf("%s: %s", what, time.Since(phase).Round(100*time.Millisecond))
		phase = time.Now()
	}
	deb, version := buildDeb(t)
	step("package built")
	base := freshBase(t)
	root := newRoot(t, base)
	step("root ready (" + root + ")")

	// What a fresh machine has: its resolver and hosts, and an apt that
	// accepts the mirror's Release files (a snapshot may be old). No
	// service may start during the install (invoke-rc.d asks policy-rc.d).
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		if b, err := os.ReadFile(f); err == nil {
			write(t, root, f, string(b), 0o644)
		}
	}
	write(t, root, "/etc/apt/apt.conf.d/99godwit-test", "Acquire::Check-Valid-Until \"false\";\nAcquire::Retries \"3\";\n", 0o644)
	write(t, root, "/usr/sbin/policy-rc.d", "#!/bin/sh\n# godwit's package test: no service starts during the install.\nexit 101\n", 0o755)
	pkg := "/root/" + filepath.Base(deb)
	copyFile(t, deb, filepath.Join(root, pkg), 0o644)
	copyFile(t, guest.Kernel, filepath.Join(root, "/root/guest/vmlinuz"), 0o644)
	copyFile(t, guest.Initrd, filepath.Join(root, "/root/guest/initrd.gz"), 0o644)

	// Downloads: the mirror through this machine's network.
	dl := enter(t, root, false)
	dl.Must(3*time.Minute, "apt-get", "update", "-q")
	dl.Must(5*time.Minute, "apt-get", "install", "-y", "-q", "--download-only", "--no-install-recommends", pkg)
	dl.Close()
	step("apt update and download")

	// The rest: only lo.
	w := enter(t, root, true)
	if out := w.Must(10*time.Second, "ls", "/sys/class/net"); strings.TrimSpace(out) != "lo" {
		t.Fatalf("the root's network is not lo alone: %q", out)
	}
	if out := w.Must(10*time.Second, "cat", "/sys/class/net/lo/operstate"); strings.TrimSpace(out) == "down" {
		t.Fatalf("lo is down in the root")
	}
	// --no-install-recommends as setup installs: the Depends alone must
	// be enough for the daemon and a VM.
	out := w.Must(5*time.Minute, "apt-get", "install", "-y", "-q", "--no-install-recommends", pkg)
	step("apt install")
	if !strings.Contains(out, "Setting up godwit ("+version+")") {
		t.Errorf("apt did not set up godwit %s:\n%s", version, tail(out, 20))
	}
	// The postinst enabled the unit as debhelper's would (deb-systemd-helper
	// works without a running systemd), and started nothing.
	wants := filepath.Join(root, "/etc/systemd/system/multi-user.target.wants/godwit.service")
	if _, err := os.Stat(filepath.Join(root, "/usr/bin/deb-systemd-helper")); err == nil {
		if target, err := os.Readlink(wants); err != nil || !strings.HasSuffix(target, "/systemd/system/godwit.service") {
			t.Errorf("godwit.service is not enabled: %s -> %q (%v)", wants, target, err)
		}
	}
	if pids := w.ProcsNamed("godwit"); len(pids) > 0 {
		t.Errorf("the install started godwit without systemd (PIDs %v)", pids)
	}

	// Versions agree: the binary's, dpkg's, the file name's.
	dpkgVersion := strings.TrimSpace(w.Must(10*time.Second, "dpkg-query", "-W", "-f", "${Version}", "godwit"))
	gwVersion := strings.TrimSpace(w.Must(10*time.Second, debpkg.BinPath, "version"))
	if dpkgVersion != version || gwVersion != version {
		t.Errorf("versions: dpkg-query %q, godwit version %q, package %q", dpkgVersion, gwVersion, version)
	}
	// Man pages (man is not in minbase: gzip -t proves they are there and
	// whole) and completion (bash loads it and registers a function).
	w.Must(10*time.Second, "gzip", "-t", debpkg.ManDir+"/godwit.1.gz", debpkg.ManDir+"/godwit-daemon.1.gz", debpkg.ManDir+"/godwit-vm-create.1.gz")
	if out := w.Must(10*time.Second, "bash", "-c", ". "+debpkg.BashPath+" && complete -p godwit"); !strings.Contains(out, "__start_godwit") {
		t.Errorf("bash completion did not register: %s", out)
	}
	w.Must(10*time.Second, "test", "-s", debpkg.ZshPath)
	w.Must(10*time.Second, "test", "-s", debpkg.ConfigPath)

	// systemd's own check of the unit, where libvirt brought systemd in
	// (--man=no: minbase has no man to look up Documentation=).
	if _, err := os.Stat(filepath.Join(root, "/usr/bin/systemd-analyze")); err == nil {
		if out, err := w.Run(time.Minute, "systemd-analyze", "verify", "--man=no", debpkg.UnitPath); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", debpkg.UnitPath, err, out)
		}
	}

	// libvirt's daemons, as a machine without systemd starts them.
	w.Must(30*time.Second, "virtlogd", "-d")
	w.Must(30*time.Second, "libvirtd", "-d")
	waitFor(t, w, 90*time.Second, "libvirtd to answer", nil, "virsh", "-c", "qemu:///system", "uri")
	step("libvirtd up")

	// The daemon by the installed unit's ExecStart.
	unit, err := os.ReadFile(filepath.Join(root, debpkg.UnitPath))
	if err != nil {
		t.Fatal(err)
	}
	argv, err := debpkg.ParseUnit(unit).ExecStart()
	if err != nil {
		t.Fatal(err)
	}
	daemonLog := filepath.Join(t.TempDir(), "daemon.log")
	exited := w.Start(daemonLog, argv...)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(daemonLog)
			t.Logf("daemon (%s) log:\n%s", strings.Join(argv, " "), tail(string(b), 60))
		}
	})
	waitFor(t, w, 90*time.Second, "the daemon to answer on its default socket", exited, debpkg.BinPath, "host", "show")
	step("godwit daemon up (" + strings.Join(argv, " ") + ")")

	// A VM that boots: the test guest by direct kernel boot, under TCG
	// (the root has no /dev/kvm).
	write(t, root, "/root/vm.yaml", `name: pkgtest
cpus: 1
memory: 192MiB
boot:
  kernel: /root/guest/vmlinuz
  initrd: /root/guest/initrd.gz
  cmdline: console=ttyS0 quiet
disks:
  - {name: root, size: 64MiB}
`, 0o644)
	w.Must(3*time.Minute, debpkg.BinPath, "vm", "create", "-f", "/root/vm.yaml", "--start")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := w.Run(20*time.Second, debpkg.BinPath, "vm", "console", "pkgtest", "--no-follow")
		if strings.Contains(out, "GODWIT-GUEST-UP") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VM's console did not show GODWIT-GUEST-UP within 2m:\n%s", tail(out, 30))
		}
		time.Sleep(time.Second)
	}
	step("VM booted")
	hostShow := w.Must(20*time.Second, debpkg.BinPath, "host", "show")
	if !strings.Contains(hostShow, version) {
		t.Errorf("host show does not carry the version %s:\n%s", version, hostShow)
	}

	// Stop the daemon as the unit would (SIGTERM).
	stopDaemon := func() {
		t.Helper()
		pids := w.ProcsNamed("godwit")
		if len(pids) != 1 {
			t.Fatalf("godwit processes in the root: %v, want the daemon alone", pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for i := 0; len(w.ProcsNamed("godwit")) > 0; i++ {
			if i == 300 {
				t.Fatalf("the daemon did not stop within 30s of SIGTERM")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	stopDaemon()

	// An upgrade to a newer package keeps the admin's edit of the config
	// and the daemon's state: the VM is still known after it.
	newer := version + ".1"
	deb2, err := makeDeb(t.TempDir(), newer)
	if err != nil {
		t.Fatal(err)
	}
	pkg2 := "/root/" + filepath.Base(deb2)
	copyFile(t, deb2, filepath.Join(root, pkg2), 0o644)
	conf := filepath.Join(root, debpkg.ConfigPath)
	edited, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited = append(edited, "# edited by the admin\n"...)
	write(t, root, debpkg.ConfigPath, string(edited), 0o644)
	w.Must(2*time.Minute, "apt-get", "install", "-y", "-q", "--no-install-recommends", pkg2)
	if v := strings.TrimSpace(w.Must(10*time.Second, "dpkg-query", "-W", "-f", "${Version}", "godwit")); v != newer {
		t.Errorf("after the upgrade dpkg-query says %q, want %q", v, newer)
	}
	if v := strings.TrimSpace(w.Must(10*time.Second, debpkg.BinPath, "version")); v != newer {
		t.Errorf("after the upgrade godwit version says %q, want %q", v, newer)
	}
	if b, _ := os.ReadFile(conf); string(b) != string(edited) {
		t.Errorf("the upgrade did not keep the admin's config:\n%s", b)
	}
	if pids := w.ProcsNamed("godwit"); len(pids) > 0 {
		t.Errorf("the upgrade started godwit without systemd (PIDs %v)", pids)
	}
	exited = w.Start(daemonLog+".2", argv...)
	waitFor(t, w, 90*time.Second, "the upgraded daemon to answer", exited, debpkg.BinPath, "host", "show")
	w.Must(20*time.Second, debpkg.BinPath, "vm", "show", "pkgtest")
	stopDaemon()
	step("upgraded to " + newer)

	// Purge.
	w.Must(2*time.Minute, "dpkg", "--purge", "godwit")
	step("purged")
	// Purged: dpkg knows it no more, or as not-installed ("pn").
	if out, err := w.Run(10*time.Second, "dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "godwit"); err == nil && (len(out) < 2 || out[1] != 'n') {
		t.Errorf("after purge dpkg-query says %q", out)
	}
	for _, p := range []string{debpkg.BinPath, debpkg.UnitPath, debpkg.ConfigPath, debpkg.BashPath, debpkg.ManDir + "/godwit.1.gz"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s is still there after purge", p)
		}
	}
	if _, err := os.Lstat(wants); err == nil {
		t.Errorf("%s is still there after purge", wants)
	}
	if _, err := os.Stat(filepath.Join(root, "/var/lib/godwit/pool")); err != nil {
		t.Errorf("purge removed the VMs' disks (it must keep /var/lib/godwit): %v", err)
	}
	total := time.Since(start)
	t.Logf("install test: %s in all", total.Round(time.Second))
	if total > 8*time.Minute {
		t.Errorf("the install test took %s, more than its 8 minutes", total.Round(time.Second))
	}
}

// waitFor runs argv in the world until it succeeds, giving up when
// exited (the process it waits for) closes.
func waitFor(t *testing.T, w *World, timeout time.Duration, what string, exited <-chan struct{}, argv ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := w.Run(10*time.Second, argv...)
		if err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("waiting for %s: the process exited", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v\n%s", timeout, what, err, tail(out, 20))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// write puts a file into the root.
func write(t *testing.T, root, path, text string, mode os.FileMode) {
	t.Helper()
	dst := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	write(t, "/", dst, string(b), mode)
}
