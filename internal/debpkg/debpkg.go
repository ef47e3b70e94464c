// Package debpkg builds godwit's Debian package (`make deb`): it lays out
// the binary, the systemd unit, the default config (a conffile), man pages
// and shell completion generated from the command tree, and the
// maintainer scripts in a staging tree, writes DEBIAN/control with
// Depends and Recommends taken from internal/prereq's table, and runs
// `dpkg-deb --build --root-owner-group`. It builds nothing else and
// installs nothing; test/deb installs the result in a fresh Debian root.
package debpkg

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"debug/elf"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/godwit-project/godwit/internal/prereq"
)

// Where the package puts its files.
const (
	Name        = "godwit"
	BinPath     = "/usr/bin/godwit"
	UnitPath    = "/lib/systemd/system/godwit.service"
	ConfigPath  = "/etc/godwit/godwit.yaml"
	ManDir      = "/usr/share/man/man1"
	BashPath    = "/usr/share/bash-completion/completions/godwit"
	ZshPath     = "/usr/share/zsh/vendor-completions/_godwit"
	FishPath    = "/usr/share/fish/vendor_completions.d/godwit.fish"
	DocDir      = "/usr/share/doc/godwit"
	Arch        = "amd64"
	maintainer  = "godwit developers <godwit@localhost>"
	description = `KVM virtual machines from a short YAML spec, with live migration
 godwit turns one or many KVM hosts into a small private cloud: virtual
 machines from a short YAML spec, live and offline migration between
 hosts, snapshots and incremental backups, metrics and events, a REST API,
 a command line and a web page. It drives QEMU through libvirt, so every VM
 it makes is an ordinary libvirt domain that virsh can see.
 .
 This package runs the daemon as godwit.service (after libvirtd) with its
 API on /run/godwit/godwit.sock and its state in /var/lib/godwit.`
)

//go:embed files
var files embed.FS

// Options say what to package.
type Options struct {
	// Binary is the godwit binary (linux/amd64, static).
	Binary string
	// Version is the package's version, which the binary's `godwit
	// version` must print (scripts/version.sh makes it).
	Version string
	// Root is godwit's command tree, for the man pages and completion.
	Root *cobra.Command
	// OutDir receives godwit_VERSION_amd64.deb.
	OutDir string
	// Date stamps the man pages (SOURCE_DATE_EPOCH, else now).
	Date time.Time
}

// versionRE is a Debian version without an epoch or a revision (a native
// package), as scripts/version.sh makes them.
var versionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// CheckVersion says whether v can be the package's version.
func CheckVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %q is not a Debian version (a digit first, then letters, digits, '.', '+' or '~')", v)
	}
	return nil
}

// Depends and Recommends of the package: the Debian packages of the
// table's run rows and of its extra rows (a run row's package is never
// also recommended).
func Depends() []string { return prereq.Packages(prereq.ScopeRun) }

// Recommends see Depends.
func Recommends() []string {
	dep := map[string]bool{}
	for _, p := range Depends() {
		dep[p] = true
	}
	var out []string
	for _, p := range prereq.Packages(prereq.ScopeExtra) {
		if !dep[p] {
			out = append(out, p)
		}
	}
	return out
}

// Control is the DEBIAN/control file for a tree of installedKiB.
func Control(version string, installedKiB int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: %s\n", Name, version, Arch, maintainer)
	fmt.Fprintf(&b, "Installed-Size: %d\nSection: admin\nPriority: optional\n", installedKiB)
	fmt.Fprintf(&b, "Depends: %s\n", strings.Join(Depends(), ", "))
	if r := Recommends(); len(r) > 0 {
		fmt.Fprintf(&b, "Recommends: %s\n", strings.Join(r, ", "))
	}
	fmt.Fprintf(&b, "Description: %s\n", description)
	return b.String()
}

// FileName is the package file's name.
func FileName(version string) string {
	return fmt.Sprintf("%s_%s_%s.deb", Name, version, Arch)
}

// Build stages the package and runs dpkg-deb; it returns the .deb's path.
func Build(o Options) (string, error) {
	if err := CheckVersion(o.Version); err != nil {
		return "", err
	}
	if err := checkBinary(o.Binary, o.Version); err != nil {
		return "", err
	}
	if o.Date.IsZero() {
		o.Date = time.Now()
	}
	stage, err := os.MkdirTemp("", "godwit-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	root := filepath.Join(stage, "root")
	if err := Stage(root, o); err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(o.OutDir, FileName(o.Version))
	// xz at level 1: 48 MB of static binary packs in ~8 s to 21 MB;
	// dpkg-deb's default (level 6) takes ~50 s on two busy cores for 2 MB
	// less. Every dpkg since Debian 6 reads it.
	cmd := exec.Command("dpkg-deb", "--build", "--root-owner-group", "-Zxz", "-z1", root, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build: %v: %s", err, b)
	}
	return out, nil
}

// checkBinary makes sure the binary is an x86-64 ELF that says it is
// version: a package named after one version must not hold another.
func checkBinary(path, version string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary: %w", err)
	}
	machine := f.Machine
	f.Close()
	if machine != elf.EM_X86_64 {
		return fmt.Errorf("binary %s is for %v, the package is %s", path, machine, Arch)
	}
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		return fmt.Errorf("%s version: %w", path, err)
	}
	if got := strings.TrimSpace(string(out)); got != version {
		return fmt.Errorf("%s says it is version %q, the package would be %q (build it with make build)", path, got, version)
	}
	return nil
}

// Stage lays out the package's tree in root (which must not exist):
// the files, then DEBIAN/ with control, conffiles, md5sums and the
// maintainer scripts.
func Stage(root string, o Options) error {
	if _, err := os.Stat(root); err == nil {
		return fmt.Errorf("stage: %s exists", root)
	}
	put := func(path string, data []byte, mode fs.FileMode) error {
		dst := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return err
		}
		return os.Chmod(dst, mode) // the umask must not decide
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return err
	}
	if err := put(BinPath, bin, 0o755); err != nil {
		return err
	}
	for path, name := range map[string]string{UnitPath: "godwit.service", ConfigPath: "godwit.yaml"} {
		b, err := files.ReadFile("files/" + name)
		if err != nil {
			return err
		}
		if err := put(path, b, 0o644); err != nil {
			return err
		}
	}
	pages, err := ManPages(o.Root, o.Version, o.Date)
	if err != nil {
		return err
	}
	for name, page := range pages {
		if err := put(filepath.Join(ManDir, name+".gz"), gz(page), 0o644); err != nil {
			return err
		}
	}
	comp, err := Completions(o.Root)
	if err != nil {
		return err
	}
	for path, b := range comp {
		if err := put(path, b, 0o644); err != nil {
			return err
		}
	}
	readme, err := files.ReadFile("files/README.Debian")
	if err != nil {
		return err
	}
	if err := put(filepath.Join(DocDir, "README.Debian"), readme, 0o644); err != nil {
		return err
	}

	// DEBIAN/: md5sums of what is there so far, then the rest.
	sums, size, err := md5sums(root)
	if err != nil {
		return err
	}
	if err := put("DEBIAN/control", []byte(Control(o.Version, (size+1023)/1024)), 0o644); err != nil {
		return err
	}
	if err := put("DEBIAN/conffiles", []byte(ConfigPath+"\n"), 0o644); err != nil {
		return err
	}
	if err := put("DEBIAN/md5sums", sums, 0o644); err != nil {
		return err
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		b, err := files.ReadFile("files/" + s)
		if err != nil {
			return err
		}
		if err := put("DEBIAN/"+s, b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// ManPages renders a page per available command (godwit.1,
// godwit-vm-create.1 ...), as cobra/doc does, keyed by file name.
func ManPages(root *cobra.Command, version string, date time.Time) (map[string][]byte, error) {
	root.InitDefaultCompletionCmd()
	pages := map[string][]byte{}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				continue
			}
			if err := walk(sub); err != nil {
				return err
			}
		}
		var b bytes.Buffer
		h := &doc.GenManHeader{Section: "1", Date: &date, Source: "godwit " + version, Manual: "godwit manual"}
		if err := doc.GenMan(c, h, &b); err != nil {
			return fmt.Errorf("man page of %s: %w", c.CommandPath(), err)
		}
		pages[strings.ReplaceAll(c.CommandPath(), " ", "-")+".1"] = b.Bytes()
		return nil
	}
	return pages, walk(root)
}

// Completions returns the bash, zsh and fish completion scripts keyed by
// where Debian's shells look for them.
func Completions(root *cobra.Command) (map[string][]byte, error) {
	var bash, zsh, fish bytes.Buffer
	if err := root.GenBashCompletionV2(&bash, true); err != nil {
		return nil, err
	}
	if err := root.GenZshCompletion(&zsh); err != nil {
		return nil, err
	}
	if err := root.GenFishCompletion(&fish, true); err != nil {
		return nil, err
	}
	return map[string][]byte{BashPath: bash.Bytes(), ZshPath: zsh.Bytes(), FishPath: fish.Bytes()}, nil
}

// gz compresses as Debian wants man pages: gzip -9n (no name, no time).
func gz(b []byte) []byte {
	var out bytes.Buffer
	w, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	return out.Bytes()
}

// md5sums lists the tree's files as DEBIAN/md5sums does (paths without
// the leading slash, sorted; conffiles left out, as dh_md5sums does: dpkg
// keeps their sums itself) and adds up the size of them all.
func md5sums(root string) ([]byte, int64, error) {
	sums := map[string]string{}
	var size int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := md5.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		size += n
		rel, _ := filepath.Rel(root, path)
		if "/"+filepath.ToSlash(rel) != ConfigPath {
			sums[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		}
		return nil
	})
	paths := make([]string, 0, len(sums))
	for p := range sums {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "%s  %s\n", sums[p], p)
	}
	return []byte(b.String()), size, err
}
