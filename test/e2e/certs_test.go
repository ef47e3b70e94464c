package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// 'godwit cert create' issues client certificates with a scope: a read one
// lists but may not change anything, an admin one may; a certificate from
// another daemon's CA is refused. The daemon keeps no copy of the keys.
func TestCertCreateScopes(t *testing.T) {
	concurrent(t)
	addr := freeAddr(t)
	d := StartDaemon(t, "--listen", addr)
	url := "https://" + addr
	name := "e2e-cert-" + uniq()
	d.createVM(guestSpec(t, name), false)

	readDir := filepath.Join(d.Dir, "cert-read")
	out := d.MustCLI("cert", "create", "e2e-reader", "--out", readDir)
	if want := "godwit --host " + url + " --tls-dir " + readDir + " vm list"; !strings.Contains(out, want) {
		t.Errorf("cert create does not say %q:\n%s", want, out)
	}
	for f, mode := range map[string]os.FileMode{"": 0o700, "ca.crt": 0o644, "client.crt": 0o644, "client.key": 0o600} {
		st, err := os.Stat(filepath.Join(readDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s/%s: mode %v, want %v", readDir, f, st.Mode().Perm(), mode)
		}
	}
	if _, errOut, code := d.CLI("cert", "create", "e2e-reader", "--out", readDir); code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("cert create over existing files: exit %d, %q", code, errOut)
	}
	adminDir := filepath.Join(d.Dir, "cert-admin")
	d.MustCLI("cert", "create", "e2e-admin", "--scope", "admin", "--out", adminDir)

	// The read certificate lists, and may neither start nor create a VM,
	// nor issue a certificate.
	reader := []string{"--host", url, "--tls-dir", readDir}
	if out, errOut, code := d.CLI(append(reader, "vm", "list")...); code != 0 || !strings.Contains(out, name) {
		t.Fatalf("vm list with a read certificate: exit %d\n%s%s", code, out, errOut)
	}
	spec := guestSpec(t, "e2e-cert2-"+uniq())
	file := specYAML(t, spec)
	for _, args := range [][]string{
		{"vm", "start", name},
		{"vm", "create", "-f", file},
		{"cert", "create", "e2e-evil", "--scope", "admin", "--out", filepath.Join(d.Dir, "cert-evil")},
	} {
		out, errOut, code := d.CLI(append(reader, args...)...)
		if code != 1 || !strings.Contains(errOut, "cert:e2e-reader (scope read) may not") || !strings.Contains(errOut, "admin scope") {
			t.Errorf("%v with a read certificate: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "cert-evil")); !os.IsNotExist(err) {
		t.Errorf("a refused cert create left its directory: %v", err)
	}
	if v, err := d.C.GetVM(ctxT(t, 10*time.Second), name); err != nil || v.State != "stopped" {
		t.Fatalf("after a refused start: %v, %v", v.State, err)
	}
	if _, err := d.C.GetVM(ctxT(t, 10*time.Second), spec.Name); err == nil {
		t.Fatalf("a read certificate created %s", spec.Name)
	}

	// The admin certificate may: create a VM (not started) and delete it,
	// and issue a certificate itself.
	admin := []string{"--host", url, "--tls-dir", adminDir}
	if out, errOut, code := d.CLI(append(admin, "vm", "create", "-f", file)...); code != 0 {
		t.Fatalf("vm create with an admin certificate: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := d.CLI(append(admin, "vm", "delete", spec.Name)...); code != 0 {
		t.Fatalf("vm delete with an admin certificate: exit %d\n%s%s", code, out, errOut)
	}
	d.MustCLI(append(admin, "cert", "create", "e2e-ci", "--out", filepath.Join(d.Dir, "cert-ci"))...)

	// A certificate from another daemon's CA (with our CA to trust us).
	other := StartDaemon(t, "--listen", freeAddr(t))
	strangerDir := filepath.Join(other.Dir, "cert-stranger")
	other.MustCLI("cert", "create", "e2e-stranger", "--scope", "admin", "--out", strangerDir)
	mixed := filepath.Join(d.Dir, "cert-mixed")
	if err := os.MkdirAll(mixed, 0o700); err != nil {
		t.Fatal(err)
	}
	for f, from := range map[string]string{"ca.crt": readDir, "client.crt": strangerDir, "client.key": strangerDir} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mixed, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, errOut, code := d.CLI("--host", url, "--tls-dir", mixed, "vm", "list"); code == 0 || strings.Contains(out, name) {
		t.Fatalf("a certificate from another CA was accepted: exit %d\n%s%s", code, out, errOut)
	}

	// The daemon kept no key or certificate it issued, and the audit log
	// has who asked, without the key.
	entries, err := os.ReadDir(filepath.Join(d.Dir, "state", "tls"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "e2e-") {
			t.Errorf("the state dir holds %s", e.Name())
		}
	}
	key, err := os.ReadFile(filepath.Join(readDir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyLine := strings.Split(string(key), "\n")[1]
	raw, err := os.ReadFile(filepath.Join(d.Dir, "state", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "PRIVATE KEY") || strings.Contains(string(raw), keyLine) {
		t.Error("the audit log holds a private key")
	}
	audit := d.MustCLI("audit", "-o", "json", "--limit", "0")
	for _, w := range []string{`"path": "/v1/certs"`, `"principal": "cert:e2e-reader"`, `"principal": "cert:e2e-admin"`, `"status": 403`} {
		if !strings.Contains(audit, w) {
			t.Errorf("godwit audit lacks %s:\n%s", w, audit)
		}
	}
}
