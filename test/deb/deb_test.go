// Package deb tests godwit's Debian package as `make deb` builds it: what
// is in it, and that it installs with apt in a fresh Debian 12 root (no
// systemd there), where the unit's command runs the daemon and a VM
// boots, and that it purges.
package deb

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/debpkg"
	"github.com/godwit-project/godwit/internal/testenv"
)

var (
	buildOnce sync.Once
	buildDir  string
	built     struct {
		deb, version string
		took         time.Duration
		err          error
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildDeb runs `make deb` (the path users take) once for the package's
// tests, into a directory of its own, and returns the .deb and the
// version scripts/version.sh gives this checkout.
func buildDeb(t *testing.T) (deb, version string) {
	t.Helper()
	testenv.RequireCommand(t, "dpkg-deb")
	testenv.RequireCommand(t, "make")
	testenv.RequireCommand(t, "git")
	buildOnce.Do(func() {
		repo := testenv.RepoRoot()
		out, err := exec.Command(filepath.Join(repo, "scripts/version.sh"), repo).Output()
		if err != nil {
			built.err = fmt.Errorf("scripts/version.sh: %v", err)
			return
		}
		built.version = strings.TrimSpace(string(out))
		if buildDir, err = os.MkdirTemp("", "godwit-deb-test-"); err != nil {
			built.err = err
			return
		}
		start := time.Now()
		built.deb, built.err = makeDeb(buildDir, "")
		built.took = time.Since(start)
		if want := filepath.Join(buildDir, debpkg.FileName(built.version)); built.err == nil && built.deb != want {
			built.err = fmt.Errorf("make deb made %s, not %s", built.deb, want)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	t.Logf("make deb: %s (%s)", filepath.Base(built.deb), built.took.Round(time.Second))
	return built.deb, built.version
}

// makeDeb runs make deb into dir, with VERSION set when version is not
// empty (make build links the same into the binary), and returns the
// package it made.
func makeDeb(dir, version string) (string, error) {
	args := []string{"--no-print-directory", "deb", "BIN=" + filepath.Join(dir, "godwit"), "DEBDIR=" + dir}
	if version != "" {
		args = append(args, "VERSION="+version)
	}
	cmd := exec.Command("make", args...)
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make deb: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("make deb made %v, want one package", debs)
	}
	return debs[0], nil
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// What `make deb` puts in the package, read back with dpkg-deb.
func TestPackageContents(t *testing.T) {
	deb, version := buildDeb(t)
	fields := map[string]string{
		"Package":      "godwit",
		"Version":      version,
		"Architecture": "amd64",
		"Depends":      strings.Join(debpkg.Depends(), ", "),
		"Recommends":   strings.Join(debpkg.Recommends(), ", "),
	}
	for k, want := range fields {
		if got := strings.TrimSpace(dpkgDeb(t, "-f", deb, k)); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// Every file root-owned, at its place, with its mode.
	listing := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(dpkgDeb(t, "-c", deb)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", l)
		}
		if f[1] != "root/root" {
			t.Errorf("%s is owned by %s", f[5], f[1])
		}
		listing[strings.TrimPrefix(f[5], ".")] = f[0]
	}
	for p, mode := range map[string]string{
		debpkg.BinPath: "-rwxr-xr-x", debpkg.UnitPath: "-rw-r--r--", debpkg.ConfigPath: "-rw-r--r--",
		debpkg.BashPath: "-rw-r--r--", debpkg.ZshPath: "-rw-r--r--", debpkg.FishPath: "-rw-r--r--",
		debpkg.ManDir + "/godwit.1.gz": "-rw-r--r--", debpkg.ManDir + "/godwit-daemon.1.gz": "-rw-r--r--",
		debpkg.ManDir + "/godwit-vm-create.1.gz": "-rw-r--r--", debpkg.DocDir + "/README.Debian": "-rw-r--r--",
	} {
		if listing[p] != mode {
			t.Errorf("%s: %q, want %s", p, listing[p], mode)
		}
	}
	var unexpected []string
	for p := range listing {
		if !strings.HasSuffix(p, "/") && !strings.HasPrefix(p, "/usr/") && p != debpkg.UnitPath && p != debpkg.ConfigPath {
			unexpected = append(unexpected, p)
		}
	}
	sort.Strings(unexpected)
	if len(unexpected) > 0 {
		t.Errorf("files outside /usr, the unit and the config: %v", unexpected)
	}

	dir := t.TempDir()
	dpkgDeb(t, "-x", deb, filepath.Join(dir, "root"))
	dpkgDeb(t, "-e", deb, filepath.Join(dir, "DEBIAN"))
	out, err := exec.Command(filepath.Join(dir, "root", debpkg.BinPath), "version").Output()
	if err != nil {
		t.Fatalf("godwit version: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != version {
		t.Errorf("the packaged godwit says %q, the package is %q", got, version)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "DEBIAN/conffiles")); string(b) != debpkg.ConfigPath+"\n" {
		t.Errorf("conffiles: %q", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if st, err := os.Stat(filepath.Join(dir, "DEBIAN", s)); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("DEBIAN/%s: %v", s, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dir, "root", debpkg.UnitPath))
	if err != nil {
		t.Fatal(err)
	}
	argv, err := debpkg.ParseUnit(unit).ExecStart()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listing[argv[0]]; !ok {
		t.Errorf("the unit runs %s, which the package does not hold", argv[0])
	}
}

// scripts/version.sh gives Debian versions that sort as the releases do.
func TestVersionScript(t *testing.T) {
	testenv.RequireCommand(t, "git")
	script := filepath.Join(testenv.RepoRoot(), "scripts/version.sh")
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	version := func() string {
		t.Helper()
		out, err := exec.Command(script, repo).CombinedOutput()
		if err != nil {
			t.Fatalf("version.sh: %v\n%s", err, out)
		}
		v := strings.TrimSpace(string(out))
		if err := debpkg.CheckVersion(v); err != nil {
			t.Error(err)
		}
		return v
	}
	if v := version(); v != "0.0.0+unknown" {
		t.Errorf("outside git: %q", v)
	}
	git("init", "-q")
	commit := func() {
		t.Helper()
		f := filepath.Join(repo, "f")
		b, _ := os.ReadFile(f)
		os.WriteFile(f, append(b, 'x'), 0o644)
		git("add", "f")
		git("commit", "-q", "-m", "c")
	}
	commit()
	commit()
	short := func() string { return git("rev-parse", "--short=12", "HEAD") }
	want := map[string]string{}
	want["untagged"] = "0.0.0+2.g" + short()
	if v := version(); v != want["untagged"] {
		t.Errorf("untagged: %q, want %q", v, want["untagged"])
	}
	os.WriteFile(filepath.Join(repo, "f"), []byte("changed"), 0o644)
	if v := version(); v != want["untagged"]+".dirty" {
		t.Errorf("dirty: %q", v)
	}
	git("checkout", "-q", "f")
	git("tag", "v1.3.0-rc1")
	if v := version(); v != "1.3.0~rc1" {
		t.Errorf("at v1.3.0-rc1: %q", v)
	}
	commit()
	git("tag", "v1.3.0")
	if v := version(); v != "1.3.0" {
		t.Errorf("at v1.3.0: %q", v)
	}
	commit()
	commit()
	if v, w := version(), "1.3.0+2.g"+short(); v != w {
		t.Errorf("2 after v1.3.0: %q, want %q", v, w)
	}
	// Debian's order: rc < release < commits after it.
	if _, err := exec.LookPath("dpkg"); err == nil {
		for _, pair := range [][2]string{{"1.3.0~rc1", "1.3.0"}, {"1.3.0", "1.3.0+2.g" + short()}, {want["untagged"], "1.3.0~rc1"}} {
			if err := exec.Command("dpkg", "--compare-versions", pair[0], "lt", pair[1]).Run(); err != nil {
				t.Errorf("dpkg does not sort %s before %s", pair[0], pair[1])
			}
		}
	}
}
