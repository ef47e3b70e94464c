package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-project/godwit/api"
)

// 'cert create' writes ca.crt, client.crt and client.key (0600) into a
// new 0700 directory, says how to use them, and never overwrites a file
// unless asked to.
func TestCertCreate(t *testing.T) {
	nc := api.NewCert{Name: "laptop", Scope: "read", Serial: "ab12", Fingerprint: strings.Repeat("f", 64),
		NotAfter: time.Date(2028, 3, 4, 0, 0, 0, 0, time.UTC), URL: "https://h1:8443",
		CA: "CA PEM\n", Cert: "CERT PEM\n", Key: "KEY PEM\n"}
	d := &fakeDaemon{answers: map[string]any{"POST /v1/certs": nc}}
	startFakeDaemon(t, d)
	t.Chdir(t.TempDir())

	code, out, errOut := run(t, "cert", "create", "laptop")
	if code != 0 {
		t.Fatalf("cert create: exit %d\n%s%s", code, out, errOut)
	}
	if want := `POST /v1/certs {"name":"laptop","scope":"read"}`; len(d.requests) != 1 || d.requests[0] != want {
		t.Fatalf("requests %q, want %q", d.requests, want)
	}
	if !strings.Contains(out, "godwit --host https://h1:8443 --tls-dir godwit-laptop vm list") || !strings.Contains(out, "scope read") {
		t.Errorf("output lacks the way to use it:\n%s", out)
	}
	wantFiles(t, "godwit-laptop", map[string]string{"ca.crt": nc.CA, "client.crt": nc.Cert, "client.key": nc.Key},
		map[string]os.FileMode{"ca.crt": 0o644, "client.crt": 0o644, "client.key": 0o600})
	if st, err := os.Stat("godwit-laptop"); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("the directory: %v, %v; want mode 0700", st, err)
	}

	// Existing files: refused before anything is issued.
	d.requests = nil
	code, _, errOut = run(t, "cert", "create", "laptop")
	if code != 1 || !strings.Contains(errOut, "exists") || !strings.Contains(errOut, "--force") || len(d.requests) != 0 {
		t.Fatalf("cert create over existing files: exit %d, %q, requests %q", code, errOut, d.requests)
	}
	// With --force they are replaced, and a loose mode does not survive.
	if err := os.WriteFile("godwit-laptop/client.key", []byte("old"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod("godwit-laptop/client.key", 0o666); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "cert", "create", "laptop", "--force", "-q"); code != 0 || strings.TrimSpace(out) != "godwit-laptop" {
		t.Fatalf("cert create --force -q: exit %d, %q %q", code, out, errOut)
	}
	wantFiles(t, "godwit-laptop", map[string]string{"client.key": nc.Key}, map[string]os.FileMode{"client.key": 0o600})
	if entries, _ := os.ReadDir("godwit-laptop"); len(entries) != 3 {
		t.Errorf("godwit-laptop has %d entries, want 3 (no temporary files left)", len(entries))
	}

	// --out, --scope admin, and -o json without the key.
	d.requests = nil
	out2 := filepath.Join("some", "where")
	code, out, errOut = run(t, "cert", "create", "ci", "--scope", "admin", "--out", out2, "-o", "json")
	if code != 0 {
		t.Fatalf("cert create --out: exit %d\n%s%s", code, out, errOut)
	}
	if want := `POST /v1/certs {"name":"ci","scope":"admin"}`; len(d.requests) != 1 || d.requests[0] != want {
		t.Fatalf("requests %q, want %q", d.requests, want)
	}
	var w map[string]any
	if err := json.Unmarshal([]byte(out), &w); err != nil || w["dir"] != out2 || w["serial"] != "ab12" {
		t.Fatalf("-o json: %v %s", err, out)
	}
	if strings.Contains(out, "KEY PEM") {
		t.Fatalf("-o json prints the key:\n%s", out)
	}
	wantFiles(t, out2, map[string]string{"client.key": nc.Key}, map[string]os.FileMode{"client.key": 0o600})

	// Usage errors: exit 2, nothing asked.
	d.requests = nil
	for _, args := range [][]string{{"cert", "create"}, {"cert", "create", "x", "--scope", "root"}, {"cert", "create", "a", "b"}} {
		if code, _, errOut := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
	if len(d.requests) != 0 {
		t.Errorf("usage errors sent %q", d.requests)
	}
	// A refusal from the daemon leaves no directory behind.
	d.answers = map[string]any{}
	if code, _, _ := run(t, "cert", "create", "nope"); code != 1 {
		t.Fatalf("cert create refused by the daemon: exit %d, want 1", code)
	}
	if _, err := os.Stat("godwit-nope"); !os.IsNotExist(err) {
		t.Fatalf("godwit-nope after a refusal: %v", err)
	}
}

func wantFiles(t *testing.T, dir string, data map[string]string, modes map[string]os.FileMode) {
	t.Helper()
	for name, want := range data {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
		} else if st.Mode().Perm() != modes[name] {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), modes[name])
		}
	}
}
