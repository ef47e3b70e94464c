package debpkg

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/internal/cli"
	"github.com/godwit-project/godwit/internal/daemon"
	"github.com/godwit-project/godwit/internal/prereq"
)

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"0.0.0+248.g3dcf31bcf70e", "1.2.0", "1.3.0~rc1", "1.2.0+5.g0123456789ab.dirty", "0.0.0+unknown"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	for _, v := range []string{"", "v1.2.0", "dev", "dev-3dcf31bcf70e", "1.2.0-1", "1:1.2.0", "1.2 0"} {
		if err := CheckVersion(v); err == nil {
			t.Errorf("%q passed", v)
		}
	}
}

// The package depends on every run row's package of programs.txt and
// recommends the extra rows': one table decides, here and in setup.
func TestDependsFromTheTable(t *testing.T) {
	dep := strings.Join(Depends(), " ")
	for _, want := range []string{"libvirt-daemon-system", "qemu-system-x86", "qemu-utils", "dnsmasq-base"} {
		if !strings.Contains(" "+dep+" ", " "+want+" ") {
			t.Errorf("Depends %q lacks %s", dep, want)
		}
	}
	for _, n := range prereq.Needs() {
		in := func(list []string) bool {
			for _, p := range list {
				if p == n.Package {
					return true
				}
			}
			return false
		}
		switch n.Scope {
		case prereq.ScopeRun:
			if !in(Depends()) {
				t.Errorf("run row %v: %s not in Depends", n.Programs, n.Package)
			}
		case prereq.ScopeExtra:
			if !in(Depends()) && !in(Recommends()) {
				t.Errorf("extra row %v: %s neither depended on nor recommended", n.Programs, n.Package)
			}
		}
	}
	for _, r := range Recommends() {
		if strings.Contains(" "+dep+" ", " "+r+" ") {
			t.Errorf("%s is both depended on and recommended", r)
		}
	}
	c := Control("1.2.0", 100)
	for _, want := range []string{"Package: godwit\n", "Version: 1.2.0\n", "Architecture: amd64\n", "Installed-Size: 100\n",
		"Depends: " + strings.Join(Depends(), ", ") + "\n", "Recommends: ", "\nDescription: "} {
		if !strings.Contains(c, want) {
			t.Errorf("control lacks %q:\n%s", want, c)
		}
	}
	// Continuation lines of the description start with a space; nothing
	// after it is a field.
	desc := c[strings.Index(c, "Description:"):]
	for _, l := range strings.Split(strings.TrimSuffix(desc, "\n"), "\n")[1:] {
		if !strings.HasPrefix(l, " ") {
			t.Errorf("description line %q does not start with a space", l)
		}
	}
}

// The default config loads as it is (all comments), and with every
// commented key switched on it still loads strictly: the file cannot name
// a key the daemon does not know.
func TestDefaultConfig(t *testing.T) {
	b, err := files.ReadFile("files/godwit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	asIs := filepath.Join(dir, "asis.yaml")
	os.WriteFile(asIs, b, 0o644)
	c, err := daemon.LoadConfig(asIs)
	if err != nil {
		t.Fatalf("the default config does not load: %v", err)
	}
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	if c.StateDir != daemon.DefaultStateDir || c.Socket != daemon.DefaultSocket {
		t.Errorf("defaults: state %s socket %s", c.StateDir, c.Socket)
	}
	_, body, ok := strings.Cut(string(b), "\n\n")
	if !ok {
		t.Fatal("no blank line between the header and the keys")
	}
	var on []string
	for _, l := range strings.Split(body, "\n") {
		on = append(on, strings.TrimPrefix(l, "# "))
	}
	all := filepath.Join(dir, "all.yaml")
	os.WriteFile(all, []byte(strings.Join(on, "\n")), 0o644)
	c, err = daemon.LoadConfig(all)
	if err != nil {
		t.Fatalf("the default config's keys, uncommented: %v\n%s", err, strings.Join(on, "\n"))
	}
	if err := c.Complete(); err != nil {
		t.Fatalf("the default config's values: %v", err)
	}
	if c.Pool.Path != "/var/lib/godwit/pool" || c.Cluster.PeerPort != 2380 || c.LibvirtTimeout != 2*time.Minute {
		t.Errorf("uncommented values: %+v", c)
	}
}

// The unit runs the packaged binary on the packaged config, and its
// directories are the daemon's defaults.
func TestUnit(t *testing.T) {
	b, err := files.ReadFile("files/godwit.service")
	if err != nil {
		t.Fatal(err)
	}
	u := ParseUnit(b)
	argv, err := u.ExecStart()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(argv, " ") != BinPath+" daemon --config "+ConfigPath {
		t.Errorf("ExecStart %q", argv)
	}
	want := map[string]string{
		"RuntimeDirectory": filepath.Base(filepath.Dir(daemon.DefaultSocket)),
		"StateDirectory":   filepath.Base(daemon.DefaultStateDir),
		"Wants":            "libvirtd.service",
		"Restart":          "on-failure",
		"WantedBy":         "multi-user.target",
	}
	for k, v := range want {
		if u.Get(k) != v {
			t.Errorf("%s=%q, want %q", k, u.Get(k), v)
		}
	}
	if !strings.Contains(u.Get("After"), "libvirtd.service") {
		t.Errorf("After=%q lacks libvirtd.service", u.Get("After"))
	}
	if filepath.Dir(daemon.DefaultSocket) != "/run/godwit" || daemon.DefaultStateDir != "/var/lib/godwit" {
		t.Errorf("the daemon's defaults moved: the unit's directories must follow")
	}
}

func TestMaintainerScripts(t *testing.T) {
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		b, err := files.ReadFile("files/" + s)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("sh", "-n", "-c", string(b)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v: %s", s, err, out)
		}
		text := string(b)
		if !strings.HasSuffix(text, "\nexit 0\n") {
			t.Errorf("%s does not end with exit 0", s)
		}
		// systemctl and deb-systemd-invoke only where systemd runs, and
		// never able to fail the script.
		for _, l := range strings.Split(text, "\n") {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "#") || !(strings.Contains(l, "systemctl ") || strings.Contains(l, "deb-systemd-")) || strings.HasPrefix(l, "if ") {
				continue
			}
			if !strings.HasSuffix(l, "|| true") {
				t.Errorf("%s: %q can fail the script", s, l)
			}
		}
		if strings.Contains(text, "systemctl ") && !strings.Contains(text, "[ -d /run/systemd/system ]") {
			t.Errorf("%s calls systemctl without checking that systemd runs", s)
		}
	}
}

func TestStage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "godwit")
	os.WriteFile(bin, []byte("not really godwit"), 0o755)
	root := filepath.Join(dir, "root")
	o := Options{Binary: bin, Version: "1.2.0", Root: cli.NewRoot(io.Discard, io.Discard), Date: time.Unix(0, 0)}
	if err := Stage(root, o); err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{
		BinPath: 0o755, UnitPath: 0o644, ConfigPath: 0o644, BashPath: 0o644, ZshPath: 0o644, FishPath: 0o644,
		ManDir + "/godwit.1.gz": 0o644, ManDir + "/godwit-daemon.1.gz": 0o644, ManDir + "/godwit-vm-create.1.gz": 0o644,
		"/DEBIAN/postinst": 0o755, "/DEBIAN/prerm": 0o755, "/DEBIAN/postrm": 0o755, "/DEBIAN/control": 0o644,
	}
	for p, m := range modes {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.Mode().Perm() != m {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), m)
		}
	}
	// A man page per command a user can run, readable by man.
	z, err := os.ReadFile(filepath.Join(root, ManDir, "godwit-daemon.1.gz"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(r)
	for _, want := range []string{`.TH "GODWIT-DAEMON" "1" "Jan 1970" "godwit 1.2.0"`, "--state-dir"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("godwit-daemon.1 lacks %q", want)
		}
	}
	if r.Header.Name != "" || !r.Header.ModTime.IsZero() && r.Header.ModTime.Unix() != 0 {
		t.Errorf("man page gzip carries a name or time: %+v", r.Header)
	}
	pages, _ := filepath.Glob(filepath.Join(root, ManDir, "*.1.gz"))
	if len(pages) < 50 {
		t.Errorf("only %d man pages", len(pages))
	}
	for p, want := range map[string]string{BashPath: "__start_godwit", ZshPath: "#compdef godwit", FishPath: "complete -c godwit"} {
		b, _ := os.ReadFile(filepath.Join(root, p))
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q", p, want)
		}
	}
	conf, _ := os.ReadFile(filepath.Join(root, "DEBIAN/conffiles"))
	if string(conf) != ConfigPath+"\n" {
		t.Errorf("conffiles %q", conf)
	}
	// md5sums: every file but the conffile and DEBIAN/, with its sum.
	sums, _ := os.ReadFile(filepath.Join(root, "DEBIAN/md5sums"))
	listed := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, path, ok := strings.Cut(l, "  ")
		if !ok {
			t.Fatalf("md5sums line %q", l)
		}
		listed["/"+path] = sum
	}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		rel := strings.TrimPrefix(p, root)
		if err != nil || fi.IsDir() || strings.HasPrefix(rel, "/DEBIAN/") {
			return err
		}
		b, _ := os.ReadFile(p)
		h := md5.Sum(b)
		switch {
		case rel == ConfigPath:
			if _, ok := listed[rel]; ok {
				t.Errorf("the conffile is in md5sums")
			}
		case listed[rel] != hex.EncodeToString(h[:]):
			t.Errorf("md5sums: %s has %q, file is %x", rel, listed[rel], h)
		}
		return nil
	})
	if err := Stage(root, o); err == nil {
		t.Errorf("Stage into an existing tree did not fail")
	}
}
